"""Result files on a local directory (shared as a volume when several machines run)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from schemas.jobs import ResultFile


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(
        self, job_id: str, file_id: str, name: str, content: bytes, content_type: str
    ) -> ResultFile:
        """Write one result file atomically: readers see all of it or nothing."""
        folder = self._folder(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        descriptor, temporary_path = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        temporary = Path(temporary_path)
        try:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(content)
            os.replace(temporary, folder / file_id)
        except BaseException:
            # A full disk fails the write or the close: leave no partial file behind.
            temporary.unlink(missing_ok=True)
            raise
        return ResultFile(
            id=file_id,
            name=name,
            content_type=content_type,
            size=len(content),
            sha256=hashlib.sha256(content).hexdigest(),
        )

    def path(self, job_id: str, file_id: str) -> Path | None:
        path = self._folder(job_id) / file_id
        return path if path.is_file() else None

    def delete(self, job_id: str) -> None:
        shutil.rmtree(self._folder(job_id), ignore_errors=True)

    def _folder(self, job_id: str) -> Path:
        if not job_id.isalnum():
            raise ValueError(f"not a job id: {job_id!r}")
        return self.root / job_id[-2:] / job_id
