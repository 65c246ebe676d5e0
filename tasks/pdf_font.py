"""Real, extractable text in any script for the PDFs we draw: an embedded TrueType font.

Text is drawn glyph by glyph (CIDFontType2, Identity-H: two bytes per glyph id), the font is
embedded as a subset of the glyphs used, and a ToUnicode map lets pdftotext and copy-paste
give the text back. Labels are also wrapped in ``/ActualText`` (see ``text_span``), which
keeps characters the font has no glyph for (emoji) in the extracted text. No shaping or bidi:
characters are set in the order given.
"""

from __future__ import annotations

import io
import os
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from fontTools import subset
from fontTools.ttLib import TTFont
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    TextStringObject,
)

PACKAGED_FONT = Path(__file__).parent / "fonts" / "DejaVuSans.ttf"
"""DejaVu Sans ships in the package (its licence, fonts/LICENSE, allows it), so a wheel
installed anywhere draws labels with no system font; ``OFFLOAD_PDF_FONT`` names another
TrueType file (one with CJK glyphs, say)."""
FONT_NAME = "OFLSUB+DejaVuSans"
_INVISIBLE = frozenset({"Cc", "Cf"})

AddObject = Callable[[PdfObject], IndirectObject]
"""Adds an object to the PDF being written and returns a reference to it."""


class FontMissingError(RuntimeError):
    """No TrueType font to set text with: the packaged one is gone, or OFFLOAD_PDF_FONT names
    no file."""


@dataclass(frozen=True)
class FontFile:
    """What drawing text needs from a TrueType file, read once per process."""

    path: Path
    cmap: dict[int, int]
    advances: tuple[int, ...]
    """Advance width of each glyph id, in 1/1000 of the font size."""
    ascent: int
    descent: int
    cap_height: int
    bbox: tuple[int, int, int, int]


@lru_cache(maxsize=4)
def load_font(path: Path | None = None) -> FontFile:
    path = path or _find_font()
    font = TTFont(path, lazy=True)
    scale = 1000 / font["head"].unitsPerEm
    metrics = font["hmtx"].metrics
    order = font.getGlyphOrder()
    advances = tuple(round(metrics[name][0] * scale) for name in order)
    ids = {name: gid for gid, name in enumerate(order)}
    cmap = {code: ids[name] for code, name in font.getBestCmap().items()}
    head, hhea = font["head"], font["hhea"]
    os2 = font["OS/2"]
    return FontFile(
        path=path,
        cmap=cmap,
        advances=advances,
        ascent=round(hhea.ascent * scale),
        descent=round(hhea.descent * scale),
        cap_height=round(getattr(os2, "sCapHeight", hhea.ascent) * scale),
        bbox=(
            round(head.xMin * scale),
            round(head.yMin * scale),
            round(head.xMax * scale),
            round(head.yMax * scale),
        ),
    )


def _find_font() -> Path:
    configured = os.environ.get("OFFLOAD_PDF_FONT")
    candidate = Path(configured) if configured else PACKAGED_FONT
    if not candidate.is_file():
        raise FontMissingError(f"no TrueType font at {candidate}")
    return candidate


