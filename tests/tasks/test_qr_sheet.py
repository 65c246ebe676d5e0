"""The printable QR sheet: judged by zbar, qpdf and poppler, not by our own reading."""

from __future__ import annotations

import re
import subprocess
import unicodedata
from pathlib import Path

import pytest
from pydantic import ValidationError
from pypdf import PdfReader

from schemas.qr import ErrorCorrection
from schemas.qr_sheet import MIN_MODULE_MM, MM, SheetOptions
from tasks.qr_matrix import qr_modules
from tasks.qr_sheet import CodeDoesNotFitError, SheetCode, write_qr_sheet
from tests.support.pdf_tools import (
    crop_points,
    decode_qr,
    pdf_info,
    pdf_text,
    qpdf_check,
    rasterise,
)

HOSTILE_LABELS = [
    "close) paren",
    "back\\slash \\) (",
    "open ( paren",
    "</script><script>alert(1)</script>",
    "\u202eevil.exe\u202c reversed",
    "party 🎉 time",
    "Grüße aus Köln",
    "endstream endobj %%EOF",
]


def _cell_box(layout: SheetOptions, index: int) -> tuple[float, float, float, float]:
    row, column = divmod(index % layout.per_page, layout.columns)
    cell_w, cell_h = layout.cell_points
    left = layout.margin_mm * MM + column * (cell_w + layout.gap_mm * MM)
    top = layout.page_points[1] - layout.margin_mm * MM - row * (cell_h + layout.gap_mm * MM)
    return left, top - cell_h, left + cell_w, top


def _codes(count: int, labels: list[str] | None = None) -> list[SheetCode]:
    return [
        SheetCode(
            qr_modules(f"https://example.com/sheet/{n}", ErrorCorrection.M),
            labels[n % len(labels)] if labels else f"item {n}",
        )
        for n in range(count)
    ]


def _visible(text: str) -> str:
    """Text without bidi controls and whitespace: pdftotext adds embedding marks of its own
    around right-to-left runs and lays lines out as it likes."""
    return "".join(c for c in text if unicodedata.category(c) != "Cf" and not c.isspace())


def test_every_code_on_every_page_decodes_and_the_pdf_passes_qpdf(tmp_path: Path) -> None:
    layout = SheetOptions(columns=3, rows=4)
    codes = _codes(30)  # 2.5 pages: the last one partly filled
    path = tmp_path / "sheet.pdf"
    assert write_qr_sheet(codes, layout, path) == 3
    qpdf_check(path)
    assert pdf_info(path)["Pages"] == "3"
    for page in range(1, 4):
        image = rasterise(path, tmp_path, page)
        on_page = range((page - 1) * 12, min(page * 12, 30))
        for index in on_page:
            found = decode_qr(crop_points(image, _cell_box(layout, index)))
            assert found == [f"https://example.com/sheet/{index}"], (page, index)
        text = pdf_text(path, page)
        assert [f"item {n}" for n in on_page] == re.findall(r"item \d+", text)


def test_hostile_labels_come_out_intact_and_the_pdf_stays_valid(tmp_path: Path) -> None:
    path = tmp_path / "labels.pdf"
    layout = SheetOptions(columns=2, rows=4)
    write_qr_sheet(_codes(8, HOSTILE_LABELS), layout, path)
    qpdf_check(path)
    text = _visible(pdf_text(path))
    for label in HOSTILE_LABELS:
        assert _visible(label) in text
    # Nothing in a label became PDF syntax: still one page, and codes still decode.
    assert pdf_info(path)["Pages"] == "1"
    image = rasterise(path, tmp_path, 1)
    assert decode_qr(crop_points(image, _cell_box(layout, 3))) == ["https://example.com/sheet/3"]


def test_no_label_raw_in_the_file(tmp_path: Path) -> None:
    """Labels are glyph ids and escaped ActualText, never the characters themselves."""
    path = tmp_path / "raw.pdf"
    write_qr_sheet(_codes(2, ["</script>)", "(x) Tj"]), SheetOptions(), path)
    raw = path.read_bytes()
    assert b"</script>" not in raw
    assert b"(x) Tj" not in raw


@pytest.mark.parametrize(
    ("page", "size"), [("A4", "595.276 x 841.89 pts (A4)"), ("Letter", "612 x 792 pts (letter)")]
)
def test_page_sizes(tmp_path: Path, page: str, size: str) -> None:
    path = tmp_path / f"{page}.pdf"
    write_qr_sheet(_codes(3), SheetOptions.model_validate({"page": page}), path)
    assert pdf_info(path)["Page size"] == size


def test_colours_and_no_labels(tmp_path: Path) -> None:
    layout = SheetOptions(columns=2, rows=2, dark="#1A237E", light="#FFF8E1")
    path = tmp_path / "colours.pdf"
    codes = [SheetCode(code.modules) for code in _codes(4)]
    write_qr_sheet(codes, layout, path)
    qpdf_check(path)
    assert pdf_text(path).strip() == ""
    image = rasterise(path, tmp_path, 1)
    assert decode_qr(crop_points(image, _cell_box(layout, 2))) == ["https://example.com/sheet/2"]


