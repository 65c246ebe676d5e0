"""Drawing on top of an existing PDF's pages: a text watermark, a vector QR stamp.

What is drawn is made once, as a Form XObject shared by every page; each chosen page gets a
reference to it in its resources and two small content streams around its own content,
``q`` before and ``Q <placement> Do`` after, so the page's graphics state cannot leak into the
drawing and nothing of the page is rewritten (pypdf's ``merge_page`` re-parses and copies
the page's content instead). Placement follows the page's crop box and /Rotate, so a corner
is the corner the reader sees.

Pure (no broker, no HTTP): the job opens and saves the PDF (tasks/pdf_guard.py); these work
on a ``PdfWriter`` in memory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import cast

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError
from pypdf import PageObject, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    RectangleObject,
    StreamObject,
)

from schemas.pdf_draw import Corner, PdfStampQrRequest, PdfWatermarkRequest
from schemas.qr_sheet import MIN_MODULE_MM, MM
from tasks.pdf_font import FontUse, load_font, show_text, text_span
from tasks.pdf_guard import PdfInputError
from tasks.qr_encoder import QrCapacityError, check_qr_capacity, modules_for_version
from tasks.qr_matrix import qr_modules
from tasks.qr_sheet import dark_runs, rgb

Progress = Callable[[int, int], None]
Matrix = tuple[float, float, float, float, float, float]
STAMP_NAME = "/OflQr"
WATERMARK_NAME = "/OflWatermark"


class StampOutsidePage(PdfInputError):
    """The code, at the position asked, would not lie within a page."""

    error_type = "stamp_outside_page"


def watermark(
    writer: PdfWriter,
    options: PdfWatermarkRequest,
    indices: Iterable[int],
    progress: Progress | None = None,
) -> int:
    """Draw ``options.text`` centred on each page in ``indices`` (0-based) of ``writer``;
    returns the pages drawn on."""
    form = writer._add_object(_watermark_form(writer, options))
    return _overlay(writer, indices, WATERMARK_NAME, form, _centre, progress)


def stamp_qr(
    writer: PdfWriter,
    options: PdfStampQrRequest,
    indices: Iterable[int],
    progress: Progress | None = None,
) -> int:
    """Stamp a QR code of ``options.data`` on each page in ``indices``; returns the count.
    Raises StampOutsidePage when a page is too small for the code where it is asked."""
    modules = qr_modules(options.data, options.error_correction)
    side = len(modules) + 2 * options.border
    form = writer._add_object(_qr_form(modules, options))
    scale = options.size / side

    def place(width: float, height: float) -> Matrix:
        x, y = _stamp_origin(options, width, height)
        return (scale, 0, 0, scale, x, y)

    return _overlay(writer, indices, STAMP_NAME, form, place, progress)


def check_stamp_qr(options: PdfStampQrRequest) -> None:
    """At submit: the data fits a QR code at its level, and at ``size`` its modules are at
    least MIN_MODULE_MM, what a scanner reads. Raises ValidationError naming ``data`` or
    ``size`` (with the smallest size that works). CPU-bound up to ~25 ms (the capacity fit)."""
    try:
        version = check_qr_capacity(options.data, options.error_correction)
    except QrCapacityError as error:
        raise _refused("data", "qr_capacity", str(error), options.data) from None
    side = modules_for_version(version) + 2 * options.border
    smallest = side * MIN_MODULE_MM * MM
    if options.size + 1e-9 < smallest:
        message = (
            f"a version {version} code with border {options.border} is {side} modules "
            f"across; at size {options.size:g} pt its modules would be under {MIN_MODULE_MM} "
            f"mm, too small to scan: size must be at least {math.ceil(smallest)}"
        )
        raise _refused("size", "qr_too_small", message, options.size)


def _refused(field: str, kind: str, message: str, value: object) -> ValidationError:
    fault = InitErrorDetails(type=PydanticCustomError(kind, message), loc=(field,), input=value)
    return ValidationError.from_exception_data("PdfStampQrRequest", [fault])


def _stamp_origin(options: PdfStampQrRequest, width: float, height: float) -> tuple[float, float]:
    size, margin = options.size, options.margin
    if options.x is not None and options.y is not None:
        x, y = options.x, options.y
    elif options.position is Corner.middle:
        x, y = (width - size) / 2, (height - size) / 2
    else:
        vertical, horizontal = options.position.value.split("-")
        x = margin if horizontal == "left" else width - margin - size
        y = margin if vertical == "bottom" else height - margin - size
    if x < -0.01 or y < -0.01 or x + size > width + 0.01 or y + size > height + 0.01:
        raise StampOutsidePage(
            f"a {size:g} pt code at x={x:g}, y={y:g} does not fit a {width:g} x {height:g} pt "
            "page; choose a smaller size or margin, or another position"
        )
    return x, y


def _centre(width: float, height: float) -> Matrix:
    return (1, 0, 0, 1, width / 2, height / 2)


def _overlay(
    writer: PdfWriter,
    indices: Iterable[int],
    name: str,
    form: IndirectObject,
    place: Callable[[float, float], Matrix],
    progress: Progress | None,
) -> int:
    chosen = list(indices)
    opening = writer._add_object(_content(b"q\n"))
    closings: dict[tuple[str | float, ...], IndirectObject] = {}
    for done, index in enumerate(chosen, start=1):
        page = writer.pages[index]
        box, rotation = _visible_box(page)
        view = _view_matrix(box, rotation)
        width, height = _shown_size(box, rotation)
        used = _add_xobject(page, name, form)
        key = (used, *view, *place(width, height))
        if key not in closings:
            ops = b"Q q %s cm %s cm %s Do Q\n" % (
                _matrix(view),
                _matrix(place(width, height)),
                used.encode(),
            )
            closings[key] = writer._add_object(_content(ops))
        contents = page.get("/Contents")
        original = contents.get_object() if contents is not None else ArrayObject()
        parts = list(original) if isinstance(original, ArrayObject) else [contents]
        page[NameObject("/Contents")] = ArrayObject([opening, *parts, closings[key]])
        if progress:
            progress(done, len(chosen))
    return len(chosen)


def _add_xobject(page: PageObject, name: str, form: IndirectObject) -> str:
    """Add ``form`` to the page's XObjects as ``name``, or ``name2``... when the page has a
    ``name`` of its own (stamped before): the earlier drawing keeps its form. The name used."""
    # A page may inherit its resources from the page tree: give it its own copy, or adding
    # the form would hide every inherited font and image.
    if "/Resources" not in page:
        inherited = page.get_inherited("/Resources", DictionaryObject())
        page[NameObject("/Resources")] = DictionaryObject(inherited.get_object())
    resources = cast(DictionaryObject, page["/Resources"].get_object())
    if "/XObject" not in resources:
        resources[NameObject("/XObject")] = DictionaryObject()
    xobjects = cast(DictionaryObject, resources["/XObject"].get_object())
    used, number = name, 1
    while used in xobjects and xobjects.raw_get(used) != form:
        number += 1
        used = f"{name}{number}"
    xobjects[NameObject(used)] = form
    return used


def _visible_box(page: PageObject) -> tuple[RectangleObject, int]:
    return page.cropbox, int(page.get_inherited("/Rotate", 0) or 0) % 360


def _shown_size(box: RectangleObject, rotation: int) -> tuple[float, float]:
    width, height = float(box.width), float(box.height)
    return (height, width) if rotation in (90, 270) else (width, height)


def _view_matrix(box: RectangleObject, rotation: int) -> Matrix:
    """From the page as shown (origin at its bottom-left) to the page's own coordinates."""
    x0, y0, x1, y1 = (float(v) for v in (box.left, box.bottom, box.right, box.top))
    return {
        0: (1, 0, 0, 1, x0, y0),
        90: (0, 1, -1, 0, x1, y0),
        180: (-1, 0, 0, -1, x1, y1),
        270: (0, -1, 1, 0, x0, y1),
    }.get(rotation, (1, 0, 0, 1, x0, y0))


