"""The bulk QR manifest: one CSV row per item, written as the items are, never all in memory.

Columns: ``item`` (its index, as in ``items.N``; for a CSV upload, data row N), ``file``
(its archive entry, empty when it failed), ``status`` (ok or failed), ``error``, then what
the client sent: ``name``, ``label``, ``data``. Cells holding tenant text are escaped for
spreadsheets (SECURITY.md 3.4): one starting with ``=``, ``+``, ``-``, ``@``, tab, CR or NUL
gets a leading single quote, so Excel or LibreOffice shows it rather than running it as a
formula; quoting is RFC 4180's (the csv module's).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import TextIO

COLUMNS = ("item", "file", "status", "error", "name", "label", "data")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\0")


def spreadsheet_safe(cell: str) -> str:
    """``cell`` with a leading quote when a spreadsheet would read it as a formula."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


@dataclass(frozen=True)
class ManifestRow:
    item: int
    file: str | None
    error: str | None
    name: str | None
    label: str | None
    data: str

    @property
    def status(self) -> str:
        return "failed" if self.error else "ok"


class ManifestWriter:
    """Writes rows to ``out`` (text, opened with ``newline=""``) and counts them."""

    def __init__(self, out: TextIO) -> None:
        self._writer = csv.writer(out)
        self._writer.writerow(COLUMNS)
        self.ok = 0
        self.failed = 0

    def write(self, row: ManifestRow) -> None:
        if row.error:
            self.failed += 1
        else:
            self.ok += 1
        text = (row.file, row.status, row.error, row.name, row.label, row.data)
        self._writer.writerow([row.item, *(spreadsheet_safe(cell or "") for cell in text)])
