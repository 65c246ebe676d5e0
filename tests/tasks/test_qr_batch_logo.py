"""The bulk QR logo: image bombs refused before decoding; codes with a logo still decode."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from schemas.qr import ErrorCorrection
from schemas.qr_batch import BatchFormat
from tasks.qr_batch_draw import DrawOptions, draw_chunk
from tasks.qr_batch_items import BatchItem
from tasks.qr_batch_logo import MAX_LOGO_PIXELS, LogoError, prepare_logo
from tasks.qr_matrix import qr_modules
from tests.support.qr_decode import decode

PAYLOADS = ["https://example.com/tickets/000123?seat=A7", "ünïcode ✓ 日本", "4" * 300]


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels and holds none (IDAT is empty)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def logo_file(tmp_path: Path, fmt: str = "PNG", size: tuple[int, int] = (300, 200)) -> Path:
    image = Image.new("RGBA" if fmt == "PNG" else "RGB", size, (200, 30, 30, 255))
    ImageDraw.Draw(image).ellipse((20, 20, size[0] - 20, size[1] - 20), fill=(20, 40, 200))
    path = tmp_path / f"logo.{fmt.lower()}"
    image.save(path, format=fmt)
    return path


@pytest.mark.parametrize(
    "claimed",
    [
        (4200, 4200),  # 1.1x our cap: refused from the header
        (20000, 20000),  # twice Pillow's own limit: its DecompressionBombError
        (10000, 10000),  # over Pillow's warning limit, which is an error here
    ],
)
def test_a_logo_claiming_too_many_pixels_is_refused_before_decoding(
    tmp_path: Path, claimed: tuple[int, int]
) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(*claimed))
    assert claimed[0] * claimed[1] > MAX_LOGO_PIXELS
    with pytest.raises(LogoError, match=r"pixels|too large"):
        prepare_logo(path)


def test_the_warning_limit_is_an_error_even_under_our_cap(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header(10000, 10000))
    with pytest.raises(LogoError, match="too large"):
        prepare_logo(path, max_pixels=10**9)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;", "cannot be read|must be PNG or JPEG"),
        (b"not an image at all", "cannot be read"),
        (png_header(64, 64), "cannot be read"),  # a header, no pixels: truncated
    ],
)
def test_a_logo_that_is_not_a_png_or_jpeg_is_refused(
    tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "logo.bin"
    path.write_bytes(content)
    with pytest.raises(LogoError, match=message):
        prepare_logo(path)


def test_a_gif_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "logo.gif"
    Image.new("P", (40, 40)).save(path, format="GIF")
    with pytest.raises(LogoError, match="GIF; it must be PNG or JPEG"):
        prepare_logo(path)


def test_a_large_logo_is_reduced(tmp_path: Path) -> None:
    prepared = prepare_logo(logo_file(tmp_path, "JPEG", (3000, 2000)))
    with Image.open(io.BytesIO(prepared)) as image:
        assert image.format == "PNG" and image.mode == "RGBA" and max(image.size) == 512


@pytest.mark.parametrize("fmt", list(BatchFormat))
def test_codes_with_a_logo_decode_and_are_forced_to_level_h(
    tmp_path: Path, fmt: BatchFormat
) -> None:
    logo = prepare_logo(logo_file(tmp_path))
    items = [
        BatchItem(i, data, None, "label", ErrorCorrection.L, "#000000", "#FFFFFF")
        for i, data in enumerate(PAYLOADS)
    ]
    options = DrawOptions(format=fmt, scale=6, border=4, max_png_pixels=4_000_000, logo_png=logo)
    for drawn, data in zip(draw_chunk(items, options), PAYLOADS, strict=True):
        assert drawn.error is None and drawn.file and drawn.content
        assert decode(drawn.file, drawn.content, tmp_path) == [data]
        side = len(qr_modules(data, ErrorCorrection.H)) + 8
        if fmt is BatchFormat.png:
            with Image.open(io.BytesIO(drawn.content)) as image:
                assert image.size == (side * 6, side * 6)
                centre = image.convert("RGB").getpixel((side * 3, side * 3))
                assert centre != (0, 0, 0) and centre != (255, 255, 255)  # the logo is there
        else:
            assert b"<image" in drawn.content and b"data:image/png;base64," in drawn.content
