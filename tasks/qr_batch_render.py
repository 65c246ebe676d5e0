"""Bulk QR drawing: a module matrix as a small 1-bit PNG, or as an SVG with an optional label.

The PNG is written here (IHDR, PLTE, tRNS when a colour has alpha, one IDAT): a 2-colour,
1-bit image is a third smaller than Pillow's 8-bit palette one and, with zlib level 6, faster
to make (bench/qr_encoders.py). The SVG is built with ElementTree, so a label is text in a
``<text>`` element whatever it holds (SECURITY.md 3.5).
"""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator, Sequence
from xml.etree import ElementTree

RGBA = tuple[int, int, int, int]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_DARK_RUN = re.compile(b"\x01+")
_SVG_NS = "http://www.w3.org/2000/svg"
LABEL_FONT_UNITS = 1.6
"""Label text height, in modules; a label line takes twice that below the code."""
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
"""Characters XML 1.0 cannot hold, even escaped: a label keeps the rest."""


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _with_border(rows: Sequence[bytes], border: int) -> list[bytes]:
    blank = bytes(len(rows) + 2 * border)
    pad = bytes(border)
    return [blank] * border + [pad + row + pad for row in rows] + [blank] * border


def _scanline(row: bytes, scale: int) -> bytes:
    """One PNG scanline (filter byte 0, then 1 bit a pixel) of a row of modules."""
    bits = "".join("1" * scale if module else "0" * scale for module in row)
    bits += "0" * (-len(bits) % 8)
    return b"\x00" + int(bits, 2).to_bytes(len(bits) // 8, "big")


def render_png(rows: Sequence[bytes], scale: int, border: int, dark: RGBA, light: RGBA) -> bytes:
    """A 1-bit palette PNG (index 0 light, 1 dark) of the modules ``rows``."""
    full = _with_border(rows, border)
    side = len(full) * scale
    lines: dict[bytes, bytes] = {}
    raw = b"".join(lines.setdefault(row, _scanline(row, scale)) * scale for row in full)
    parts = [
        _PNG_SIGNATURE,
        _chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 1, 3, 0, 0, 0)),
        _chunk(b"PLTE", bytes(light[:3] + dark[:3])),
    ]
    if light[3] < 255 or dark[3] < 255:
        parts.append(_chunk(b"tRNS", bytes((light[3], dark[3]))))
    parts += [_chunk(b"IDAT", zlib.compress(raw, 6)), _chunk(b"IEND", b"")]
    return b"".join(parts)


def _runs(rows: Sequence[bytes], offset: int) -> Iterator[tuple[int, int, int]]:
    for y, row in enumerate(rows):
        for match in _DARK_RUN.finditer(row):
            yield match.start() + offset, y + offset, match.end() - match.start()


def _fill(element: ElementTree.Element, colour: RGBA) -> None:
    element.set("fill", "#{:02X}{:02X}{:02X}".format(*colour[:3]))
    if colour[3] < 255:
        element.set("fill-opacity", f"{colour[3] / 255:.3g}")


def render_svg(
    rows: Sequence[bytes],
    scale: int,
    border: int,
    dark: RGBA,
    light: RGBA,
    label: str | None = None,
) -> bytes:
    """An SVG of the modules ``rows``, one path of horizontal runs, and ``label`` (text,
    escaped by ElementTree) centred below the code when given."""
    return svg_bytes(svg_code(rows, scale, border, dark, light, label))


def svg_bytes(svg: ElementTree.Element) -> bytes:
    written: bytes = ElementTree.tostring(svg, encoding="utf-8", xml_declaration=False)
    return written + b"\n"


def svg_code(
    rows: Sequence[bytes],
    scale: int,
    border: int,
    dark: RGBA,
    light: RGBA,
    label: str | None = None,
) -> ElementTree.Element:
    """The element :func:`render_svg` writes, for more to be drawn on it (a logo)."""
    size = len(rows) + 2 * border
    height = size + (2 * LABEL_FONT_UNITS if label else 0)
    svg = ElementTree.Element(
        "svg",
        {
            "xmlns": _SVG_NS,
            "viewBox": f"0 0 {size} {height:g}",
            "width": str(size * scale),
            "height": f"{height * scale:g}",
            "shape-rendering": "crispEdges",
        },
    )
    if light[3]:
        background = ElementTree.SubElement(
            svg, "rect", {"width": str(size), "height": f"{height:g}"}
        )
        _fill(background, light)
    path = "".join(f"M{x} {y}h{w}v1H{x}z" for x, y, w in _runs(rows, border))
    if dark[3] and path:
        _fill(ElementTree.SubElement(svg, "path", {"d": path}), dark)
    if label:
        text = ElementTree.SubElement(
            svg,
            "text",
            {
                "x": f"{size / 2:g}",
                "y": f"{size + LABEL_FONT_UNITS:g}",
                "font-family": "sans-serif",
                "font-size": f"{LABEL_FONT_UNITS:g}",
                "text-anchor": "middle",
            },
        )
        _fill(text, (*dark[:3], 255))
        text.text = _NOT_XML.sub("\ufffd", label)
    return svg