def test_no_codes_gives_one_blank_valid_page(tmp_path: Path) -> None:
    path = tmp_path / "empty.pdf"
    assert write_qr_sheet([], SheetOptions(), path) == 1
    qpdf_check(path)


def test_pages_go_to_the_file_as_they_are_made(tmp_path: Path) -> None:
    path = tmp_path / "stream.pdf"
    sizes: list[int] = []

    def on_page(pages: int) -> None:
        sizes.append(path.stat().st_size)

    # Generated lazily: the writer takes any iterable and does not need its length.
    codes = (code for code in _codes(60))
    assert write_qr_sheet(codes, SheetOptions(columns=2, rows=2), path, on_page) == 15
    assert len(sizes) == 15
    # On disk before the writer returns (a file buffer of a few kB lags behind).
    assert 0 < sizes[-1] < path.stat().st_size
    assert sizes == sorted(sizes)
    assert len(set(sizes)) > 5


def test_a_failing_progress_callback_stops_the_sheet(tmp_path: Path) -> None:
    class Cancelled(Exception):
        pass

    def on_page(pages: int) -> None:
        if pages == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        write_qr_sheet(_codes(20), SheetOptions(columns=2, rows=2), tmp_path / "x.pdf", on_page)


def test_a_code_too_large_for_the_layout_is_refused(tmp_path: Path) -> None:
    layout = SheetOptions(columns=10, rows=12)
    big = SheetCode(qr_modules("x" * 1200, ErrorCorrection.H))
    assert len(big.modules) > layout.max_symbol_modules
    with pytest.raises(CodeDoesNotFitError, match="code 1 has"):
        write_qr_sheet([*_codes(1), big], layout, tmp_path / "big.pdf")


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"columns": 20}, "columns"),
        ({"rows": 30}, "rows"),
        ({"margin_mm": 60, "columns": 8}, "columns"),
        ({"page": "Letter", "label_size_pt": 36, "rows": 12}, "rows"),
        ({"gap_mm": 40, "rows": 7}, "rows"),
    ],
)
def test_layouts_whose_codes_do_not_fit_are_refused_naming_the_field(
    fields: dict[str, object], named: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        SheetOptions.model_validate(fields)
    errors = refused.value.errors()
    assert [error["loc"] for error in errors] == [(named,)]
    assert "smallest code" in errors[0]["msg"]


def test_a_bad_earlier_field_is_reported_alone() -> None:
    with pytest.raises(ValidationError) as refused:
        SheetOptions.model_validate({"margin_mm": -1, "columns": 3})
    assert [error["loc"] for error in refused.value.errors()] == [("margin_mm",)]


def test_the_default_layout_fits_a_version_20_code() -> None:
    assert SheetOptions().max_symbol_modules >= 17 + 4 * 20


def test_labels_are_set_in_an_embedded_subset_font_with_a_unicode_map(tmp_path: Path) -> None:
    path = tmp_path / "font.pdf"
    write_qr_sheet(_codes(2, ["Grüße", "Ωμέγα Кириллица"]), SheetOptions(), path)
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True)
    [font_line] = fonts.stdout.splitlines()[2:]
    assert "DejaVuSans" in font_line and "CID TrueType" in font_line
    assert font_line.split()[-5:-2] == ["yes", "yes", "yes"]  # embedded, subset, ToUnicode
    # pypdf reads the ToUnicode map (not the ActualText poppler uses): the glyphs say it too.
    text = PdfReader(path).pages[0].extract_text()
    assert "Grüße" in text and "Ωμέγα Кириллица" in text
    assert path.stat().st_size < 60_000, "a subset, not the whole 750 kB font"


def test_codes_at_the_smallest_module_a_layout_allows_still_decode(tmp_path: Path) -> None:
    """MIN_MODULE_MM is what zbar reads at 150 dpi: a page of 238 codes right at it."""
    layout = SheetOptions(columns=14, rows=17, label_size_pt=4, gap_mm=1, margin_mm=5)
    codes = [
        SheetCode(qr_modules(f"https://ex.com/{n:05d}", ErrorCorrection.M), str(n))
        for n in range(layout.per_page)
    ]
    assert len(codes[0].modules) == layout.max_symbol_modules  # the largest it takes
    module_mm = layout.code_points / MM / (len(codes[0].modules) + 2 * layout.border)
    assert module_mm == pytest.approx(MIN_MODULE_MM, abs=0.01)
    path = tmp_path / "dense.pdf"
    write_qr_sheet(codes, layout, path)
    image = rasterise(path, tmp_path, 1)
    for index in range(layout.per_page):
        found = decode_qr(crop_points(image, _cell_box(layout, index)))
        assert found == [f"https://ex.com/{index:05d}"], index
