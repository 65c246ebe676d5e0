"""QR rendering round-trips through independent decoders (zbar, poppler, librsvg, qpdf)."""

import io
import shutil
import subprocess
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from qrcode.base import rs_blocks

from schemas.qr import ErrorCorrection, QrFormat, QrOptions
from tasks.qr_encoder import fit_qr
from tasks.qr_render import (
    QrCapacityError,
    RenderedFile,
    check_qr_capacity,
    modules_for_version,
    render_qr,
)

URL = "https://example.com/orders/2024/11/29/1234567?ref=newsletter&utm_source=offload&lang=en-GB"
UNICODE = "Grüße \u2013 你好 \u2013 🎉"
NUMERIC = "31415926535897932384626433832795028841971"
ALPHANUMERIC = "HTTPS://EXAMPLE.COM/ABC $%*+-./: " + "7" * 25 + " XYZ"
PAYLOADS = [URL, UNICODE, NUMERIC, ALPHANUMERIC]
NON_ASCII = {
    "umlauts": "ünïcode",
    "scripts-and-emoji": UNICODE,
    "japanese": "日本語テキスト",
    "greek": "Ελληνικά",
    "latin-1": "café crème",
}
# Non-ASCII text with digit and alphanumeric runs long enough for their own segments.
MIXED_SEGMENTS = [
    "Bestellung 12345678901234567890123456 für Köln",
    "12345678901234567890123 ÜBER DIE BRÜCKE: HTTPS://EXAMPLE.COM/ABCDEFGH ok ✓",
]
# Largest UTF-8 text with a non-ASCII character: the 12-bit ECI header costs a byte.
UTF8_CAPACITY = {"L": 2952, "M": 2330, "Q": 1662, "H": 1272}
ECI_UTF8_HEADER = 0b0111_0001_1010  # ECI mode indicator, then designator 26 (UTF-8)
FORMATS = list(QrFormat)
TOOLS = {
    "zbarimg": "zbar-tools",
    "pdftoppm": "poppler-utils",
    "pdfinfo": "poppler-utils",
    "pdfimages": "poppler-utils",
    "qpdf": "qpdf",
    "rsvg-convert": "librsvg2-bin",
}


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: apt-get install -y {TOOLS[name]}")
    return path


def run(*args: str) -> str:
    result = subprocess.run(
        [tool(args[0]), *args[1:]], capture_output=True, text=True, errors="replace"
    )
    assert result.returncode == 0, f"{args[0]} failed: {result.stdout}{result.stderr}"
    return result.stdout


def zbar_decode(image: Image.Image) -> list[str]:
    try:
        from pyzbar import pyzbar
    except ImportError as error:
        pytest.fail(f"pyzbar cannot load libzbar ({error}): apt-get install -y libzbar0")
    if image.mode in ("RGBA", "LA", "P"):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    symbols = pyzbar.decode(image.convert("L"), symbols=[pyzbar.ZBarSymbol.QRCODE])
    return [symbol.data.decode("utf-8") for symbol in symbols]


def zbarimg_decode(path: Path) -> list[str]:
    """Symbols found by the zbarimg command, one per line, as the UTF-8 text zbar made."""
    result = subprocess.run(
        [
            tool("zbarimg"),
            "--quiet",
            "--raw",
            "--nodbus",
            "-Sdisable",
            "-Sqrcode.enable",
            str(path),
        ],
        capture_output=True,
    )
    assert result.returncode == 0, f"zbarimg found nothing: {result.stderr!r}"
    return result.stdout.decode("utf-8").removesuffix("\n").split("\n")


def raster_path(rendered: RenderedFile, tmp_path: Path) -> Path:
    """PNG as is, SVG through librsvg, PDF through poppler at 150 dpi."""
    source = tmp_path / f"code.{rendered.extension}"
    source.write_bytes(rendered.content)
    if rendered.extension == "svg":
        target = tmp_path / "svg.png"
        run("rsvg-convert", "--format", "png", "--output", str(target), str(source))
    elif rendered.extension == "pdf":
        run("qpdf", "--check", str(source))
        run("pdftoppm", "-png", "-r", "150", "-singlefile", str(source), str(tmp_path / "pdf"))
        target = tmp_path / "pdf.png"
    else:
        target = source
    return target


def rasterize(rendered: RenderedFile, tmp_path: Path) -> Image.Image:
    with Image.open(raster_path(rendered, tmp_path)) as image:
        image.load()
        return image


