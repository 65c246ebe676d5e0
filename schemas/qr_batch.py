"""API contract for bulk QR jobs: many codes in one job, as a ZIP of images or a PDF sheet.

Parsing refuses only what makes the whole request unusable (a field of the wrong type,
more data than any code holds); the kind's submit check refuses both or neither of items
and a CSV. Whether one item's data fits in a code at its level is that
item's own problem: the worker draws the others and lists it as failed in the manifest.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from schemas.qr import COLOUR_PATTERN, MAX_DATA_CHARACTERS, ErrorCorrection, WholeNumber
from schemas.qr_sheet import SheetOptions

MAX_INLINE_ITEMS = 10_000
MAX_CSV_ROWS = 100_000
MAX_NAME_CHARACTERS = 1_000
"""A name only seeds the archive name (64 characters of it); longer is surely a mistake."""
MAX_LABEL_CHARACTERS = 200
MAX_BODY_BYTES = 16 * 1024 * 1024
"""The submit body limit of this route: 10,000 items of a URL, a name and a label take
about 2 MB; the most data a code holds, 7 KB, in every one would not fit in any limit."""


class BatchFormat(StrEnum):
    png = "png"
    svg = "svg"


class BatchOutput(StrEnum):
    zip = "zip"
    pdf = "pdf"


class QrBatchItem(BaseModel):
    """One code of the batch: its data, and what it changes of the shared options."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(
        min_length=1,
        max_length=MAX_DATA_CHARACTERS,
        description=(
            "Text to encode, as UTF-8. Data that does not fit in a code at its level fails "
            "this item only: the manifest lists it with the reason."
        ),
    )
    name: str | None = Field(
        default=None,
        max_length=MAX_NAME_CHARACTERS,
        description=(
            "File name wish: the archive entry is 000123-<name>.png with the name reduced "
            "to letters, digits, dot, dash and underscore (64 at most)."
        ),
    )
    label: str | None = Field(
        default=None,
        max_length=MAX_LABEL_CHARACTERS,
        description="Text printed under the code (SVG and PDF output).",
    )
    error_correction: ErrorCorrection | None = Field(
        default=None, description="This item's level; default: the batch's."
    )
    dark: str | None = Field(
        default=None, description="This item's dark colour.", pattern=COLOUR_PATTERN
    )
    light: str | None = Field(
        default=None, description="This item's background.", pattern=COLOUR_PATTERN
    )


class QrBatchOptions(BaseModel):
    """Many QR codes in one job: inline items or an uploaded CSV, shared drawing options
    that items may override, and the output: a ZIP of images, or a PDF sheet, with a
    manifest."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "items": [
                        {"data": "https://example.com/t/1", "name": "ticket-1", "label": "Row A"},
                        {"data": "https://example.com/t/2", "name": "ticket-2"},
                    ],
                    "format": "png",
                    "error_correction": "M",
                    "scale": 8,
                    "output": "zip",
                },
                {"csv_file_id": "5b2e8c0d9a7f4e3b8c1d6a0f2e9b7c4d", "format": "svg"},
                {
                    "items": [{"data": "https://example.com/t/1", "label": "Seat A1"}],
                    "output": "pdf",
                    "sheet": {"page": "A4", "columns": 4, "rows": 6},
                },
            ]
        },
    )

    items: list[QrBatchItem] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_INLINE_ITEMS,
        description=f"Up to {MAX_INLINE_ITEMS:,} codes; or give csv_file_id instead.",
    )
    csv_file_id: str | None = Field(
        default=None,
        description=(
            f"An uploaded CSV (UTF-8, a header row naming the columns data, name, label; up to "
            f"{MAX_CSV_ROWS:,} rows) instead of items. Extra columns are ignored."
        ),
    )
    logo_file_id: str | None = Field(
        default=None,
        description=(
            "An uploaded PNG or JPEG drawn in the centre of every code; it forces "
            "error_correction H and covers a small enough part for codes to decode."
        ),
    )
    format: BatchFormat = Field(default=BatchFormat.png, description="Image format in the ZIP.")
    error_correction: ErrorCorrection = Field(
        default=ErrorCorrection.M, description="Level of every item that sets none: L, M, Q, H."
    )
    scale: WholeNumber = Field(
        default=10,
        ge=1,
        le=50,
        description=(
            "Pixels (PNG) or user units (SVG) per module. An item whose PNG would be over "
            "the server's pixel limit fails, the others are drawn."
        ),
    )
    border: WholeNumber = Field(default=4, ge=0, le=20, description="Quiet zone, in modules.")
    dark: str = Field(
        default="#000000", description="Colour of the dark modules.", pattern=COLOUR_PATTERN
    )
    light: str = Field(default="#FFFFFF", description="Background colour.", pattern=COLOUR_PATTERN)
    output: BatchOutput = Field(
        default=BatchOutput.zip,
        description=(
            "zip: the images and manifest.csv (item, file, status, error). pdf: a printable "
            "sheet of vector codes with their labels, laid out by sheet (format, scale, "
            "border and colours are the sheet's), and manifest.csv naming each item's page."
        ),
    )
    sheet: SheetOptions | None = Field(
        default=None, description="Page, grid and labels of the PDF sheet; default layout if unset."
    )