@dataclass
class FontUse:
    """The glyphs one PDF uses, so the embedded subset and the ToUnicode map cover them."""

    font: FontFile
    unicode: dict[int, str] = field(default_factory=dict)

    def encode(self, text: str) -> tuple[ByteStringObject, int]:
        """``text`` as a string of glyph ids and its width in 1/1000 of the font size.
        Control and format characters (a newline, a bidi override) draw nothing; the
        ActualText around the glyphs still holds them."""
        glyphs = bytearray()
        width = 0
        for char in text:
            if char < " " or (char > "~" and unicodedata.category(char) in _INVISIBLE):
                continue
            gid = self.font.cmap.get(ord(char), 0)
            glyphs += gid.to_bytes(2, "big")
            width += self.font.advances[gid]
            if gid:
                self.unicode.setdefault(gid, char)
        return ByteStringObject(bytes(glyphs)), width

    def build(self, add: AddObject) -> DictionaryObject:
        """The Type0 font dictionary; its descendant, descriptor, subset file and ToUnicode
        map are added through ``add``. Call once, after the last ``encode``."""
        gids = sorted(self.unicode)
        subset_file = DecodedStreamObject()
        subset_file.set_data(_subset(self.font.path, gids))
        file_stream = subset_file.flate_encode()
        descriptor = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/FontDescriptor"),
                NameObject("/FontName"): NameObject("/" + FONT_NAME),
                NameObject("/Flags"): NumberObject(32),
                NameObject("/FontBBox"): ArrayObject(NumberObject(v) for v in self.font.bbox),
                NameObject("/ItalicAngle"): NumberObject(0),
                NameObject("/Ascent"): NumberObject(self.font.ascent),
                NameObject("/Descent"): NumberObject(self.font.descent),
                NameObject("/CapHeight"): NumberObject(self.font.cap_height),
                NameObject("/StemV"): NumberObject(80),
                NameObject("/FontFile2"): add(file_stream),
            }
        )
        widths = ArrayObject()
        for gid in gids:
            widths += [NumberObject(gid), ArrayObject([NumberObject(self.font.advances[gid])])]
        cid_font = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/CIDFontType2"),
                NameObject("/BaseFont"): NameObject("/" + FONT_NAME),
                NameObject("/CIDSystemInfo"): DictionaryObject(
                    {
                        NameObject("/Registry"): TextStringObject("Adobe"),
                        NameObject("/Ordering"): TextStringObject("Identity"),
                        NameObject("/Supplement"): NumberObject(0),
                    }
                ),
                NameObject("/FontDescriptor"): add(descriptor),
                NameObject("/DW"): NumberObject(self.font.advances[0]),
                NameObject("/W"): widths,
                NameObject("/CIDToGIDMap"): NameObject("/Identity"),
            }
        )
        to_unicode = DecodedStreamObject()
        to_unicode.set_data(_to_unicode_cmap(self.unicode))
        return DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type0"),
                NameObject("/BaseFont"): NameObject("/" + FONT_NAME),
                NameObject("/Encoding"): NameObject("/Identity-H"),
                NameObject("/DescendantFonts"): ArrayObject([add(cid_font)]),
                NameObject("/ToUnicode"): add(to_unicode.flate_encode()),
            }
        )


def text_span(text: str) -> bytes:
    """Marked-content operators that make ``text`` what extraction returns for the glyphs
    drawn between them, characters without a glyph included. pypdf encodes the text string
    (PDFDocEncoding or UTF-16 with its mark) and writes it as a hex string: whatever
    ``text`` holds, ``)``, ``\\`` or ``EMC``, only hex digits reach the content stream."""
    out = io.BytesIO()
    out.write(b"/Span <</ActualText ")
    ByteStringObject(TextStringObject(text).get_encoded_bytes()).write_to_stream(out)
    out.write(b">> BDC\n")
    return out.getvalue()


def show_text(glyphs: ByteStringObject, size: float, x: float, y: float) -> bytes:
    """BT ... ET drawing ``glyphs`` (from :meth:`FontUse.encode`) with font /F1 at (x, y)."""
    out = io.BytesIO()
    out.write(b"BT /F1 %.3f Tf %.3f %.3f Td " % (size, x, y))
    glyphs.write_to_stream(out)
    out.write(b" Tj ET\n")
    return out.getvalue()


def _subset(path: Path, gids: list[int]) -> bytes:
    options = subset.Options()
    options.retain_gids = True  # content streams already hold the original glyph ids
    options.notdef_outline = True
    options.layout_features = []
    options.name_IDs = []
    options.hinting = False
    # Tables text without shaping never reads; FFTM (FontForge) fontTools cannot subset.
    options.drop_tables += ["FFTM", "GSUB", "GPOS", "GDEF", "kern", "hdmx", "LTSH", "gasp"]
    font = TTFont(path, lazy=True)  # 10x faster: only the glyphs kept are decompiled
    subsetter = subset.Subsetter(options)
    subsetter.populate(gids=[0, *gids])
    subsetter.subset(font)
    out = io.BytesIO()
    font.save(out)
    return out.getvalue()


def _to_unicode_cmap(unicode: dict[int, str]) -> bytes:
    lines = [
        b"/CIDInit /ProcSet findresource begin 12 dict begin begincmap",
        b"/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def",
        b"/CMapName /Adobe-Identity-UCS def /CMapType 2 def",
        b"1 begincodespacerange <0000> <FFFF> endcodespacerange",
    ]
    items = sorted(unicode.items())
    for start in range(0, len(items), 100):
        chunk = items[start : start + 100]
        lines.append(b"%d beginbfchar" % len(chunk))
        for gid, char in chunk:
            lines.append(b"<%04X> <%s>" % (gid, char.encode("utf-16be").hex().upper().encode()))
        lines.append(b"endbfchar")
    lines.append(b"endcmap CMapName currentdict /CMap defineresource pop end end")
    return b"\n".join(lines) + b"\n"
