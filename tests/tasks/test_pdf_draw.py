"""Watermark and QR stamp on existing pages: judged by qpdf, poppler and zbar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from pypdf import PdfReader, PdfWriter
from pyzbar.pyzbar import ZBarSymbol, decode

from schemas.pdf_draw import PdfStampQrRequest, PdfWatermarkRequest
from tasks.pdf_draw import StampOutsidePage, check_stamp_qr, stamp_qr, watermark
from tests.support.pdf_tools import decode_qr, pdf_info, pdf_text, qpdf_check, rasterise
from tests.support.sample_pdfs import page_text, text_pdf

URL = "https://example.com/doc/42"


def _draw(source: Path, out: Path, draw: object, indices: list[int] | None = None) -> Path:
    writer = PdfWriter(clone_from=PdfReader(source))
    chosen = range(len(writer.pages)) if indices is None else indices
    if isinstance(draw, PdfWatermarkRequest):
        assert watermark(writer, draw, chosen) == len(chosen)
    else:
        assert isinstance(draw, PdfStampQrRequest)
        assert stamp_qr(writer, draw, chosen) == len(chosen)
    with out.open("wb") as file:
        writer.write(file)
    qpdf_check(out)
    return out


def _found(image_path: Path, tmp_path: Path, page: int) -> list[tuple[str, float, float]]:
    """Each decoded code with the centre of its box as fractions of the page shown."""
    image = rasterise(image_path, tmp_path, page)
    return [
        (
            found.data.decode(),
            (found.rect.left + found.rect.width / 2) / image.width,
            (found.rect.top + found.rect.height / 2) / image.height,
        )
        for found in decode(image, symbols=[ZBarSymbol.QRCODE])
    ]


def test_watermark_text_is_on_the_chosen_pages_and_the_originals_stay(tmp_path: Path) -> None:
    source = text_pdf(tmp_path / "in.pdf", 4)
    options = PdfWatermarkRequest(file_id="f", text="CONFIDENTIAL", opacity=0.25, pages="1,3")
    out = _draw(source, tmp_path / "out.pdf", options, [0, 2])
    assert pdf_info(out)["Pages"] == "4"
    for number in range(1, 5):
        text = pdf_text(out, number)
        assert page_text(number) in text
        assert ("CONFIDENTIAL" in text) == (number in (1, 3))


def test_watermark_is_drawn_under_its_opacity(tmp_path: Path) -> None:
    source = text_pdf(tmp_path / "in.pdf", 1)
    out = _draw(
        source, tmp_path / "out.pdf", PdfWatermarkRequest(file_id="f", text="X", opacity=0.4)
    )
    page: Any = PdfReader(out).pages[0]
    forms = page["/Resources"]["/XObject"]
    form = forms["/OflWatermark"].get_object()
    states = form["/Resources"]["/ExtGState"]
    assert [float(state["/ca"]) for state in states.values()] == [0.4]
    assert b"/OflAlpha gs" in form.get_data()


def test_watermark_text_of_any_kind_comes_out_intact(tmp_path: Path) -> None:
    text = "Grüße ) \\ ( </script> 🎉 ЧЕРНОВИК"
    source = text_pdf(tmp_path / "in.pdf", 1)
    options = PdfWatermarkRequest(file_id="f", text=text, angle=0, font_size=20)
    out = _draw(source, tmp_path / "out.pdf", options)
    assert text in pdf_text(out)
    assert b"</script>" not in out.read_bytes()


@pytest.mark.parametrize("angle", [0, 45, 90, -30])
def test_watermark_at_any_angle_extracts(tmp_path: Path, angle: float) -> None:
    source = text_pdf(tmp_path / "in.pdf", 1)
    options = PdfWatermarkRequest(file_id="f", text="DRAFT COPY", angle=angle)
    assert "DRAFT COPY" in pdf_text(_draw(source, tmp_path / "out.pdf", options))


@pytest.mark.parametrize(
    ("position", "right", "top"),
    [
        ("top-left", False, True),
        ("top-right", True, True),
        ("bottom-left", False, False),
        ("bottom-right", True, False),
    ],
)
@pytest.mark.parametrize("rotate", [0, 90, 270])
def test_the_stamp_decodes_in_the_corner_the_reader_sees(
    tmp_path: Path, position: str, right: bool, top: bool, rotate: int
) -> None:
    source = text_pdf(tmp_path / "in.pdf", 1, rotate=rotate, origin=(30, -40))
    options = PdfStampQrRequest.model_validate({"file_id": "f", "data": URL, "position": position})
    out = _draw(source, tmp_path / "out.pdf", options)
    [(data, across, down)] = _found(out, tmp_path, 1)
    assert data == URL
    assert (across > 0.5) == right
    assert (down < 0.5) == top
    assert page_text(1) in pdf_text(out)


def test_stamp_at_x_y_and_in_the_middle(tmp_path: Path) -> None:
    source = text_pdf(tmp_path / "in.pdf", 2, size=(600, 800))
    middle = PdfStampQrRequest.model_validate(
        {"file_id": "f", "data": URL, "position": "center", "size": 120}
    )
    out = _draw(source, tmp_path / "middle.pdf", middle)
    [(_, across, down)] = _found(out, tmp_path, 1)
    assert across == pytest.approx(0.5, abs=0.02)
    assert down == pytest.approx(0.5, abs=0.02)
    placed = PdfStampQrRequest(file_id="f", data=URL, x=60, y=600, size=100)
    out = _draw(source, tmp_path / "placed.pdf", placed)
    [(_, across, down)] = _found(out, tmp_path, 2)
    assert across == pytest.approx(110 / 600, abs=0.02)
    assert down == pytest.approx(1 - 650 / 800, abs=0.02)


def test_stamp_only_on_chosen_pages_with_inherited_resources_and_dirty_state(
    tmp_path: Path,
) -> None:
    source = text_pdf(tmp_path / "in.pdf", 3, inherit_resources=True, leave_state_dirty=True)
    options = PdfStampQrRequest(file_id="f", data="Grüße 你好", pages="2-")
    out = _draw(source, tmp_path / "out.pdf", options, [1, 2])
    assert _found(out, tmp_path, 1) == []
    for number in (2, 3):
        [(data, _, _)] = _found(out, tmp_path, number)
        assert data == "Grüße 你好"
    for number in (1, 2, 3):
        assert page_text(number) in pdf_text(out, number)


def test_stamp_and_watermark_share_one_drawing_across_pages(tmp_path: Path) -> None:
    source = text_pdf(tmp_path / "in.pdf", 50)
    small = _draw(source, tmp_path / "one.pdf", PdfStampQrRequest(file_id="f", data=URL), [0])
    every = _draw(source, tmp_path / "all.pdf", PdfStampQrRequest(file_id="f", data=URL))
    # 49 more pages add a resource entry and a content array each, not a copy of the code.
    assert every.stat().st_size - small.stat().st_size < 49 * 120
    assert decode_qr(rasterise(every, tmp_path, 50)) == [URL]


def test_a_stamp_larger_than_the_page_is_refused(tmp_path: Path) -> None:
    source = text_pdf(tmp_path / "in.pdf", 1, size=(200, 200))
    writer = PdfWriter(clone_from=PdfReader(source))
    with pytest.raises(StampOutsidePage, match="does not fit a 200 x 200 pt page"):
        stamp_qr(writer, PdfStampQrRequest(file_id="f", data=URL, size=190), [0])
    with pytest.raises(StampOutsidePage):
        stamp_qr(writer, PdfStampQrRequest(file_id="f", data=URL, x=150, y=10), [0])


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"x": 10}, "y"),
        ({"y": 10}, "y"),
        ({"size": 5}, "size"),
        ({"position": "left"}, "position"),
        ({"pages": "1;2"}, "pages"),
        ({"dark": "red"}, "dark"),
    ],
)
def test_bad_stamp_requests_name_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PdfStampQrRequest.model_validate({"file_id": "f", "data": URL, **fields})
    assert [error["loc"] for error in refused.value.errors()] == [(named,)]


@pytest.mark.parametrize(
    ("fields", "named"),
    [({"opacity": 0}, "opacity"), ({"text": ""}, "text"), ({"font_size": 1000}, "font_size")],
)
def test_bad_watermark_requests_name_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        PdfWatermarkRequest.model_validate({"file_id": "f", "text": "X", **fields})
    assert [error["loc"] for error in refused.value.errors()] == [(named,)]


def test_a_stamp_too_small_to_scan_is_refused_naming_size() -> None:
    options = PdfStampQrRequest(file_id="f", data="https://example.com/" + "x" * 600, size=72)
    with pytest.raises(ValidationError) as refused:
        check_stamp_qr(options)
    [error] = refused.value.errors()
    assert error["loc"] == ("size",)
    smallest = int(error["msg"].rsplit(" ", 1)[1])
    check_stamp_qr(options.model_copy(update={"size": smallest}))


def test_data_no_code_holds_is_refused_naming_data() -> None:
    options = PdfStampQrRequest(file_id="f", data="ü" * 1500, error_correction="H")
    with pytest.raises(ValidationError) as refused:
        check_stamp_qr(options)
    assert [error["loc"] for error in refused.value.errors()] == [("data",)]


def test_the_default_stamp_passes_its_check() -> None:
    check_stamp_qr(PdfStampQrRequest(file_id="f", data=URL))


def test_stamping_twice_keeps_both_codes(tmp_path: Path) -> None:
    source = text_pdf(tmp_path / "in.pdf", 1)
    first = _draw(source, tmp_path / "first.pdf", PdfStampQrRequest(file_id="f", data="first code"))
    second = _draw(
        first,
        tmp_path / "second.pdf",
        PdfStampQrRequest(file_id="f", data="second code", position="top-left"),
    )
    assert sorted(data for data, _, _ in _found(second, tmp_path, 1)) == [
        "first code",
        "second code",
    ]
