"""The bulk QR archive: a ZIP written one entry at a time, its manifest beside it.

Entries go to the file as they come, their central directory to a spool file
(tasks/qr_batch_zip.py), so memory does not grow with the count. PNGs are stored (they are
compressed already), SVGs and the manifest deflated. The manifest is written to a file next
to the archive as items arrive and joins it as ``manifest.csv`` when the archive is closed.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

from tasks.qr_batch_draw import DrawnItem
from tasks.qr_batch_manifest import ManifestRow, ManifestWriter
from tasks.qr_batch_zip import StreamingZip

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
        self._zip = StreamingZip(path, path.with_name(path.name + ".directory"))

    def add(self, drawn: DrawnItem) -> None:
        if drawn.content is not None and drawn.file is not None:
            self._zip.add(drawn.file, drawn.content, deflate=drawn.file.endswith(".svg"))
        self.manifest.write(manifest_row(drawn))

    def close(self) -> None:
        self._manifest_file.close()
        try:
            self._zip.add_file(MANIFEST_NAME, self._manifest_path)
        except BaseException:
            self._zip.discard()  # a full disk: close the archive, remove its spool
            raise
        finally:
            self._manifest_path.unlink(missing_ok=True)
        self._zip.close()

    def discard(self) -> None:
        """Stop without a manifest (a cancel, a failure): the caller removes the archive."""
        self._manifest_file.close()
        self._zip.discard()
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
