"""API contract for QR code jobs, including how much data a QR code can hold."""

import re
from collections.abc import Iterator
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Self

import qrcode
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from qrcode.exceptions import DataOverflowError

MAX_PNG_PIXELS = 40_000_000
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


class QrCapacityError(ValueError):
    """The data does not fit in a version 40 QR code at the requested level."""


_LEVELS: dict[str, int] = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")


def modules_for_version(version: int) -> int:
    """Side length in modules, without quiet zone, of a QR code of ``version``."""
    return 4 * version + 17


def _kind(data: str) -> str:
    if data.isascii() and data.isdigit():
        return "numeric"
    if _ALPHANUMERIC.fullmatch(data):
        return "alphanumeric"
    return "byte"


def _layouts(data: str, level: str) -> Iterator[qrcode.QRCode]:
    optimized = qrcode.QRCode(error_correction=_LEVELS[level], border=0)
    optimized.add_data(data)
    yield optimized
    # qrcode's optimiser puts short alphanumeric pieces between long digit runs in byte
    # mode, which can be worse than one alphanumeric segment.
    if _kind(data) == "alphanumeric":
        single = qrcode.QRCode(error_correction=_LEVELS[level], border=0)
        single.add_data(
            qrcode.util.QRData(data.encode("ascii"), mode=qrcode.util.MODE_ALPHA_NUM), optimize=0
        )
        yield single


def _smallest(data: str, level: str) -> qrcode.QRCode | None:
    best, best_version = None, 41
    for layout in _layouts(data, level):
        try:
            version = int(layout.best_fit())
        # qrcode 8.2 overflows through its version setter ("Invalid version (was 41 ...)").
        except (DataOverflowError, ValueError):
            continue
        if version < best_version:
            best, best_version = layout, version
    return best


@lru_cache(maxsize=12)
def _max_length(kind: str, level: str) -> int:
    """Longest run of ``kind`` data that qrcode fits at ``level``, found by bisection."""
    sample = {"numeric": "1", "alphanumeric": "A", "byte": "a"}[kind]
    low, high = 1, 8000
    while low < high:
        middle = (low + high + 1) // 2
        if _smallest(sample * middle, level) is None:
            high = middle - 1
        else:
            low = middle
    return low


def _capacity_message(data: str, level: str) -> str:
    kind = _kind(data)
    limit = _max_length(kind, level)
    prefix = f"data is {len(data)}"
    holds = f"a QR code at level {level} holds at most {limit}"
    if kind == "numeric":
        return f"{prefix} digits; {holds} digits"
    if kind == "alphanumeric":
        return f"{prefix} characters; {holds} alphanumeric characters"
    return f"data is {len(data.encode('utf-8'))} bytes; {holds} bytes"


def fit_qr(data: str, level: ErrorCorrection) -> qrcode.QRCode:
    """A not yet built ``qrcode.QRCode`` (border 0) holding ``data`` in the fewest modules.

    Raises QrCapacityError when even version 40 is too small.
    """
    qr = _smallest(data, str(level))
    if qr is None:
        raise QrCapacityError(_capacity_message(data, str(level)))
    return qr


def check_qr_capacity(data: str, level: ErrorCorrection) -> int:
    """The smallest QR version (1-40) holding ``data`` at ``level``; see modules_for_version.

    Raises QrCapacityError when even version 40 is too small.
    """
    return int(fit_qr(data, level).version)


def _no_text_or_booleans(value: object) -> object:
    if isinstance(value, bool | str):
        raise ValueError("must be a whole number, not text or true/false")
    return value


WholeNumber = Annotated[int, BeforeValidator(_no_text_or_booleans)]
"""An integer as JSON Schema means it: 49 and 49.0, never "49" or true."""


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
            "at level M 2331 bytes, at level Q 1663 bytes, at level H 1273 bytes."
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
            f"A PNG may have at most {MAX_PNG_PIXELS:,} pixels."
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

    @model_validator(mode="after")
    def _fits_in_a_qr_code(self) -> Self:
        try:
            version = check_qr_capacity(self.data, self.error_correction)
        except QrCapacityError as error:
            raise self._error("data", "qr_capacity", str(error), self.data) from None
        if self.format is QrFormat.png:
            side = (modules_for_version(version) + 2 * self.border) * self.scale
            if side * side > MAX_PNG_PIXELS:
                message = (
                    f"a {side}x{side} PNG exceeds {MAX_PNG_PIXELS:,} pixels; lower scale or border"
                )
                raise self._error("scale", "qr_too_large", message, self.scale)
        return self

    @classmethod
    def _error(cls, field: str, kind: str, message: str, value: object) -> ValidationError:
        # Unlike a ValueError, a ValidationError raised in a validator keeps its own loc.
        return ValidationError.from_exception_data(
            cls.__name__,
            [InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)],
        )
