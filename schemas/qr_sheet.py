"""API contract for a printable sheet of QR codes: page, grid, margins, label size, colours.

The bulk-QR kind embeds :class:`SheetOptions` in its request as ``sheet`` for ``output: "pdf"``;
``tasks/qr_sheet.py`` draws it. Every cell holds one code (a square) and, under it, a band for
its label. A layout whose codes would be too small to scan is refused while parsing, naming
the field that makes it so (``columns`` across the page, ``rows`` down it).
"""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from schemas.qr import WholeNumber

MM = 72 / 25.4
"""Points per millimetre."""
MIN_MODULE_MM = 0.4
"""The smallest module printed: 2.4 pixels at 150 dpi, what a phone or zbar still reads."""
SMALLEST_SYMBOL = 21
"""Modules across a version 1 code, the smallest QR code."""
LABEL_LEADING = 1.4
"""The label band is this many times the label size high: one line and room above it."""
SHEET_COLOUR_PATTERN = r"^#[0-9A-Fa-f]{6}$"


class PageSize(StrEnum):
    A4 = "A4"
    Letter = "Letter"


PAGE_POINTS: dict[PageSize, tuple[float, float]] = {
    PageSize.A4: (595.2756, 841.8898),
    PageSize.Letter: (612.0, 792.0),
}
"""Width and height in points: A4 is 210 x 297 mm, Letter 8.5 x 11 in."""


class SheetOptions(BaseModel):
    """How codes are laid out on a printable PDF sheet: a grid of equal cells, each holding
    one vector QR code with its label under it."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {"page": "A4", "columns": 4, "rows": 5, "margin_mm": 10, "gap_mm": 4},
                {"page": "Letter", "columns": 3, "rows": 4, "label_size_pt": 10},
            ]
        },
    )

    # Field order matters: the fit checks on columns and rows read the fields before them.
    page: PageSize = Field(default=PageSize.A4, description="Paper size, portrait.")
    margin_mm: float = Field(
        default=10, ge=0, le=60, description="Blank border around the grid, in millimetres."
    )
    gap_mm: float = Field(default=4, ge=0, le=40, description="Space between cells, in mm.")
    label_size_pt: float = Field(
        default=8,
        ge=4,
        le=36,
        description=(
            "Font size of the label under each code, in points; a longer label is set "
            "smaller until it fits the cell's width."
        ),
    )
    border: WholeNumber = Field(
        default=4,
        ge=0,
        le=20,
        description="Quiet zone around each code, in modules. The QR standard asks for 4.",
    )
    dark: str = Field(
        default="#000000", pattern=SHEET_COLOUR_PATTERN, description="Colour of the modules."
    )
    light: str = Field(
        default="#FFFFFF",
        pattern=SHEET_COLOUR_PATTERN,
        description="Background of each code and its quiet zone.",
    )
    columns: WholeNumber = Field(default=4, ge=1, le=20, description="Codes across a page.")
    rows: WholeNumber = Field(default=5, ge=1, le=30, description="Codes down a page.")

    @field_validator("columns")
    @classmethod
    def _codes_fit_across(cls, columns: int, info: ValidationInfo) -> int:
        if not _REQUIRED.issubset(info.data):
            return columns  # an earlier field failed: its own error says why
        width = _cell_mm(info, PAGE_POINTS[info.data["page"]][0] / MM, columns)
        _check_fits(width, info, "columns", columns)
        return columns

    @field_validator("rows")
    @classmethod
    def _codes_fit_down(cls, rows: int, info: ValidationInfo) -> int:
        if not _REQUIRED.issubset(info.data):
            return rows
        height = _cell_mm(info, PAGE_POINTS[info.data["page"]][1] / MM, rows)
        height -= info.data["label_size_pt"] * LABEL_LEADING / MM
        _check_fits(height, info, "rows", rows)
        return rows

    @property
    def page_points(self) -> tuple[float, float]:
        return PAGE_POINTS[self.page]

    @property
    def per_page(self) -> int:
        return self.rows * self.columns

    @property
    def cell_points(self) -> tuple[float, float]:
        """Width and height of one cell (code and label band), in points."""
        width, height = self.page_points
        inner_w = width - 2 * self.margin_mm * MM - (self.columns - 1) * self.gap_mm * MM
        inner_h = height - 2 * self.margin_mm * MM - (self.rows - 1) * self.gap_mm * MM
        return inner_w / self.columns, inner_h / self.rows

    @property
    def label_band_points(self) -> float:
        return self.label_size_pt * LABEL_LEADING

    @property
    def code_points(self) -> float:
        """Side of every code on the sheet, quiet zone included, in points."""
        cell_w, cell_h = self.cell_points
        return min(cell_w, cell_h - self.label_band_points)

    @property
    def max_symbol_modules(self) -> int:
        """Modules across the largest symbol (quiet zone not counted) that this layout prints
        with modules of at least MIN_MODULE_MM; a larger code is refused by the sheet writer.
        Version v has 17 + 4v modules across (version 40: 177)."""
        return math.floor(self.code_points / MM / MIN_MODULE_MM + 1e-9) - 2 * self.border


_REQUIRED = frozenset({"page", "margin_mm", "gap_mm", "label_size_pt", "border"})


def _cell_mm(info: ValidationInfo, page_mm: float, count: int) -> float:
    margin: float = info.data["margin_mm"]
    gap: float = info.data["gap_mm"]
    return (page_mm - 2 * margin - (count - 1) * gap) / count


def _check_fits(space_mm: float, info: ValidationInfo, field: str, count: int) -> None:
    needed = (SMALLEST_SYMBOL + 2 * info.data["border"]) * MIN_MODULE_MM
    if space_mm + 1e-9 < needed:
        raise PydanticCustomError(
            "sheet_fit",
            "{count} {field} on {page} with margin_mm {margin} and gap_mm {gap} leave "
            "{space} mm for each code; the smallest code with border {border} needs "
            "{needed} mm (modules of {module} mm)",
            {
                "count": count,
                "field": field,
                "page": info.data["page"].value,
                "margin": info.data["margin_mm"],
                "gap": info.data["gap_mm"],
                "space": round(space_mm, 1),
                "border": info.data["border"],
                "needed": round(needed, 1),
                "module": MIN_MODULE_MM,
            },
        )
