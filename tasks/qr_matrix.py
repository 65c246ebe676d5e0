"""The module matrix of one QR code: what every renderer (PNG, SVG, PDF, sheets) draws."""

from __future__ import annotations

from functools import lru_cache

from schemas.qr import ErrorCorrection
from tasks.qr_encoder import fit_qr


@lru_cache(maxsize=64)
def qr_modules(data: str, level: ErrorCorrection) -> tuple[bytes, ...]:
    """Rows of the symbol without quiet zone, one byte per module (1 = dark).

    Raises QrCapacityError when even version 40 cannot hold ``data`` at ``level``.
    """
    qr = fit_qr(data, level)
    qr.make(fit=False)
    return tuple(bytes(row) for row in qr.get_matrix())
