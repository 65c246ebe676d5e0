"""The zxing-cpp matrix is the symbol qrcode's ECI encoder makes, no larger, no smaller."""

import random
import string

import pytest

from schemas.qr import ErrorCorrection
from tasks.qr_encoder import QrCapacityError, _max_length, _sample, fit_qr
from tasks.qr_matrix import qr_modules, zxing_modules

NON_ASCII = ["ünïcode ✓ 日本", "café crème", "Ελληνικά", "日本語テキスト", "é" * 600]


def qrcode_symbol(data: str, level: ErrorCorrection) -> tuple[tuple[bytes, ...], int]:
    qr = fit_qr(data, level)
    mask = int(qr.best_mask_pattern())
    qr.makeImpl(False, mask)
    return tuple(bytes(row) for row in qr.get_matrix()), mask


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize("payload", NON_ASCII)
def test_non_ascii_is_the_eci_utf8_symbol_of_qrcode(level: ErrorCorrection, payload: str) -> None:
    # tests/tasks/test_qr_render.py proves qrcode's stream opens with ECI 26; the same
    # modules under the same mask mean the same bit stream.
    rows, mask = qrcode_symbol(payload, level)
    assert zxing_modules(payload, level, mask=mask) == rows


@pytest.mark.parametrize("level", list(ErrorCorrection))
def test_rows_are_square_bytes_of_zero_and_one(level: ErrorCorrection) -> None:
    rows = qr_modules("https://example.com/a", level)
    assert all(len(row) == len(rows) for row in rows)
    assert set(b"".join(rows)) == {0, 1}
    # Top-left finder: a dark 7x7 ring, no quiet zone before it.
    assert rows[0][:7] == b"\x01" * 7
    assert rows[1][:7] == b"\x01\x00\x00\x00\x00\x00\x01"


def test_never_a_larger_version_than_qrcode() -> None:
    rng = random.Random(8)
    pools = [string.digits, string.digits + string.ascii_uppercase + " $%*+-./:"]
    pools += [string.printable[:94], string.ascii_letters + "éü日本✓🎉 0123456789"]
    for _ in range(300):
        pool = rng.choice(pools)
        data = "".join(rng.choice(pool) for _ in range(rng.choice([1, 20, 100, 400])))
        level = rng.choice(list(ErrorCorrection))
        assert len(zxing_modules(data, level)) <= len(qrcode_symbol(data, level)[0]), data


@pytest.mark.parametrize("kind", ["numeric", "alphanumeric", "byte", "utf8"])
@pytest.mark.parametrize("level", list(ErrorCorrection))
def test_capacity_is_qrcodes(kind: str, level: ErrorCorrection) -> None:
    longest = _max_length(kind, str(level))
    assert len(zxing_modules(_sample(kind, longest), level)) == 177
    with pytest.raises(QrCapacityError, match=f"at level {level} holds at most {longest}"):
        zxing_modules(_sample(kind, longest + 1), level)


def test_a_lone_surrogate_is_refused_as_capacity() -> None:
    with pytest.raises(QrCapacityError, match="UTF-8"):
        zxing_modules("a\ud800", ErrorCorrection.M)
