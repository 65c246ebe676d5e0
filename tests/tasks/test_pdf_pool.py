"""The PDF operations run in a CPU pool process as they do in a worker: light imports,
progress written where the job reads it, failures that keep their type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from brokers.cpu_pool import CpuPool
from tasks.pdf_guard import EncryptedPdf, PdfLimits
from tasks.pdf_ops import Source, merge
from tasks.step_progress import ProgressFile, read_progress
from tests.support.cpu_work import whoami
from tests.support.pdfs import encrypted_pdf, numbered_pdf, page_count, qpdf_check


@pytest.fixture
async def pool() -> AsyncIterator[CpuPool]:
    cpu = CpuPool(workers=1)
    yield cpu
    await asyncio.to_thread(cpu.close)


async def test_a_merge_in_the_pool_reports_progress_and_imports_no_broker(
    pool: CpuPool, tmp_path: Path
) -> None:
    paths = [tmp_path / f"{number}.pdf" for number in range(3)]
    for path in paths:
        await asyncio.to_thread(path.write_bytes, numbered_pdf(2))
    out, progress = tmp_path / "out.pdf", tmp_path / "progress"
    progress.touch()
    sources = [Source(path, path.name) for path in paths]
    pages = await pool.run(merge, sources, out, PdfLimits(), ProgressFile(progress))
    assert pages == 6
    assert read_progress(progress) == (3, 3)
    qpdf_check(out)
    assert page_count(out) == 6
    assert (await pool.run(whoami))["offload_modules"] == []


async def test_a_refused_input_keeps_its_type_across_the_pool(
    pool: CpuPool, tmp_path: Path
) -> None:
    locked = tmp_path / "locked.pdf"
    await asyncio.to_thread(locked.write_bytes, encrypted_pdf(["x"], "pw"))
    with pytest.raises(EncryptedPdf, match=r"locked\.pdf is encrypted") as raised:
        await pool.run(merge, [Source(locked, "locked.pdf")], tmp_path / "o.pdf", PdfLimits())
    assert raised.value.error_type == "encrypted_pdf"
