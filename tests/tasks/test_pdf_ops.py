"""PDF operations on paths, judged by qpdf and poppler (tools we did not write)."""

from __future__ import annotations

import io
import json
import tracemalloc
import zipfile
from pathlib import Path

import pytest
from pypdf import PdfWriter

from schemas.pdf_ranges import parse_ranges
from tasks.pdf_guard import (
    EncryptedPdf,
    InputLimitExceeded,
    InvalidPdf,
    PdfLimits,
    TooManyPages,
    WrongPassword,
    probe_pdf,
)
from tasks.pdf_metadata import read_metadata, write_metadata
from tasks.pdf_ops import (
    RangesOutOfBounds,
    Source,
    decrypt,
    encrypt,
    extract_text,
    merge,
    rotate,
    split_to_files,
    split_to_zip,
)
from tests.support.pdfs import (
    bomb_pdf,
    broken_stream_pdf,
    encrypted_pdf,
    numbered_pdf,
    page_count,
    page_texts,
    pdfinfo,
    qpdf_check,
    qpdf_decrypt,
    qpdf_encryption,
    qpdf_refuses,
    rotations,
    text_pdf,
)

LIMITS = PdfLimits()


def _source(
    tmp_path: Path, content: bytes, name: str = "in.pdf", password: str | None = None
) -> Source:
    path = tmp_path / name
    path.write_bytes(content)
    return Source(path, name, password)


def test_merge_keeps_the_order_of_its_sources(tmp_path: Path) -> None:
    first = _source(tmp_path, text_pdf(["alpha", "beta"]), "a.pdf")
    second = _source(tmp_path, text_pdf(["gamma"]), "b.pdf")
    seen: list[tuple[int, int]] = []
    out = tmp_path / "out.pdf"
    assert merge([second, first, second], out, LIMITS, lambda *step: seen.append(step)) == 4
    qpdf_check(out)
    assert page_texts(out) == ["gamma", "alpha", "beta", "gamma"]
    assert seen == [(1, 3), (2, 3), (3, 3)]


def test_merge_refuses_more_pages_than_the_limit_in_total(tmp_path: Path) -> None:
    source = _source(tmp_path, numbered_pdf(3))
    with pytest.raises(TooManyPages, match="merged PDF would have over 5 pages"):
        merge([source, source], tmp_path / "out.pdf", PdfLimits(max_pages=5))


def test_merge_of_an_encrypted_source_without_password_is_encrypted_pdf(tmp_path: Path) -> None:
    locked = _source(tmp_path, encrypted_pdf(["x"], "pw"), "locked.pdf")
    with pytest.raises(EncryptedPdf, match=r"locked\.pdf is encrypted"):
        merge([_source(tmp_path, numbered_pdf(1)), locked], tmp_path / "out.pdf", LIMITS)


def test_split_to_zip_makes_one_pdf_per_range(tmp_path: Path) -> None:
    source = _source(tmp_path, numbered_pdf(10))
    out = tmp_path / "parts.zip"
    parts = split_to_zip(source, parse_ranges("1-3,5,8-"), out, LIMITS)
    assert parts == [
        ("part-0001-pages-01-03.pdf", 3),
        ("part-0002-pages-05.pdf", 1),
        ("part-0003-pages-08-10.pdf", 3),
    ]
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == [name for name, _ in parts]
        for name in archive.namelist():
            (tmp_path / name).write_bytes(archive.read(name))
            qpdf_check(tmp_path / name)
    assert page_texts(tmp_path / "part-0001-pages-01-03.pdf") == ["page 1", "page 2", "page 3"]
    assert page_texts(tmp_path / "part-0002-pages-05.pdf") == ["page 5"]
    assert page_texts(tmp_path / "part-0003-pages-08-10.pdf") == ["page 8", "page 9", "page 10"]


def test_split_without_ranges_makes_one_pdf_per_page(tmp_path: Path) -> None:
    source = _source(tmp_path, numbered_pdf(3))
    outs = [tmp_path / f"{number}.pdf" for number in range(3)]
    assert [pages for _, pages in split_to_files(source, None, outs, LIMITS)] == [1, 1, 1]
    for number, out in enumerate(outs, start=1):
        qpdf_check(out)
        assert page_texts(out) == [f"page {number}"]


def test_split_past_the_end_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RangesOutOfBounds, match="4- is past the end: the file has 3 pages"):
        split_to_zip(_source(tmp_path, numbered_pdf(3)), parse_ranges("4-"), tmp_path / "z", LIMITS)


@pytest.mark.parametrize("angle", [90, 180, 270])
def test_rotate_turns_only_the_pages_named(tmp_path: Path, angle: int) -> None:
    out = tmp_path / "out.pdf"
    assert rotate(_source(tmp_path, numbered_pdf(4)), parse_ranges("2-3"), angle, out, LIMITS) == 2
    qpdf_check(out)
    assert rotations(out) == [0, angle, angle, 0]
    assert page_texts(out) == ["page 1", "page 2", "page 3", "page 4"]


def test_extract_text_writes_json_per_page(tmp_path: Path) -> None:
    out = tmp_path / "text.json"
    source = _source(tmp_path, text_pdf(["first (page)", "zweite Seite", "third"]))
    pages, characters = extract_text(source, parse_ranges("1-2"), out, LIMITS)
    document = json.loads(out.read_text())
    assert [page["page"] for page in document["pages"]] == [1, 2]
    assert [page["text"].strip() for page in document["pages"]] == ["first (page)", "zweite Seite"]
    assert (pages, characters) == (2, sum(len(page["text"]) for page in document["pages"]))


