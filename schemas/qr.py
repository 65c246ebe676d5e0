"""API contract for QR code jobs: the fields, and the limits no QR code can exceed.

How much data fits at a level and how large a PNG gets is the encoder's to say
(tasks/qr_encoder.py); the QR kind runs that check at submit (tasks/qr.py).
"""

import re
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

MAX_DATA_CHARACTERS = 7089
"""No QR code holds more characters: 7089 digits fill version 40 at level L."""
MAX_BYTE_MODE_BYTES = 2953
"""Nor more bytes of text outside the alphanumeric set, which only byte mode encodes."""
DEFAULT_MAX_PNG_PIXELS = 4_000_000
"""What ``OFFLOAD_QR_MAX_PIXELS`` defaults to, for the API's own description."""
COLOUR_PATTERN = r"^#[0-9A-Fa-f]{6}([0-9A-Fa-f]{2})?$"


class QrFormat(StrEnum):
    png = "png"
    svg = "svg"
    pdf = "pdf"


class ErrorCorrection(StrEnum):
    L = "L"
    M = "M"
    Q = "Q"
    H = "H"


ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")
"""The characters QR alphanumeric mode encodes; anything else needs byte mode."""


def _no_text_or_booleans(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number, not text or true/false")
    return value


WholeNumber = Annotated[int, BeforeValidator(_no_text_or_booleans)]
"""An integer as JSON Schema means it: 49 and 49.0, never "49" or true."""


# Parsing checks each field and refuses data that no QR code holds, cheaply. Whether the data
# fits at the chosen level, and how large a PNG may be, is the QR kind's submit check to say
# (tasks.qr_limits): the fit is CPU-bound, so the API runs it off the event loop. (The
# docstring is the API's text.)
class QrOptions(BaseModel):
    """What to encode and how to draw it."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "data": "https://example.com/orders/1234?ref=qr",
                    "format": "png",
                    "error_correction": "M",
                    "scale": 10,
                    "border": 4,
                    "dark": "#1A237E",
                    "light": "#FFF8E1",
                },
                {"data": "Grüße aus Köln, 你好 🎉", "format": "svg", "light": "#FFFFFF00"},
            ]
        },
    )

    data: str = Field(
        min_length=1,
        description=(
            "Text to encode, as UTF-8. How much fits depends on error_correction: at level L "
            "2953 bytes (7089 digits, or 4296 characters of 0-9 A-Z space $%*+-./:), "
            "at level M 2331 bytes, at level Q 1663 bytes, at level H 1273 bytes. Text with "
            "non-ASCII characters holds one byte less: it is marked as UTF-8 (ECI 26)."
        ),
        examples=["https://example.com/orders/1234?ref=qr"],
    )
    format: QrFormat = Field(
        default=QrFormat.png,
        description="Output format: PNG raster, SVG vector or single-page vector PDF.",
    )
    error_correction: ErrorCorrection = Field(
        default=ErrorCorrection.M,
        description=(
            "Error-correction level: L restores about 7% of damaged modules, M 15%, Q 25%, "
            "H 30%. Higher levels hold less data."
        ),
    )
    scale: WholeNumber = Field(
        default=10,
        ge=1,
        le=50,
        description=(
            "Size of one module: pixels for PNG, user units for SVG, points for PDF. "
            f"A PNG may have at most {DEFAULT_MAX_PNG_PIXELS:,} pixels by default (2000x2000; "
            "the server may set another limit); a larger one is refused with the largest "
            "scale, and border, that would fit."
        ),
    )
    border: WholeNumber = Field(
        default=4,
        ge=0,
        le=20,
        description="Quiet zone around the code, in modules. The QR standard asks for 4.",
    )
    dark: str = Field(
        default="#000000",
        pattern=COLOUR_PATTERN,
        description="Colour of the dark modules, #RRGGBB or #RRGGBBAA.",
        examples=["#000000", "#1A237E"],
    )
    light: str = Field(
        default="#FFFFFF",
        pattern=COLOUR_PATTERN,
        description="Background colour, #RRGGBB or #RRGGBBAA; alpha 00 leaves it transparent.",
        examples=["#FFFFFF", "#FFFFFF00"],
    )

    @field_validator("data")
    @classmethod
    def _no_longer_than_any_qr_code(cls, data: str) -> str:
        # Checked while parsing, in O(n) at C speed, so that data no QR code can hold never
        # reaches the capacity fit, whose cost grows with the data (a megabyte took seconds).
        if len(data) > MAX_DATA_CHARACTERS:
            raise PydanticCustomError(
                "qr_capacity",
                f"data is {len(data)} characters; no QR code holds more than "
                f"{MAX_DATA_CHARACTERS} (digits only, at error_correction L)",
            )
        byte_mode = len(ALPHANUMERIC.sub("", data).encode())
        if byte_mode > MAX_BYTE_MODE_BYTES:
            raise PydanticCustomError(
                "qr_capacity",
                f"data has {byte_mode} bytes (UTF-8) of characters other than 0-9, A-Z, space "
                f"and $%*+-./:; no QR code holds more than {MAX_BYTE_MODE_BYTES} such bytes "
                "(at error_correction L)",
            )
        return data