def render(data: str, **options: Any) -> RenderedFile:
    return render_qr(QrOptions(data=data, **options))


def side(data: str, level: str = "M", border: int = 4) -> int:
    return modules_for_version(check_qr_capacity(data, ErrorCorrection(level))) + 2 * border


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("payload", PAYLOADS, ids=["url", "unicode", "numeric", "alphanumeric"])
def test_every_format_decodes_to_its_payload(fmt: QrFormat, payload: str, tmp_path: Path) -> None:
    image = rasterize(render(payload, format=fmt), tmp_path)
    assert zbar_decode(image) == [payload]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize("payload", NON_ASCII.values(), ids=NON_ASCII.keys())
def test_non_ascii_decodes_exactly_at_every_level(
    fmt: QrFormat, level: ErrorCorrection, payload: str, tmp_path: Path
) -> None:
    # Without an ECI zbar guesses the byte encoding: "ünïcode" came back as Shift-JIS.
    rendered = render(payload, format=fmt, error_correction=level, scale=6)
    if fmt is QrFormat.png:
        assert zbar_decode(rasterize(rendered, tmp_path)) == [payload]
    else:
        assert zbarimg_decode(raster_path(rendered, tmp_path)) == [payload]


@pytest.mark.parametrize("level", [ErrorCorrection.L, ErrorCorrection.H])
@pytest.mark.parametrize("payload", MIXED_SEGMENTS, ids=["digits", "digits-and-capitals"])
def test_non_ascii_with_numeric_and_alphanumeric_segments_decodes(
    level: ErrorCorrection, payload: str, tmp_path: Path
) -> None:
    assert zbar_decode(rasterize(render(payload, error_correction=level), tmp_path)) == [payload]


def stream_head(data: str, level: ErrorCorrection) -> int:
    """The first 12 bits of the symbol's data bit stream, read back from its codewords."""
    qr = fit_qr(data, level)
    qr.make(fit=False)
    # Data codewords are interleaved block by block: block 0's second one comes after
    # every block's first.
    blocks = len(rs_blocks(qr.version, qr.error_correction))
    first, second = qr.data_cache[0], qr.data_cache[blocks]
    return int(first << 4 | second >> 4)


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize("payload", [*NON_ASCII.values(), *MIXED_SEGMENTS, "é" * 600])
def test_non_ascii_starts_with_eci_utf8(level: ErrorCorrection, payload: str) -> None:
    assert stream_head(payload, level) == ECI_UTF8_HEADER


@pytest.mark.parametrize("level", list(ErrorCorrection))
@pytest.mark.parametrize("payload", [URL, NUMERIC, ALPHANUMERIC, "hello", "a" * 1000])
def test_ascii_carries_no_eci(level: ErrorCorrection, payload: str) -> None:
    # The stream opens with a data segment (numeric, alphanumeric or byte), not ECI 0111.
    assert stream_head(payload, level) >> 8 in {0b0001, 0b0010, 0b0100}


@pytest.mark.parametrize(
    ("payload", "versions"),
    [
        (URL, [5, 6, 8, 9]),
        (ALPHANUMERIC, [3, 3, 4, 5]),
        (NUMERIC, [1, 2, 2, 3]),
        ("a" * 8, [1, 1, 1, 2]),
    ],
)
def test_ascii_sizes_are_unchanged(payload: str, versions: list[int]) -> None:
    # The versions these payloads had before non-ASCII text gained its ECI header.
    assert [check_qr_capacity(payload, level) for level in ErrorCorrection] == versions


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("level", list(ErrorCorrection))
def test_every_error_correction_level_decodes(
    fmt: QrFormat, level: ErrorCorrection, tmp_path: Path
) -> None:
    image = rasterize(render(URL, format=fmt, error_correction=level), tmp_path)
    assert zbar_decode(image) == [URL]


def test_higher_error_correction_needs_more_modules() -> None:
    sizes = [side(URL, level) for level in "LMQH"]
    assert sizes == sorted(sizes)
    assert sizes[0] < sizes[-1]


@pytest.mark.parametrize(
    ("fmt", "content_type", "magic"),
    [
        (QrFormat.png, "image/png", b"\x89PNG\r\n\x1a\n"),
        (QrFormat.svg, "image/svg+xml", b"<svg "),
        (QrFormat.pdf, "application/pdf", b"%PDF-"),
    ],
)
def test_rendered_file_metadata(fmt: QrFormat, content_type: str, magic: bytes) -> None:
    rendered = render(URL, format=fmt)
    assert rendered == RenderedFile(rendered.content, content_type, fmt.value)
    assert rendered.content.startswith(magic)


