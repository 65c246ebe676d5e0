"""QR rendering round-trips through independent decoders (zbar, poppler, librsvg, qpdf)."""

import io
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from schemas.qr import ErrorCorrection, QrFormat, QrOptions
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
FORMATS = list(QrFormat)
TOOLS = {
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


def rasterize(rendered: RenderedFile, tmp_path: Path) -> Image.Image:
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
    with Image.open(target) as image:
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
        ("é" * 1477, "L", "data is 2954 bytes; a QR code at level L holds at most 2953 bytes"),
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
