"""The bulk QR archive: a ZIP written one entry at a time, its manifest beside it.

Entries go to the file as they come (zipfile writes each one through); only their central
directory records stay in memory until the end. PNGs are stored (they are compressed
already), SVGs and the manifest deflated. The manifest is written to a file next to the
archive as items arrive and joins it as ``manifest.csv`` when the archive is closed.
"""

from __future__ import annotations

import time
import zipfile
from pathlib import Path
from types import TracebackType

from tasks.qr_batch_draw import DrawnItem
from tasks.qr_batch_manifest import ManifestRow, ManifestWriter

MANIFEST_NAME = "manifest.csv"


def manifest_row(drawn: DrawnItem) -> ManifestRow:
    item = drawn.item
    return ManifestRow(
        item=item.index,
        file=drawn.file,
        error=drawn.error,
        name=item.name,
        label=item.label,
        data=item.data,
    )


class QrArchive:
    """``with QrArchive(path) as archive: archive.add(drawn) ...``; closing adds the
    manifest. Counts of ok and failed items are on :attr:`manifest`."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._manifest_path = path.with_name(path.name + ".manifest.csv")
        self._manifest_file = self._manifest_path.open("w", encoding="utf-8", newline="")
        self.manifest = ManifestWriter(self._manifest_file)
        self._zip = zipfile.ZipFile(path, "w", allowZip64=True)
        self._date = time.localtime()[:6]

    def add(self, drawn: DrawnItem) -> None:
        if drawn.content is not None and drawn.file is not None:
            info = zipfile.ZipInfo(drawn.file, date_time=self._date)
            info.external_attr = 0o644 << 16
            svg = drawn.file.endswith(".svg")
            info.compress_type = zipfile.ZIP_DEFLATED if svg else zipfile.ZIP_STORED
            self._zip.writestr(info, drawn.content)
        self.manifest.write(manifest_row(drawn))

    def close(self) -> None:
        self._manifest_file.close()
        try:
            self._zip.write(self._manifest_path, MANIFEST_NAME, zipfile.ZIP_DEFLATED)
            self._zip.close()
        finally:
            self._manifest_path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Stop without a manifest (a cancel, a failure): the caller removes the archive."""
        self._manifest_file.close()
        self._zip.close()
        self._manifest_path.unlink(missing_ok=True)

    def __enter__(self) -> QrArchive:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if kind is None:
            self.close()
        else:
            self.discard()