@pytest.mark.parametrize("fmt", FORMATS)
def test_custom_colours_are_drawn(fmt: QrFormat, tmp_path: Path) -> None:
    scale, border = 8, 4
    rendered = render(URL, format=fmt, scale=scale, border=border, dark="#1A237E", light="#FFF8E1")
    image = rasterize(rendered, tmp_path).convert("RGB")
    # The top-left finder pattern starts with a dark module right inside the quiet zone.
    ratio = image.width / (side(URL, border=border) * scale)
    dark = image.getpixel((int((border + 0.5) * scale * ratio),) * 2)
    light = image.getpixel((int(0.5 * scale * ratio),) * 2)
    tolerance = 0 if fmt is QrFormat.png else 2
    assert isinstance(dark, tuple)
    assert isinstance(light, tuple)
    assert all(abs(a - b) <= tolerance for a, b in zip(dark, (0x1A, 0x23, 0x7E), strict=True))
    assert all(abs(a - b) <= tolerance for a, b in zip(light, (0xFF, 0xF8, 0xE1), strict=True))
    assert zbar_decode(image) == [URL]


@pytest.mark.parametrize(
    ("dark", "light"),
    [("#00000080", "#FFFFFF00"), ("#1A237E", "#FFFFFF00"), ("#000000CC", "#FFFFFF")],
)
def test_alpha_colour_gives_rgba_png(dark: str, light: str) -> None:
    scale, border = 10, 4
    with Image.open(io.BytesIO(render(URL, dark=dark, light=light).content)) as image:
        image.load()
    assert image.mode == "RGBA"
    corner = image.getpixel((0, 0))
    finder = image.getpixel(((border * scale) + 1,) * 2)
    assert isinstance(corner, tuple)
    assert isinstance(finder, tuple)
    assert corner[3] == int(light[7:9] or "FF", 16)
    assert finder[3] == int(dark[7:9] or "FF", 16)
    assert zbar_decode(image) == [URL]


@pytest.mark.parametrize("fmt", [QrFormat.svg, QrFormat.pdf])
def test_vector_alpha_decodes_over_white(fmt: QrFormat, tmp_path: Path) -> None:
    rendered = render(URL, format=fmt, dark="#000000B0", light="#FFFFFF00")
    assert zbar_decode(rasterize(rendered, tmp_path)) == [URL]


def test_opaque_png_is_a_small_palette_image() -> None:
    rendered = render(URL, dark="#1A237E", light="#FFF8E1")
    with Image.open(io.BytesIO(rendered.content)) as image:
        assert image.mode in ("P", "1", "L")
    assert len(rendered.content) < 4000


@pytest.mark.parametrize(("scale", "border"), [(1, 0), (3, 2), (10, 4), (7, 20)])
def test_png_size_is_modules_times_scale(scale: int, border: int) -> None:
    with Image.open(io.BytesIO(render(URL, scale=scale, border=border).content)) as image:
        assert image.size == (side(URL, border=border) * scale,) * 2


def test_svg_is_a_single_path_sized_by_scale() -> None:
    root = ET.fromstring(render(URL, format="svg", scale=6, border=2).content)
    size = side(URL, border=2)
    assert root.get("viewBox") == f"0 0 {size} {size}"
    assert root.get("width") == root.get("height") == str(size * 6)
    assert len(root.findall("{http://www.w3.org/2000/svg}path")) == 1
    assert not root.findall("{http://www.w3.org/2000/svg}image")


def test_svg_alpha_uses_fill_opacity() -> None:
    svg = render(URL, format="svg", dark="#1A237E80", light="#FFFFFF00").content.decode()
    assert 'fill="#1A237E" fill-opacity="0.502"' in svg
    assert "<rect" not in svg


def test_pdf_is_one_vector_page_sized_in_points(tmp_path: Path) -> None:
    rendered = render(URL, format="pdf", scale=5)
    path = tmp_path / "code.pdf"
    path.write_bytes(rendered.content)
    info = run("pdfinfo", str(path))
    points = side(URL) * 5
    assert "Pages:           1" in info
    assert f"Page size:       {points} x {points} pts" in info
    images = run("pdfimages", "-list", str(path)).splitlines()
    assert len(images) == 2, "a vector PDF embeds no images"


