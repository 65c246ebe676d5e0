"""API contract for drawing on an uploaded PDF: a text watermark, a vector QR stamp.

Positions and sizes are in points (1/72 inch) on the page as it is shown: a rotated page's
bottom-left corner is the one the reader sees there. Like the other PDF operations
(schemas/pdf.py) a request names one uploaded PDF, its password if it has one, and
``pages`` (``1-3,5,7-``; left out, every page).
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field, ValidationInfo, field_validator

from schemas.pdf import PageRanges, PdfInput
from schemas.qr import MAX_DATA_CHARACTERS, ErrorCorrection, WholeNumber
from schemas.qr_sheet import SHEET_COLOUR_PATTERN

MAX_WATERMARK_CHARACTERS = 200
PAGES_DESCRIPTION = "Pages to draw on; unset: all."


class PdfWatermarkRequest(PdfInput):
    """Draw a line of text across chosen pages, on top of their content, semi-transparent."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "text": "CONFIDENTIAL"},
                {
                    "file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                    "text": "Entwurf, nicht verteilen",
                    "opacity": 0.2,
                    "angle": 30,
                    "font_size": 48,
                    "colour": "#C62828",
                    "pages": "1-3,5",
                },
            ]
        },
    )

    text: str = Field(
        min_length=1,
        max_length=MAX_WATERMARK_CHARACTERS,
        description="The watermark, one line, any script (set in DejaVu Sans).",
    )
    opacity: float = Field(default=0.3, gt=0, le=1, description="0 (invisible) to 1 (opaque).")
    angle: float = Field(
        default=45, ge=-360, le=360, description="Degrees, counter-clockwise from horizontal."
    )
    font_size: float = Field(default=60, ge=4, le=400, description="In points.")
    colour: str = Field(default="#808080", pattern=SHEET_COLOUR_PATTERN, description="#RRGGBB.")
    pages: PageRanges | None = Field(default=None, description=PAGES_DESCRIPTION)


class Corner(StrEnum):
    top_left = "top-left"
    top_right = "top-right"
    bottom_left = "bottom-left"
    bottom_right = "bottom-right"
    middle = "center"


class PdfStampQrRequest(PdfInput):
    """Stamp a vector QR code on chosen pages, on top of their content."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                    "data": "https://example.com/doc/42",
                },
                {
                    "file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                    "data": "https://example.com/doc/42?page=1",
                    "position": "top-right",
                    "margin": 18,
                    "size": 96,
                    "pages": "1",
                },
                {
                    "file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                    "data": "INV-2026-0042",
                    "x": 300,
                    "y": 40,
                },
            ]
        },
    )

    data: str = Field(
        min_length=1,
        max_length=MAX_DATA_CHARACTERS,
        description="Text to encode, as UTF-8 (non-ASCII marked with ECI 26).",
    )
    error_correction: ErrorCorrection = Field(default=ErrorCorrection.M)
    size: float = Field(
        default=72,
        ge=18,
        le=1000,
        description="Side of the code with its quiet zone, in points (72 = one inch).",
    )
    border: WholeNumber = Field(default=4, ge=0, le=20, description="Quiet zone, in modules.")
    position: Corner = Field(
        default=Corner.bottom_right,
        description="Where on the page, kept ``margin`` points from the edges; x and y win.",
    )
    margin: float = Field(default=18, ge=0, le=1000, description="Distance from the edges.")
    x: float | None = Field(
        default=None, ge=0, le=14400, description="Left edge of the code, from the page's left."
    )
    y: float | None = Field(
        default=None,
        ge=0,
        le=14400,
        validate_default=True,
        description="Bottom of the code, from the page's bottom.",
    )
    dark: str = Field(default="#000000", pattern=SHEET_COLOUR_PATTERN)
    light: str = Field(default="#FFFFFF", pattern=SHEET_COLOUR_PATTERN)
    pages: PageRanges | None = Field(default=None, description=PAGES_DESCRIPTION)

    @field_validator("y")
    @classmethod
    def _x_and_y_together(cls, y: float | None, info: ValidationInfo) -> float | None:
        if "x" in info.data and (info.data["x"] is None) != (y is None):
            raise ValueError("give both x and y, or neither (position then places the code)")
        return y
