"""A printable PDF sheet of vector QR codes with labels, written page by page to a file.

Each code is drawn as filled rectangles, one per horizontal run of dark modules, in module
units under a ``cm`` that scales it to the layout's code size; its label is real text in an
embedded font under it. Pages go to the file as they are made (tasks/pdf_stream.py), so
memory stays flat however many codes there are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from functools import cache
from itertools import islice, product
from pathlib import Path

from pypdf.generic import ArrayObject, DictionaryObject, FloatObject, NameObject, NumberObject

from schemas.qr_sheet import MM, SheetOptions
from tasks.pdf_font import FontUse, load_font, show_text, text_span
from tasks.pdf_stream import StreamingPdf

_NUMBERS = tuple(b"%d" % n for n in range(256))
_PIECE = 8
CONTENT_COMPRESSION = 1
"""zlib level of page contents: level 1 is twice as fast as 6 and the file ~15% larger."""


@dataclass(frozen=True)
class SheetCode:
    """One code on a sheet: rows of modules (``tasks.qr_matrix.qr_modules``) and a label."""

    modules: tuple[bytes, ...]
    label: str | None = None


class CodeDoesNotFitError(ValueError):
    """A symbol too large for the layout: its modules would be printed too small to scan."""


def write_qr_sheet(
    codes: Iterable[SheetCode],
    layout: SheetOptions,
    path: Path,
    on_page: Callable[[int], None] | None = None,
) -> int:
    """Write ``codes`` to ``path`` in ``layout``'s grid, row by row; returns the pages
    written. ``on_page(pages_so_far)`` runs after each page (progress, cancellation: an
    exception there stops the sheet). No codes gives one blank page, still a valid PDF.

    Raises CodeDoesNotFitError for a symbol wider than ``layout.max_symbol_modules``."""
    font = FontUse(load_font())
    with path.open("wb") as out:
        pdf = StreamingPdf(out)
        catalog, pages, resources = pdf.reserve(), pdf.reserve(), pdf.reserve()
        font_ref = pdf.reserve()
        page_box = ArrayObject(
            [NumberObject(0), NumberObject(0), *(FloatObject(v) for v in layout.page_points)]
        )
        kids = ArrayObject()
        first = 0
        for page_codes in _pages(iter(codes), layout.per_page):
            content = _page_content(page_codes, first, layout, font)
            page = DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Page"),
                    NameObject("/Parent"): pages,
                    NameObject("/MediaBox"): page_box,
                    NameObject("/Resources"): resources,
                    NameObject("/Contents"): pdf.add_stream(content, CONTENT_COMPRESSION),
                }
            )
            kids.append(pdf.add(page))
            first += len(page_codes)
            if on_page:
                on_page(len(kids))
        if not kids:
            blank = {NameObject("/Type"): NameObject("/Page"), NameObject("/Parent"): pages}
            blank[NameObject("/MediaBox")] = page_box
            kids.append(pdf.add(DictionaryObject(blank)))
        pdf.add(font.build(pdf.add), font_ref)
        fonts = DictionaryObject({NameObject("/F1"): font_ref})
        pdf.add(DictionaryObject({NameObject("/Font"): fonts}), resources)
        tree = DictionaryObject({NameObject("/Type"): NameObject("/Pages")})
        tree[NameObject("/Kids")] = kids
        tree[NameObject("/Count")] = NumberObject(len(kids))
        pdf.add(tree, pages)
        root = {NameObject("/Type"): NameObject("/Catalog"), NameObject("/Pages"): pages}
        pdf.add(DictionaryObject(root), catalog)
        pdf.close(catalog)
    return len(kids)


def _pages(codes: Iterator[SheetCode], per_page: int) -> Iterator[list[SheetCode]]:
    while page := list(islice(codes, per_page)):
        yield page


def _page_content(
    codes: list[SheetCode],
    first: int,
    layout: SheetOptions,
    font: FontUse,
) -> bytes:
    height = layout.page_points[1]
    cell_w, cell_h = layout.cell_points
    margin, gap = layout.margin_mm * MM, layout.gap_mm * MM
    side = layout.code_points
    light, dark = rgb(layout.light), rgb(layout.dark)
    parts: list[bytes] = []
    for index, code in enumerate(codes):
        row, column = divmod(index, layout.columns)
        left = margin + column * (cell_w + gap)
        top = height - margin - row * (cell_h + gap)
        symbol = len(code.modules)
        if symbol > layout.max_symbol_modules:
            raise CodeDoesNotFitError(
                f"code {first + index} has {symbol} modules across; this layout prints at "
                f"most {layout.max_symbol_modules} (use fewer rows or columns, or less data)"
            )
        total = symbol + 2 * layout.border
        scale = side / total
        x = left + (cell_w - side) / 2
        parts.append(b"q %.4f 0 0 %.4f %.3f %.3f cm\n" % (scale, -scale, x, top))
        parts.append(b"%s 0 0 %d %d re f\n%s\n" % (light, total, total, dark))
        parts.append(b"1 0 0 1 %d %d cm\n" % (layout.border, layout.border))
        parts.append(dark_runs(code.modules))
        parts.append(b"f Q\n")
        if code.label:
            parts.append(_label(code.label, left, cell_w, top - side, layout, font))
    return b"".join(parts)


def dark_runs(rows: tuple[bytes, ...]) -> bytes:
    """``x y w 1 re`` for every horizontal run of dark modules, in module units.

    Finding runs costs Python per run, so each row is cut into pieces of 8 modules whose
    operators (y left open as ``#``) come from a table made once per process; filling in y
    is a C-speed ``replace``. A run across a piece boundary becomes two abutting rectangles
    of the one filled path, which draws the same."""
    places = [(_piece_table(n), start, start + _PIECE) for n, start in _places(len(rows[0]))]
    return b"".join(
        [
            b"".join([table[row[start:end]] for table, start, end in places]).replace(
                b"#", _NUMBERS[y]
            )
            for y, row in enumerate(rows)
        ]
    )


def _places(width: int) -> enumerate[int]:
    return enumerate(range(0, width, _PIECE))


@cache
def _piece_table(place: int) -> dict[bytes, bytes]:
    """Operators of every piece of 1 to 8 modules at ``place`` (0: modules 0-7, ...)."""
    table = {}
    for length in range(1, _PIECE + 1):
        for modules in product(b"\x00\x01", repeat=length):
            piece = bytes(modules)
            table[piece] = _piece_ops(piece, place * _PIECE)
    return table


def _piece_ops(piece: bytes, offset: int) -> bytes:
    parts: list[bytes] = []
    x = offset
    for run in piece.split(b"\x00"):
        if run:
            parts.append(b"%d # %d 1 re\n" % (x, len(run)))
        x += len(run) + 1
    return b"".join(parts)


def _label(
    label: str, left: float, cell_w: float, code_bottom: float, layout: SheetOptions, font: FontUse
) -> bytes:
    glyphs, width = font.encode(label)
    size = layout.label_size_pt
    if width * size / 1000 > cell_w:
        size = cell_w * 1000 / width
    baseline = code_bottom - layout.label_size_pt * 1.1
    x = left + (cell_w - width * size / 1000) / 2
    return text_span(label) + show_text(glyphs, size, x, baseline) + b"EMC\n"


def rgb(colour: str) -> bytes:
    channels = (int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))
    return b"%.4g %.4g %.4g rg" % tuple(channels)
