"""Result files on a local directory (shared as a volume when several machines run)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from schemas.jobs import ResultFile

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_FILE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_FOLDER_TRIES = 100
_HASH_CHUNK = 1 << 20


class LocalFileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def save(
        self, job_id: str, file_id: str, name: str, content: bytes, content_type: str
    ) -> ResultFile:
        """Write one result file atomically: readers see all of it or nothing."""
        file_id = _checked_file_id(file_id)
        folder = self._folder(job_id)
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

    def scratch(self, job_id: str, suffix: str = "") -> Path:
        """A fresh, empty path in the job's folder (so on the storage's file system) for a
        large result written in steps and then kept with :meth:`keep`."""
        descriptor, path = tempfile.mkstemp(dir=self._folder(job_id), prefix=".tmp-", suffix=suffix)
        os.close(descriptor)
        return Path(path)

    def keep(
        self, job_id: str, file_id: str, name: str, written: Path, content_type: str
    ) -> ResultFile:
        """Make ``written`` (from :meth:`scratch`) the result file ``file_id``, atomically."""
        file_id = _checked_file_id(file_id)
        folder = self._location(job_id)
        # mkstemp answers absolute paths; the root may be relative (./offload-data).
        if written.resolve().parent != folder.resolve():
            raise ValueError(f"{written} is not a scratch file of job {job_id}")
        digest = hashlib.sha256()
        size = 0
        with written.open("rb") as handle:
            while chunk := handle.read(_HASH_CHUNK):
                digest.update(chunk)
                size += len(chunk)
        os.replace(written, folder / file_id)
        return ResultFile(
            id=file_id,
            name=name,
            content_type=content_type,
            size=size,
            sha256=digest.hexdigest(),
        )

    def discard_other_attempts(self, job_id: str, file_id: str, kept: str) -> None:
        """Remove the copies of ``file_id`` that earlier attempts stored (``<file_id>-<n>``),
        keeping ``kept``: a job run twice leaves one file, not one per attempt."""
        pattern = re.compile(re.escape(_checked_file_id(file_id)) + r"-[0-9]+")
        with contextlib.suppress(FileNotFoundError):
            for path in self._location(job_id).iterdir():
                if path.name != kept and pattern.fullmatch(path.name):
                    path.unlink(missing_ok=True)

    def path(self, job_id: str, file_id: str) -> Path | None:
        path = self._location(job_id) / _checked_file_id(file_id)
        return path if path.is_file() else None

    def delete(self, job_id: str) -> None:
        """Remove a job's files, then its shard folder if no other job has files there."""
        folder = self._location(job_id)
        shutil.rmtree(folder, ignore_errors=True)
        # rmdir only removes an empty folder, so another job's files are never at risk; a
        # writer that just made the shard recreates it (see _folder).
        with contextlib.suppress(OSError):
            folder.parent.rmdir()

    def _folder(self, job_id: str) -> Path:
        """The job's folder, created, for writing into.

        ``delete`` removes a shard folder once it is empty, so a shard can vanish between
        making it and making the job folder inside it; making both again is then enough,
        because a shard that holds a job folder is never empty.
        """
        folder = self._location(job_id)
        for _ in range(_FOLDER_TRIES):
            with contextlib.suppress(FileExistsError):
                folder.parent.mkdir(parents=True)
            try:
                folder.mkdir()
            except FileExistsError:
                return folder
            except FileNotFoundError:
                continue
            return folder
        raise OSError(f"could not create {folder}: its shard folder kept being removed")

    def _location(self, job_id: str) -> Path:
        """files/<last two hex digits>/<job id>: only a real job id becomes a path."""
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"not a job id (32 lowercase hex digits): {job_id!r}")
        return self.root / job_id[-2:] / job_id


def _checked_file_id(file_id: str) -> str:
    if not _FILE_ID.fullmatch(file_id) or ".." in file_id:
        raise ValueError(f"not a file id ({_FILE_ID.pattern}, no '..'): {file_id!r}")
    return file_id
