"""Small input PDFs with known text on each page, built with pypdf (no fixture files)."""

from __future__ import annotations

from pathlib import Path
from typing import cast

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
)


def page_text(number: int) -> str:
    return f"Original page {number}"


def text_pdf(
    path: Path,
    pages: int = 3,
    *,
    size: tuple[float, float] = (612, 792),
    rotate: int = 0,
    origin: tuple[float, float] = (0, 0),
    inherit_resources: bool = False,
    leave_state_dirty: bool = False,
) -> Path:
    """``pages`` pages saying ``Original page N`` in Helvetica. ``origin`` moves the media
    box; ``inherit_resources`` puts the font on the page tree, not the pages;
    ``leave_state_dirty`` ends each content stream with an unbalanced ``q`` and a scaled
    CTM, as some producers do."""
    writer = PdfWriter()
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/Type1"),
            NameObject("/BaseFont"): NameObject("/Helvetica"),
        }
    )
    resources = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    x0, y0 = origin
    for number in range(1, pages + 1):
        page = writer.add_blank_page(width=size[0], height=size[1])
        page[NameObject("/MediaBox")] = ArrayObject(
            FloatObject(v) for v in (x0, y0, x0 + size[0], y0 + size[1])
        )
        if rotate:
            page[NameObject("/Rotate")] = NumberObject(rotate)
        if inherit_resources:
            del page[NameObject("/Resources")]
        else:
            page[NameObject("/Resources")] = resources
        ops = f"BT /F1 18 Tf {x0 + 72} {y0 + size[1] / 2} Td ({page_text(number)}) Tj ET\n"
        if leave_state_dirty:
            ops += "q 0.1 0 0 0.1 0 0 cm 1 0 0 rg\n"
        stream = DecodedStreamObject()
        stream.set_data(ops.encode("ascii"))
        page[NameObject("/Contents")] = writer._add_object(stream)
    if inherit_resources:
        tree = cast(DictionaryObject, writer.root_object["/Pages"].get_object())
        tree[NameObject("/Resources")] = resources
    with path.open("wb") as out:
        writer.write(out)
    return path
