"""The PDF guard: typed failures for each bad input, limits on decoding, and a probe."""

from __future__ import annotations

import pickle
import re
import tracemalloc
from pathlib import Path

import pytest
from pypdf import PdfWriter

from tasks.pdf_guard import (
    EncryptedPdf,
    InputLimitExceeded,
    InvalidPdf,
    PdfInputError,
    PdfLimits,
    TooManyPages,
    WrongPassword,
    open_pdf,
    pdf_limits,
    probe_pdf,
    save_pdf,
)
from tests.support.pdfs import bomb_pdf, corrupt_pdf, encrypted_pdf, numbered_pdf, qpdf_check


def _write(tmp_path: Path, content: bytes, name: str = "in.pdf") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_a_good_pdf_opens_with_its_pages(tmp_path: Path) -> None:
    reader = open_pdf(_write(tmp_path, numbered_pdf(3)))
    assert len(reader.pages) == 3
    assert "page 2" in reader.pages[1].extract_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "is empty (0 bytes)"),
        (b"<html><body>not a pdf</body></html>", "no %PDF- header"),
        (corrupt_pdf(), "is not a readable PDF"),
        (numbered_pdf(2)[:200], "is not a readable PDF"),
    ],
    ids=["zero_bytes", "html", "garbage_after_header", "truncated"],
)
def test_a_bad_file_is_invalid_pdf_naming_its_label(
    tmp_path: Path, content: bytes, message: str
) -> None:
    with pytest.raises(InvalidPdf, match=re.escape(message)) as raised:
        open_pdf(_write(tmp_path, content), label="report.pdf")
    assert "report.pdf" in str(raised.value)
    assert str(tmp_path) not in str(raised.value)
    assert raised.value.error_type == "invalid_pdf"


def test_encrypted_without_password_is_encrypted_pdf(tmp_path: Path) -> None:
    path = _write(tmp_path, encrypted_pdf(["secret"], "right"))
    with pytest.raises(EncryptedPdf, match="is encrypted") as raised:
        open_pdf(path)
    assert raised.value.error_type == "encrypted_pdf"


def test_a_wrong_password_is_wrong_password(tmp_path: Path) -> None:
    path = _write(tmp_path, encrypted_pdf(["secret"], "right"))
    with pytest.raises(WrongPassword) as raised:
        open_pdf(path, "wrong")
    assert raised.value.error_type == "wrong_password"
    assert "wrong" not in str(raised.value).replace("wrong_password", "")


def test_the_right_password_opens_it(tmp_path: Path) -> None:
    reader = open_pdf(_write(tmp_path, encrypted_pdf(["secret"], "right", "owner")), "right")
    assert "secret" in reader.pages[0].extract_text()
    reader = open_pdf(_write(tmp_path, encrypted_pdf(["secret"], "right", "owner")), "owner")
    assert len(reader.pages) == 1


def test_an_empty_user_password_needs_none(tmp_path: Path) -> None:
    reader = open_pdf(_write(tmp_path, encrypted_pdf(["open"], "", "owner")))
    assert "open" in reader.pages[0].extract_text()


def test_more_pages_than_the_limit_is_too_many_pages(tmp_path: Path) -> None:
    path = _write(tmp_path, numbered_pdf(6))
    with pytest.raises(TooManyPages, match="has 6 pages; this server takes at most 5"):
        open_pdf(path, limits=PdfLimits(max_pages=5))
    assert len(open_pdf(path, limits=PdfLimits(max_pages=6)).pages) == 6


def test_a_bomb_stops_at_the_stream_limit_in_bounded_memory(tmp_path: Path) -> None:
    path = _write(tmp_path, bomb_pdf(100_000_000))
    assert path.stat().st_size < 150_000
    limits = PdfLimits(max_stream_bytes=10_000_000)
    reader = open_pdf(path, limits=limits)  # opening decodes no content stream
    tracemalloc.start()
    try:
        with (
            pytest.raises(InputLimitExceeded, match="over this server's limits") as raised,
            pdf_limits(limits, "bomb.pdf"),
        ):
            reader.pages[0].get_contents().get_data()  # type: ignore[union-attr]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * limits.max_stream_bytes, f"decoding the bomb peaked at {peak:,} bytes"
    assert raised.value.error_type == "input_limit_exceeded"
    assert "bomb.pdf" in str(raised.value)


def test_writing_a_bomb_with_compression_stops_too(tmp_path: Path) -> None:
    reader = open_pdf(_write(tmp_path, bomb_pdf(100_000_000)))
    limits = PdfLimits(max_stream_bytes=10_000_000)
    with pytest.raises(InputLimitExceeded), pdf_limits(limits):
        writer = PdfWriter()
        writer.append(reader)
        for page in writer.pages:
            page.compress_content_streams()


def test_the_probe_reads_pages_and_encryption_without_refusing_a_locked_file(
    tmp_path: Path,
) -> None:
    assert probe_pdf(_write(tmp_path, numbered_pdf(4))).pages == 4
    locked = _write(tmp_path, encrypted_pdf(["x"], "pw"), "locked.pdf")
    probe = probe_pdf(locked)
    assert (probe.pages, probe.encrypted) == (None, True)
    probe = probe_pdf(locked, "pw")
    assert (probe.pages, probe.encrypted) == (1, True)
    with pytest.raises(InvalidPdf):
        probe_pdf(_write(tmp_path, corrupt_pdf(), "bad.pdf"))
    with pytest.raises(TooManyPages):
        probe_pdf(_write(tmp_path, numbered_pdf(3), "long.pdf"), limits=PdfLimits(max_pages=2))


def test_the_probe_of_a_bomb_decodes_nothing(tmp_path: Path) -> None:
    probe = probe_pdf(_write(tmp_path, bomb_pdf()), limits=PdfLimits(max_stream_bytes=1_000_000))
    assert probe.pages == 1


def test_save_pdf_writes_a_file_qpdf_accepts(tmp_path: Path) -> None:
    writer = PdfWriter(clone_from=open_pdf(_write(tmp_path, numbered_pdf(2))))
    out = tmp_path / "out.pdf"
    assert save_pdf(writer, out) == out.stat().st_size > 0
    qpdf_check(out)


@pytest.mark.parametrize(
    "error",
    [
        InvalidPdf("a"),
        EncryptedPdf("b"),
        WrongPassword("c"),
        InputLimitExceeded("d"),
        TooManyPages("e"),
    ],
)
def test_failures_survive_the_process_pool(error: PdfInputError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert (copy.error_type, str(copy)) == (error.error_type, str(error))


def test_a_file_claiming_too_many_pages_is_refused_before_its_tree_is_walked(
    tmp_path: Path,
) -> None:
    content = numbered_pdf(2).replace(b"/Count 2", b"/Count 9000000")
    with pytest.raises(TooManyPages, match="has 9,000,000 pages"):
        open_pdf(_write(tmp_path, content), limits=PdfLimits(max_pages=5))


def test_the_probe_takes_the_declared_count_and_the_worker_counts_for_real(
    tmp_path: Path,
) -> None:
    """The probe walks no page tree (cheap in the API process); a file that understates
    its pages passes it and is refused when a job opens it."""
    path = _write(tmp_path, numbered_pdf(6).replace(b"/Count 6", b"/Count 2"), "liar.pdf")
    assert probe_pdf(path, limits=PdfLimits(max_pages=5)).pages == 2
    with pytest.raises(TooManyPages, match=r"liar\.pdf has 6 pages"):
        open_pdf(path, limits=PdfLimits(max_pages=5), label="liar.pdf")
