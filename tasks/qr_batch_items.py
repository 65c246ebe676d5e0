"""The items of a bulk QR job, one at a time: from the request, or streamed from a CSV.

A CSV is read row by row (never whole), UTF-8 (a BOM is fine), with a header row that names
a ``data`` column and optionally ``name`` and ``label``; other columns are ignored. What makes
the file unusable fails the job with a message naming the line: no header, no data column,
not UTF-8, a field over the csv module's limit, more than MAX_CSV_ROWS rows or MAX_COLUMNS
columns. What is wrong with one row (no data, a label too long) fails that item only.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from schemas.qr import MAX_DATA_CHARACTERS, ErrorCorrection
from schemas.qr_batch import (
    MAX_CSV_ROWS,
    MAX_LABEL_CHARACTERS,
    MAX_NAME_CHARACTERS,
    QrBatchOptions,
)

MAX_COLUMNS = 64
MAX_CSV_BYTES = 64 * 1024 * 1024
"""Above the upload limit's default (50 MiB): a file this large was not made for this."""
COLUMNS = ("data", "name", "label")

if TYPE_CHECKING:
    from _csv import Reader


class BatchInputError(ValueError):
    """The CSV cannot be read as a batch: the message names the line. (Message only: it
    crosses the CPU pool's process boundary.)"""


@dataclass(frozen=True)
class BatchItem:
    """One code to draw: what the client gave, with the batch's options filled in."""

    index: int
    data: str
    name: str | None
    label: str | None
    error_correction: ErrorCorrection
    dark: str
    light: str
    fault: str | None = None
    """Why this item cannot be drawn, found while reading it; None when it may be."""


def inline_items(options: QrBatchOptions) -> Iterator[BatchItem]:
    for index, item in enumerate(options.items or ()):
        yield BatchItem(
            index=index,
            data=item.data,
            name=item.name,
            label=item.label,
            error_correction=item.error_correction or options.error_correction,
            dark=item.dark or options.dark,
            light=item.light or options.light,
        )


def _row_fault(data: str, name: str, label: str) -> str | None:
    if not data:
        return "data is empty"
    if len(data) > MAX_DATA_CHARACTERS:
        return f"data is {len(data)} characters; no QR code holds more than {MAX_DATA_CHARACTERS}"
    if len(label) > MAX_LABEL_CHARACTERS:
        return f"label is {len(label)} characters; at most {MAX_LABEL_CHARACTERS}"
    if len(name) > MAX_NAME_CHARACTERS:
        return f"name is {len(name)} characters; at most {MAX_NAME_CHARACTERS}"
    return None


def _header(reader: Iterator[list[str]]) -> dict[str, int]:
    header = next(reader, None)
    if header is None:
        raise BatchInputError("the CSV is empty: line 1 must be a header naming a data column")
    if len(header) > MAX_COLUMNS:
        raise BatchInputError(f"line 1 has {len(header)} columns; at most {MAX_COLUMNS}")
    names = [cell.strip().lower() for cell in header]
    if "data" not in names:
        raise BatchInputError(
            "line 1 must be a header naming the columns data, name, label (data is required)"
        )
    return {column: names.index(column) for column in COLUMNS if column in names}


def csv_items(
    path: Path, options: QrBatchOptions, max_rows: int = MAX_CSV_ROWS
) -> Iterator[BatchItem]:
    """The data rows of the CSV at ``path`` as items (index 0 is the row after the header).

    Raises BatchInputError naming the line for a file that cannot be a batch."""
    size = path.stat().st_size
    if size > MAX_CSV_BYTES:
        raise BatchInputError(f"the CSV is {size:,} bytes; at most {MAX_CSV_BYTES:,}")
    with path.open(encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(text, strict=True)
        try:
            yield from _rows(reader, options, max_rows)
        except UnicodeDecodeError as error:
            raise BatchInputError(
                f"line {reader.line_num + 1} is not UTF-8 (byte {error.object[error.start]:#04x})"
            ) from None
        except csv.Error as error:
            raise BatchInputError(f"line {reader.line_num}: {error}") from None


def _rows(reader: Reader, options: QrBatchOptions, max_rows: int) -> Iterator[BatchItem]:
    columns = _header(reader)
    width = max(columns.values()) + 1
    index = -1
    for row in reader:
        if not row:
            continue  # a blank line, not an item
        index += 1
        if index >= max_rows:
            raise BatchInputError(
                f"line {reader.line_num}: the CSV has more than {max_rows:,} rows"
            )
        if len(row) > MAX_COLUMNS:
            raise BatchInputError(
                f"line {reader.line_num} has {len(row)} columns; at most {MAX_COLUMNS}"
            )
        cells = row + [""] * (width - len(row))
        data, name, label = (cells[columns[c]] if c in columns else "" for c in COLUMNS)
        yield BatchItem(
            index=index,
            data=data,
            name=name or None,
            label=label or None,
            error_correction=options.error_correction,
            dark=options.dark,
            light=options.light,
            fault=_row_fault(data, name, label),
        )


def check_csv_header(path: Path) -> None:
    """Raise BatchInputError unless the CSV at ``path`` opens with a usable header: the
    submit's cheap look (one line) before the job is queued."""
    with path.open(encoding="utf-8-sig", newline="") as text:
        try:
            _header(csv.reader(text, strict=True))
        except (UnicodeDecodeError, csv.Error) as error:
            raise BatchInputError(f"line 1 cannot be read as CSV: {error}") from None


def count_csv_rows(path: Path, options: QrBatchOptions) -> int:
    """Data rows of the CSV, read through once (the progress total); raises as csv_items."""
    return sum(1 for _ in csv_items(path, options))
