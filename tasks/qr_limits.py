"""What a QR job may ask for: data that fits at its level, and a PNG within the pixel limit.

The QR kind's submit check and the sync route run this before any drawing; the task runs it
again, as a job may have been queued under another limit.
"""

from __future__ import annotations

import math

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from schemas.qr import QrFormat, QrOptions
from tasks.qr_encoder import QrCapacityError, check_qr_capacity, modules_for_version


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
