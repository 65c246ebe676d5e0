"""API contract for QR code jobs, including how much data a QR code can hold."""

import math
import re
from bisect import bisect_left
from collections.abc import Iterator
from enum import StrEnum
from functools import lru_cache
from typing import Annotated, Any

import qrcode
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails, PydanticCustomError
from qrcode import util as qr_util
from qrcode.base import rs_blocks
from qrcode.exceptions import DataOverflowError

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


class QrCapacityError(ValueError):
    """The data does not fit in a version 40 QR code at the requested level."""


_LEVELS: dict[str, int] = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
_ALPHANUMERIC = re.compile(r"[0-9A-Z $%*+\-./:]+")
_MODE_ECI = 0b0111
_ECI_UTF8 = 26
"""ECI designator 26 (ISO/IEC 18004 7.4.2): the byte segments that follow are UTF-8."""


def modules_for_version(version: int) -> int:
    """Side length in modules, without quiet zone, of a QR code of ``version``."""
    return 4 * version + 17


def _kind(data: str) -> str:
    if not data.isascii():
        return "utf8"
    if data.isdigit():
        return "numeric"
    if _ALPHANUMERIC.fullmatch(data):
        return "alphanumeric"
    return "byte"


class _Utf8QRCode(qrcode.QRCode):  # type: ignore[misc]  # qrcode has no type hints
    """A ``qrcode.QRCode`` whose bit stream opens with ECI 26, so its bytes read as UTF-8.

    Byte mode means ISO-8859-1 unless an ECI says otherwise; without one, decoders guess
    (zbar reads UTF-8 "ünïcode" as Shift-JIS). qrcode cannot write an ECI header: both
    ``best_fit`` and ``qrcode.util.create_data`` write each segment's mode and count
    before its ``write()``, so no segment can put bits ahead of itself. Both are redone
    here with the 12-bit header (mode 0111, designator 00011010) in front; Reed-Solomon
    coding, masking and module placement stay qrcode's.
    """

    data_cache: list[int] | None

    def _bit_stream(self, version: int) -> Any:
        stream = qr_util.BitBuffer()
        stream.put(_MODE_ECI, 4)
        stream.put(_ECI_UTF8, 8)
        for segment in self.data_list:
            stream.put(segment.mode, 4)
            stream.put(len(segment), qr_util.length_in_bits(segment.mode, version))
            segment.write(stream)
        return stream

    def best_fit(self, start: int | None = None) -> int:
        version = start or 1
        while True:
            needed = len(self._bit_stream(version))
            fitted = bisect_left(qr_util.BIT_LIMIT_TABLE[self.error_correction], needed, version)
            if fitted > 40:
                raise DataOverflowError(f"{needed} bits do not fit in version 40")
            # Count fields widen at versions 10 and 27: measure again if the fit crossed one.
            if qr_util.mode_sizes_for_version(fitted) is qr_util.mode_sizes_for_version(version):
                self.version = fitted
                return fitted
            version = fitted

    def makeImpl(self, test: bool, mask_pattern: int) -> None:
        if self.data_cache is None:
            self.data_cache = self._codewords()
        super().makeImpl(test, mask_pattern)

    def _codewords(self) -> list[int]:
        """As ``qrcode.util.create_data``: terminator, byte alignment, pad bytes, Reed-Solomon."""
        stream = self._bit_stream(self.version)
        blocks = rs_blocks(self.version, self.error_correction)
        capacity = 8 * sum(block.data_count for block in blocks)
        if len(stream) > capacity:
            raise DataOverflowError(f"{len(stream)} bits > {capacity} in version {self.version}")
        for _ in range(min(capacity - len(stream), 4)):
            stream.put_bit(False)
        while len(stream) % 8:
            stream.put_bit(False)
        for index in range((capacity - len(stream)) // 8):
            stream.put(qr_util.PAD1 if index % 2 else qr_util.PAD0, 8)
        codewords: list[int] = qr_util.create_bytes(stream, blocks)
        return codewords


def _layouts(data: str, level: str) -> Iterator[qrcode.QRCode]:
    # Pure ASCII needs no ECI: it reads the same in ISO-8859-1 and UTF-8, and every decoder
    # knows it. Anything else is UTF-8 announced by ECI 26, even text that ISO-8859-1 could
    # hold, since many phone scanners assume UTF-8 whatever the standard says.
    kind = _kind(data)
    factory = _Utf8QRCode if kind == "utf8" else qrcode.QRCode
    optimized = factory(error_correction=_LEVELS[level], border=0)
    optimized.add_data(data)
    yield optimized
    # qrcode's optimiser puts short alphanumeric pieces between long digit runs in byte
    # mode, which can be worse than one alphanumeric segment.
    if kind == "alphanumeric":
        single = qrcode.QRCode(error_correction=_LEVELS[level], border=0)
        single.add_data(
            qr_util.QRData(data.encode("ascii"), mode=qr_util.MODE_ALPHA_NUM), optimize=0
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


def _sample(kind: str, size: int) -> str:
    """``size`` digits, characters or UTF-8 bytes of ``kind`` data."""
    if kind == "utf8":
        return "é" + "a" * (size - 2)
    return {"numeric": "1", "alphanumeric": "A", "byte": "a"}[kind] * size


@lru_cache(maxsize=16)
def _max_length(kind: str, level: str) -> int:
    """Longest run of ``kind`` data that fits at ``level``, found by bisection."""
    low, high = 2, 8000
    while low < high:
        middle = (low + high + 1) // 2
        if _smallest(_sample(kind, middle), level) is None:
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
    if kind == "utf8":
        size = len(data.encode("utf-8"))
        return f"data is {size} bytes in UTF-8; {holds} bytes of text with non-ASCII characters"
    return f"data is {len(data)} bytes; {holds} bytes"


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


# Parsing checks each field and refuses data that no QR code holds, cheaply. Whether the data
# fits at the chosen level, and how large a PNG may be, is check_qr_options's to say: the fit
# is CPU-bound, so the API runs it off the event loop. (The docstring is the API's text.)
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
        byte_mode = len(_ALPHANUMERIC.sub("", data).encode())
        if byte_mode > MAX_BYTE_MODE_BYTES:
            raise PydanticCustomError(
                "qr_capacity",
                f"data has {byte_mode} bytes (UTF-8) of characters other than 0-9, A-Z, space "
                f"and $%*+-./:; no QR code holds more than {MAX_BYTE_MODE_BYTES} such bytes "
                "(at error_correction L)",
            )
        return data


def check_qr_options(options: QrOptions, *, max_png_pixels: int) -> int:
    """The version (1-40) of the QR code ``options`` ask for, once it is known to be drawable.

    Raises ValidationError naming ``data`` when it does not fit in a QR code at the requested
    level, or ``scale`` (and ``border`` when lowering it alone would do) when a PNG would
    have more than ``max_png_pixels`` pixels, each message giving the largest value that
    fits. ``max_png_pixels`` must be at least 217x217, so that any code fits at scale 1.
    The capacity fit is CPU-bound (up to ~25 ms): on an event loop, call this in a thread.
    SVG and PDF have no pixel limit: their size and the work to draw them grow with the
    modules, whatever the scale and border.
    """
    try:
        version = check_qr_capacity(options.data, options.error_correction)
    except QrCapacityError as error:
        raise _invalid([_fault("data", "qr_capacity", str(error), options.data)]) from None
    if options.format is QrFormat.png:
        faults = _pixel_faults(modules_for_version(version), options, max_png_pixels)
        if faults:
            raise _invalid(faults)
    return version


def _pixel_faults(modules: int, options: QrOptions, max_pixels: int) -> list[InitErrorDetails]:
    scale, border = options.scale, options.border
    side = (modules + 2 * border) * scale
    if side * side <= max_pixels:
        return []
    largest_side = math.isqrt(max_pixels)
    too_large = f"a {side}x{side} PNG is over the limit of {max_pixels:,} pixels"
    largest_scale = largest_side // (modules + 2 * border)
    advice = f"with border {border}, scale can be at most {largest_scale}"
    faults = [_fault("scale", "qr_too_large", f"{too_large}; {advice}", scale)]
    largest_border = (largest_side // scale - modules) // 2
    if largest_border >= 0:
        advice = f"at scale {scale}, border can be at most {largest_border}"
        faults.append(_fault("border", "qr_too_large", f"{too_large}; {advice}", border))
    return faults


def _fault(field: str, kind: str, message: str, value: object) -> InitErrorDetails:
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)


def _invalid(faults: list[InitErrorDetails]) -> ValidationError:
    return ValidationError.from_exception_data(QrOptions.__name__, faults)
