"""The module matrix of one QR code: what every renderer (PNG, SVG, PDF, sheets) draws.

zxing-cpp (C++, through Zint) builds it: about 30 times as fast as qrcode's pure-Python
masking (bench/qr_encoders.py), the same capacity at every level, and never a larger
version than tasks.qr_encoder's fit on 3,000 random payloads. Non-ASCII text is UTF-8 marked
with ECI 26, as tasks.qr_encoder does it: with the same mask the two give identical symbols
(tests/tasks/test_qr_matrix.py). The messages that refuse too much data stay qrcode's.
"""

from __future__ import annotations

from functools import lru_cache

import zxingcpp

from schemas.qr import ErrorCorrection
from tasks.qr_encoder import QrCapacityError, fit_qr

_DARK_FROM_GREY = bytes([1]) + bytes(255)
"""zxing-cpp draws dark modules as grey 0 and light ones as 255: translate to 1 and 0."""
_ECI_UTF8 = 26


def zxing_modules(data: str, level: ErrorCorrection, mask: int | None = None) -> tuple[bytes, ...]:
    """As :func:`qr_modules`; ``mask`` (0-7) forces a data mask (tests compare symbols)."""
    options: dict[str, object] = {"ec_level": str(level)}
    if not data.isascii():
        options["eci"] = _ECI_UTF8
    if mask is not None:
        options["data_mask"] = mask
    try:
        symbol = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, **options)
    except ValueError:  # "Input too long, requires 3336 codewords (maximum 2956)"
        fit_qr(data, level)  # raises QrCapacityError with the message the API gives
        raise
    except RuntimeError as error:  # a lone surrogate: not text that UTF-8 can hold
        raise QrCapacityError(f"data cannot be encoded as UTF-8 ({error})") from None
    image = symbol.to_image(scale=1, add_quiet_zones=False)
    size = image.shape[0]
    # zxingcpp.Image has the buffer protocol; its stub does not say so.
    modules = bytes(memoryview(image)).translate(_DARK_FROM_GREY)  # type: ignore[arg-type]
    return tuple(modules[row : row + size] for row in range(0, size * size, size))


@lru_cache(maxsize=64)
def qr_modules(data: str, level: ErrorCorrection) -> tuple[bytes, ...]:
    """Rows of the symbol without quiet zone, one byte per module (1 = dark).

    Raises QrCapacityError when even version 40 cannot hold ``data`` at ``level``.
    """
    return zxing_modules(data, level)