def test_metadata_written_is_read_back_by_pdfinfo(tmp_path: Path) -> None:
    source = _source(tmp_path, numbered_pdf(2))
    out = tmp_path / "out.pdf"
    written = write_metadata(
        source, {"title": "Quarterly report", "author": "Zoë", "Department": "Sales"}, out, LIMITS
    )
    assert written["title"] == "Quarterly report"
    qpdf_check(out)
    info = pdfinfo(out)
    assert "Title:           Quarterly report" in info
    assert "Author:          Zoë" in info
    read = read_metadata(Source(out, "out.pdf"), LIMITS)
    assert read["info"]["title"] == "Quarterly report"
    assert read["info"]["Department"] == "Sales"
    assert read["xmp"]["title"] == "Quarterly report"
    assert read["xmp"]["creator"] == ["Zoë"]
    assert read["pages"] == 2
    removed = write_metadata(Source(out, "out.pdf"), {"title": None}, tmp_path / "2.pdf", LIMITS)
    assert "title" not in removed
    assert "title" not in read_metadata(Source(tmp_path / "2.pdf"), LIMITS)["info"]


def test_encrypt_makes_aes256_that_needs_the_password(tmp_path: Path) -> None:
    out = tmp_path / "locked.pdf"
    assert encrypt(_source(tmp_path, numbered_pdf(2)), "user-pw", "owner-pw", out, LIMITS) == 2
    qpdf_check(out, "user-pw")
    shown = qpdf_encryption(out, "user-pw")
    assert "R = 6" in shown
    assert "stream encryption method: AESv3" in shown
    assert page_texts(out, "user-pw") == ["page 1", "page 2"]
    assert "invalid password" in qpdf_refuses(out)
    plain = qpdf_decrypt(out, "owner-pw", tmp_path / "plain.pdf")
    assert page_texts(plain) == ["page 1", "page 2"]


def test_decrypt_needs_the_right_password_and_writes_a_plain_pdf(tmp_path: Path) -> None:
    locked = encrypted_pdf(["secret text"], "pw")
    with pytest.raises(WrongPassword):
        decrypt(_source(tmp_path, locked, password="nope"), tmp_path / "out.pdf", LIMITS)
    with pytest.raises(EncryptedPdf):
        decrypt(_source(tmp_path, locked), tmp_path / "out.pdf", LIMITS)
    out = tmp_path / "out.pdf"
    assert decrypt(_source(tmp_path, locked, password="pw"), out, LIMITS) == (1, True)
    assert "File is not encrypted" in qpdf_check(out)
    assert page_texts(out) == ["secret text"]
    assert page_count(out) == 1


def test_a_bomb_stops_text_extraction_at_the_stream_limit(tmp_path: Path) -> None:
    bomb = _source(tmp_path, bomb_pdf(100_000_000), "bomb.pdf")
    limits = PdfLimits(max_stream_bytes=10_000_000)
    with pytest.raises(InputLimitExceeded, match=r"bomb\.pdf"):
        extract_text(bomb, None, tmp_path / "t.json", limits)


def test_a_bomb_is_merged_as_it_is_without_inflating(tmp_path: Path) -> None:
    bomb = _source(tmp_path, bomb_pdf(100_000_000), "bomb.pdf")
    out = tmp_path / "out.pdf"
    merge([bomb, _source(tmp_path, numbered_pdf(1))], out, PdfLimits(max_stream_bytes=10_000_000))
    assert out.stat().st_size < 200_000
    assert page_count(out) == 2


def test_a_broken_stream_the_probe_cannot_see_fails_the_operation_as_invalid(
    tmp_path: Path,
) -> None:
    source = _source(tmp_path, broken_stream_pdf(), "broken.pdf")
    assert probe_pdf(source.path).pages == 2
    with pytest.raises(InvalidPdf, match=r"broken\.pdf is not a readable PDF: .*endstream"):
        merge([source], tmp_path / "out.pdf", LIMITS)


def test_pages_of_big_streams_under_the_limit_do_not_add_up(tmp_path: Path) -> None:
    """Each page's stream is within the limit; the reader must not keep them all decoded."""
    source = _source(tmp_path, bomb_pdf(10_000_000, pages=10), "heavy.pdf")
    tracemalloc.start()
    try:
        assert extract_text(source, None, tmp_path / "t.json", LIMITS) == (10, 0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 70_000_000, f"extracting 10 pages of 10 MB streams peaked at {peak:,} bytes"


def test_merge_refuses_inputs_over_the_byte_limit_in_total(tmp_path: Path) -> None:
    source = _source(tmp_path, numbered_pdf(3))
    size = source.path.stat().st_size
    limits = PdfLimits(max_merge_bytes=2 * size - 1)
    with pytest.raises(InputLimitExceeded, match="these files add up to"):
        merge([source, source], tmp_path / "out.pdf", limits)
    assert merge([source], tmp_path / "out.pdf", limits) == 3


def test_read_metadata_reports_a_bounded_number_of_entries(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=io.BytesIO(numbered_pdf(1)))
    writer.add_metadata({f"/Key{number}": "v" * 20_000 for number in range(300)})
    with (tmp_path / "many.pdf").open("wb") as file:
        writer.write(file)
    read = read_metadata(Source(tmp_path / "many.pdf"), LIMITS)
    assert len(read["info"]) == 200 and read["info_truncated"] is True
    assert max(len(value) for value in read["info"].values()) == 10_000
