"""The QR encoder: the smallest code that holds some text, UTF-8 marked by ECI, and the
longest text each level holds (for the messages that refuse more)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import qrcode
from qrcode import util as qr_util
from qrcode.base import rs_blocks
from qrcode.exceptions import DataOverflowError

from schemas.qr import ALPHANUMERIC, ErrorCorrection


class QrCapacityError(ValueError):
    """The data does not fit in a version 40 QR code at the requested level."""


_LEVELS: dict[str, int] = {
    "L": qrcode.constants.ERROR_CORRECT_L,
    "M": qrcode.constants.ERROR_CORRECT_M,
    "Q": qrcode.constants.ERROR_CORRECT_Q,
    "H": qrcode.constants.ERROR_CORRECT_H,
}
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
    if ALPHANUMERIC.fullmatch(data):
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