def test_pdf_alpha_uses_an_extgstate(tmp_path: Path) -> None:
    path = tmp_path / "code.pdf"
    path.write_bytes(render(URL, format="pdf", dark="#1A237E80").content)
    run("qpdf", "--check", str(path))
    dump = run("qpdf", "--qdf", "--object-streams=disable", str(path), "-")
    assert "/ExtGState" in dump
    assert "/ca 0.502" in dump
    assert "/GSDark gs" in dump


@pytest.mark.parametrize("level", list(ErrorCorrection))
def test_largest_payload_renders_as_version_40(level: ErrorCorrection, tmp_path: Path) -> None:
    limit = {"L": 2953, "M": 2331, "Q": 1663, "H": 1273}[level]
    payload = (URL * 40)[:limit]
    assert check_qr_capacity(payload, level) == 40
    image = rasterize(render(payload, error_correction=level, scale=4), tmp_path)
    assert zbar_decode(image) == [payload]


@pytest.mark.parametrize("level", [ErrorCorrection.L, ErrorCorrection.H])
def test_largest_non_ascii_payload_renders_as_version_40(
    level: ErrorCorrection, tmp_path: Path
) -> None:
    limit = UTF8_CAPACITY[level]
    text = (UNICODE * 400).encode()[:limit].decode(errors="ignore")
    payload = text + "a" * (limit - len(text.encode()))
    assert len(payload.encode()) == limit
    assert check_qr_capacity(payload, level) == 40
    image = rasterize(render(payload, error_correction=level, scale=4), tmp_path)
    assert zbar_decode(image) == [payload]
    with pytest.raises(QrCapacityError, match=f"holds at most {limit} bytes"):
        check_qr_capacity(payload + "a", level)


@pytest.mark.parametrize(
    ("data", "level", "version"),
    [
        ("a", "L", 1),
        ("1" * 41, "L", 1),
        ("1" * 42, "L", 2),
        ("a" * 7, "H", 1),
        ("a" * 8, "H", 2),
        ("a" * 213, "M", 10),
        ("a" * 214, "M", 11),
        ("é" * 1476, "L", 40),
    ],
)
def test_check_qr_capacity_returns_the_version(data: str, level: str, version: int) -> None:
    assert check_qr_capacity(data, ErrorCorrection(level)) == version


def test_alphanumeric_text_uses_a_single_segment_when_that_is_smaller() -> None:
    # qrcode's optimiser alone would put the 10-letter pieces in byte mode and overflow.
    data = ("ABCDEFGHIJ" + "1" * 20) * 143
    assert len(data) == 4290
    assert check_qr_capacity(data, ErrorCorrection.L) == 40


@pytest.mark.parametrize(
    ("data", "level", "message"),
    [
        ("a" * 3000, "H", "data is 3000 bytes; a QR code at level H holds at most 1273 bytes"),
        (
            "é" * 1477,
            "L",
            "data is 2954 bytes in UTF-8; a QR code at level L holds at most 2952 bytes "
            "of text with non-ASCII characters",
        ),
        (
            "é" * 1476 + "a",
            "L",
            "data is 2953 bytes in UTF-8; a QR code at level L holds at most 2952 bytes "
            "of text with non-ASCII characters",
        ),
        ("9" * 7090, "L", "data is 7090 digits; a QR code at level L holds at most 7089 digits"),
        (
            "Z" * 1853,
            "H",
            "data is 1853 characters; a QR code at level H holds at most "
            "1852 alphanumeric characters",
        ),
    ],
)
def test_check_qr_capacity_refuses_overflow(data: str, level: str, message: str) -> None:
    with pytest.raises(QrCapacityError) as raised:
        check_qr_capacity(data, ErrorCorrection(level))
    assert str(raised.value) == message
    assert isinstance(raised.value, ValueError)


def test_render_refuses_unvalidated_overflow() -> None:
    options = QrOptions.model_construct(data="a" * 1274, error_correction=ErrorCorrection.H)
    with pytest.raises(QrCapacityError, match="at most 1273 bytes"):
        render_qr(options)


@pytest.mark.parametrize("fmt", list(QrFormat))
def test_rendering_again_later_gives_the_same_bytes(
    fmt: QrFormat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job run twice (at-least-once delivery) must store the same result."""
    options = QrOptions(data=URL, format=fmt)
    first = render_qr(options).content
    later = time.time() + 86400
    monkeypatch.setattr(time, "time", lambda: later)
    assert render_qr(options).content == first
