"""Submit-time PDF checks: each refused file is named by its body field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from tasks.pdf_checks import probe_inputs
from tasks.pdf_guard import PdfLimits
from tests.support.pdfs import bomb_pdf, corrupt_pdf, encrypted_pdf, numbered_pdf


def test_good_files_are_probed_by_field(tmp_path: Path) -> None:
    (tmp_path / "a.pdf").write_bytes(numbered_pdf(2))
    (tmp_path / "b.pdf").write_bytes(encrypted_pdf(["x"], "pw"))
    probes = probe_inputs(
        [("file_ids.0", tmp_path / "a.pdf", "a.pdf"), ("file_ids.1", tmp_path / "b.pdf", "b")],
        PdfLimits(),
        model="PdfMergeRequest",
    )
    assert probes["file_ids.0"].pages == 2
    assert probes["file_ids.1"].encrypted


def test_every_refused_file_is_named_by_its_field(tmp_path: Path) -> None:
    (tmp_path / "ok.pdf").write_bytes(numbered_pdf(2))
    (tmp_path / "bad.pdf").write_bytes(corrupt_pdf())
    (tmp_path / "long.pdf").write_bytes(numbered_pdf(4))
    (tmp_path / "empty.pdf").write_bytes(b"")
    (tmp_path / "bomb.pdf").write_bytes(bomb_pdf(5_000_000))
    with pytest.raises(ValidationError) as raised:
        probe_inputs(
            [
                ("file_ids.0", tmp_path / "ok.pdf", "ok.pdf"),
                ("file_ids.1", tmp_path / "bad.pdf", "bad.pdf"),
                ("file_ids.2", tmp_path / "long.pdf", "long.pdf"),
                ("file_ids.3", tmp_path / "empty.pdf", "empty.pdf"),
                ("file_ids.4", tmp_path / "bomb.pdf", "bomb.pdf"),
            ],
            PdfLimits(max_pages=3, max_stream_bytes=1_000_000),
            model="PdfMergeRequest",
        )
    errors = {error["loc"]: error for error in raised.value.errors()}
    assert set(errors) == {("file_ids", 1), ("file_ids", 2), ("file_ids", 3)}
    assert errors[("file_ids", 1)]["type"] == "invalid_pdf"
    assert "bad.pdf is not a readable PDF" in errors[("file_ids", 1)]["msg"]
    assert errors[("file_ids", 2)]["type"] == "too_many_pages"
    assert "has 4 pages" in errors[("file_ids", 2)]["msg"]
    assert "empty (0 bytes)" in errors[("file_ids", 3)]["msg"]
