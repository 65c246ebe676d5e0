"""Pure QR code rendering: one module matrix, emitted as PNG, SVG or PDF."""

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from PIL import Image
from pypdf import PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, FloatObject, NameObject

from schemas.qr import ErrorCorrection, QrFormat, QrOptions
from tasks.qr_encoder import QrCapacityError, check_qr_capacity, modules_for_version
from tasks.qr_limits import check_qr_options
from tasks.qr_matrix import qr_modules

__all__ = [
    "QrCapacityError",
    "RenderedFile",
    "check_qr_capacity",
    "modules_for_version",
    "render_qr",
    "render_within_limits",
]

_DARK_RUN = re.compile(b"\x01+")

RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class RenderedFile:
    content: bytes
    content_type: str
    extension: str


def _matrix(data: str, level: ErrorCorrection, border: int) -> list[bytes]:
    rows = qr_modules(data, level)
    blank = bytes(len(rows) + 2 * border)
    pad = bytes(border)
    return [blank] * border + [pad + row + pad for row in rows] + [blank] * border


def _rgba(colour: str) -> RGBA:
    digits = colour.removeprefix("#")
    alpha = int(digits[6:8], 16) if len(digits) == 8 else 255
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha


def _runs(rows: list[bytes]) -> Iterator[tuple[int, int, int]]:
    """Yield (x, y, width) for every horizontal run of dark modules."""
    for y, row in enumerate(rows):
        for match in _DARK_RUN.finditer(row):
            yield match.start(), y, match.end() - match.start()


def _png(rows: list[bytes], scale: int, dark: RGBA, light: RGBA) -> RenderedFile:
    size = len(rows)
    image = Image.frombytes("P", (size, size), b"".join(rows))
    if dark[3] == 255 and light[3] == 255:
        image.putpalette(light[:3] + dark[:3])
    else:
        image.putpalette(light + dark, rawmode="RGBA")
        image = image.convert("RGBA")
    image = image.resize((size * scale, size * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return RenderedFile(buffer.getvalue(), "image/png", "png")


def _svg_fill(colour: RGBA) -> str:
    fill = f'fill="#{colour[0]:02X}{colour[1]:02X}{colour[2]:02X}"'
    if colour[3] < 255:
        fill += f' fill-opacity="{colour[3] / 255:.3g}"'
    return fill


def _svg(rows: list[bytes], scale: int, dark: RGBA, light: RGBA) -> RenderedFile:
    size = len(rows)
    path = "".join(f"M{x} {y}h{w}v1H{x}z" for x, y, w in _runs(rows))
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {size} {size}" '
        f'width="{size * scale}" height="{size * scale}" shape-rendering="crispEdges">'
    ]
    if light[3]:
        parts.append(f'<rect width="{size}" height="{size}" {_svg_fill(light)}/>')
    if dark[3] and path:
        parts.append(f'<path {_svg_fill(dark)} d="{path}"/>')
    parts.append("</svg>\n")
    return RenderedFile("".join(parts).encode("utf-8"), "image/svg+xml", "svg")


def _pdf_fill(colour: RGBA, state: str, states: DictionaryObject) -> str:
    ops = " ".join(f"{channel / 255:.4g}" for channel in colour[:3]) + " rg\n"
    if colour[3] < 255:
        states[NameObject(f"/{state}")] = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/ExtGState"),
                NameObject("/ca"): FloatObject(round(colour[3] / 255, 4)),
            }
        )
        ops = f"/{state} gs\n" + ops
    return ops


def _pdf(rows: list[bytes], scale: int, dark: RGBA, light: RGBA) -> RenderedFile:
    size = len(rows)
    side = size * scale
    states = DictionaryObject()
    # Module units with the origin at the top-left, so row numbers are y coordinates.
    content = [f"q\n{scale} 0 0 -{scale} 0 {side} cm\n"]
    if light[3]:
        content.append("q\n" + _pdf_fill(light, "GSLight", states))
        content.append(f"0 0 {size} {size} re f\nQ\n")
    if dark[3]:
        content.append("q\n" + _pdf_fill(dark, "GSDark", states))
        content.extend(f"{x} {y} {w} 1 re\n" for x, y, w in _runs(rows))
        content.append("f\nQ\n")
    content.append("Q\n")

    writer = PdfWriter()
    page = writer.add_blank_page(width=side, height=side)
    resources = DictionaryObject()
    if states:
        resources[NameObject("/ExtGState")] = states
    page[NameObject("/Resources")] = resources
    stream = DecodedStreamObject()
    stream.set_data("".join(content).encode("ascii"))
    page.replace_contents(stream.flate_encode())
    buffer = io.BytesIO()
    writer.write(buffer)
    return RenderedFile(buffer.getvalue(), "application/pdf", "pdf")


_RENDERERS: dict[QrFormat, Callable[[list[bytes], int, RGBA, RGBA], RenderedFile]] = {
    QrFormat.png: _png,
    QrFormat.svg: _svg,
    QrFormat.pdf: _pdf,
}


def render_qr(options: QrOptions) -> RenderedFile:
    """Render ``options.data`` (UTF-8) as a QR code in the requested format.

    PNG is a 2-colour palette image, or RGBA when a colour has alpha. SVG and PDF draw one
    rectangle per horizontal run of dark modules; their alpha becomes SVG fill-opacity or a
    PDF ExtGState /ca, and a fully transparent background is left out.
    """
    rows = _matrix(options.data, options.error_correction, options.border)
    render = _RENDERERS[options.format]
    return render(rows, options.scale, _rgba(options.dark), _rgba(options.light))


def render_within_limits(options: QrOptions, max_png_pixels: int) -> RenderedFile:
    """Check again what the API checked at submit: a job queued under a higher pixel limit
    (or by a client that skipped the API) must not render beyond this worker's limit.

    The QR job runs this in its worker's CPU pool: this module imports no broker."""
    check_qr_options(options, max_png_pixels=max_png_pixels)
    return render_qr(options)