def _matrix(values: Matrix) -> bytes:
    return b" ".join(b"%.4f" % value for value in values)


def _content(data: bytes) -> StreamObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    return stream


def _form(content: bytes, bbox: Iterable[float], resources: DictionaryObject) -> StreamObject:
    form = DecodedStreamObject()
    form.update(
        {
            NameObject("/Type"): NameObject("/XObject"),
            NameObject("/Subtype"): NameObject("/Form"),
            NameObject("/BBox"): ArrayObject(FloatObject(round(v, 3)) for v in bbox),
            NameObject("/Resources"): resources,
        }
    )
    form.set_data(content)
    return form.flate_encode()


def _qr_form(modules: tuple[bytes, ...], options: PdfStampQrRequest) -> StreamObject:
    side = len(modules) + 2 * options.border
    # Module units, rows downwards from the top: row numbers are y coordinates.
    content = b"%s 0 0 %d %d re f\n%s\n1 0 0 -1 %d %d cm\n%sf\n" % (
        rgb(options.light),
        side,
        side,
        rgb(options.dark),
        options.border,
        side - options.border,
        dark_runs(modules),
    )
    return _form(content, (0, 0, side, side), DictionaryObject())


def _watermark_form(writer: PdfWriter, options: PdfWatermarkRequest) -> StreamObject:
    font = FontUse(load_font())
    glyphs, width_units = font.encode(options.text)
    width = width_units * options.font_size / 1000
    cap = font.font.cap_height * options.font_size / 1000
    angle = math.radians(options.angle)
    cos, sin = math.cos(angle), math.sin(angle)
    content = b"q /OflAlpha gs %s\n%s cm\n%s%sEMC\nQ\n" % (
        rgb(options.colour),
        _matrix((cos, sin, -sin, cos, 0, 0)),
        text_span(options.text),
        show_text(glyphs, options.font_size, -width / 2, -cap / 2),
    )
    reach = math.hypot(width / 2, options.font_size) + options.font_size
    alpha = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/ExtGState"),
            NameObject("/ca"): FloatObject(options.opacity),
            NameObject("/CA"): FloatObject(options.opacity),
        }
    )
    resources = DictionaryObject(
        {
            NameObject("/Font"): DictionaryObject(
                {NameObject("/F1"): writer._add_object(font.build(writer._add_object))}
            ),
            NameObject("/ExtGState"): DictionaryObject({NameObject("/OflAlpha"): alpha}),
        }
    )
    return _form(content, (-reach, -reach, reach, reach), resources)
