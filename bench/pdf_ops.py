"""Offload's PDF operations against the raw pypdf calls they wrap, on the same files, in
one run: what the guard (limits, header check, page count) and the progress cost.

    .venv/bin/python -m bench.pdf_ops                # ~30 s
    .venv/bin/python -m bench.pdf_ops --files 40 --pages 50 --repeat 5

Builds ``--files`` PDFs of ``--pages`` text pages each (Helvetica, 40 lines a page) in a
temporary directory. For each operation it alternates ours and raw ``--repeat`` times and
keeps the best of each; prints pages/s and the ratio ours/raw (goal for merge: <= 1.5).
Then the merge as a job: the files uploaded once to the API (in process, embedded SQLite
worker, its CPU pool), each ``POST /v1/jobs/pdf/merge`` timed until the job has succeeded,
against the raw merge in the same loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import io
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

from pypdf import PdfReader, PdfWriter
from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

from schemas.pdf_ranges import PageRange
from tasks.pdf_guard import PdfLimits
from tasks.pdf_metadata import write_metadata
from tasks.pdf_ops import Source, decrypt, encrypt, extract_text, merge, rotate, split_to_zip
from tasks.step_progress import ProgressFile

MERGE_GOAL = 1.5


def build_corpus(folder: Path, files: int, pages: int) -> list[Path]:
    paths = []
    for number in range(files):
        writer = PdfWriter()
        font = writer._add_object(
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Font"),
                    NameObject("/Subtype"): NameObject("/Type1"),
                    NameObject("/BaseFont"): NameObject("/Helvetica"),
                }
            )
        )
        for page_number in range(pages):
            page = writer.add_blank_page(612, 792)
            page[NameObject("/Resources")] = DictionaryObject(
                {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
            )
            lines = " ".join(
                f"BT /F1 10 Tf 50 {760 - 18 * line} Td (file {number} page {page_number} "
                f"line {line}: the quick brown fox jumps over the lazy dog) Tj ET"
                for line in range(40)
            )
            content = DecodedStreamObject()
            content.set_data(lines.encode())
            page[NameObject("/Contents")] = writer._add_object(content.flate_encode())
        path = folder / f"in-{number:03d}.pdf"
        with path.open("wb") as file:
            writer.write(file)
        paths.append(path)
    return paths


def best_of(
    repeat: int, ours: Callable[[], object], raw: Callable[[], object]
) -> tuple[float, float]:
    ours_best = raw_best = float("inf")
    for _ in range(repeat):
        # Garbage of the run before is collected outside the timing, for both alike.
        gc.collect()
        started = time.perf_counter()
        raw()
        raw_best = min(raw_best, time.perf_counter() - started)
        gc.collect()
        started = time.perf_counter()
        ours()
        ours_best = min(ours_best, time.perf_counter() - started)
    return ours_best, raw_best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--pages", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    limits = PdfLimits()
    with tempfile.TemporaryDirectory(prefix="offload-bench-pdf-") as name:
        folder = Path(name)
        paths = build_corpus(folder, args.files, args.pages)
        one = paths[0]
        # The progress a job's step really writes, to a real file.
        progress = ProgressFile(folder / "progress")
        (folder / "progress").touch()
        locked = folder / "locked.pdf"
        encrypt(Source(one), "pw", None, locked, limits)
        out = folder / "out"

        def write(writer: PdfWriter) -> None:
            # Buffered, as ours writes: PdfWriter.write(path) writes unbuffered (FileIO),
            # a syscall per object, which would flatter ours.
            with out.open("wb") as file:
                writer.write(file)

        def raw_merge() -> None:
            writer = PdfWriter()
            for path in paths:
                writer.append(path)
            write(writer)

        def raw_split() -> None:
            reader = PdfReader(one)
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
                for number, page in enumerate(reader.pages):
                    writer = PdfWriter()
                    writer.add_page(page)
                    buffer = io.BytesIO()
                    writer.write(buffer)
                    archive.writestr(f"{number}.pdf", buffer.getvalue())

        def raw_rotate() -> None:
            writer = PdfWriter(clone_from=one)
            for page in writer.pages:
                page.rotate(90)
            write(writer)

        def raw_text() -> None:
            _ = [page.extract_text() for page in PdfReader(one).pages]

        def raw_metadata() -> None:
            writer = PdfWriter(clone_from=one)
            writer.add_metadata({"/Title": "Bench"})
            write(writer)

        def raw_encrypt() -> None:
            writer = PdfWriter(clone_from=one)
            writer.encrypt("pw", algorithm="AES-256")
            write(writer)

        def raw_decrypt() -> None:
            reader = PdfReader(locked, password="pw")
            write(PdfWriter(clone_from=reader))

        source, pages = Source(one), args.pages
        every = tuple(PageRange(page, page) for page in range(1, pages + 1))
        cases: list[tuple[str, int, Callable[[], object], Callable[[], object]]] = [
            (
                "merge",
                args.files * pages,
                lambda: merge([Source(path) for path in paths], out, limits, progress),
                raw_merge,
            ),
            (
                "split (zip, per page)",
                pages,
                lambda: split_to_zip(source, every, out, limits, progress),
                raw_split,
            ),
            (
                "rotate (all pages)",
                pages,
                lambda: rotate(source, None, 90, out, limits, progress),
                raw_rotate,
            ),
            (
                "extract text",
                pages,
                lambda: extract_text(source, None, out, limits, progress),
                raw_text,
            ),
            (
                "write metadata",
                pages,
                lambda: write_metadata(source, {"title": "Bench"}, out, limits, progress),
                raw_metadata,
            ),
            (
                "encrypt AES-256",
                pages,
                lambda: encrypt(source, "pw", None, out, limits, progress),
                raw_encrypt,
            ),
            (
                "decrypt",
                pages,
                lambda: decrypt(Source(locked, password="pw"), out, limits, progress),
                raw_decrypt,
            ),
        ]
        print(f"corpus: {args.files} files x {pages} pages, best of {args.repeat}")  # noqa: T201
        print(f"{'operation':24} {'ours pages/s':>13} {'raw pages/s':>12} {'ours/raw':>9}")  # noqa: T201
        for label, page_count, ours, raw in cases:
            ours_s, raw_s = best_of(args.repeat, ours, raw)
            goal = f"  (goal <= {MERGE_GOAL})" if label == "merge" else ""
            print(  # noqa: T201
                f"{label:24} {page_count / ours_s:13.0f} {page_count / raw_s:12.0f} "
                f"{ours_s / raw_s:9.2f}{goal}"
            )
        job_s, raw_s = asyncio.run(merge_job_against_raw(folder, paths, args.repeat, raw_merge))
        total = args.files * pages
        print(  # noqa: T201
            f"{'merge job (API, worker)':24} {total / job_s:13.0f} {total / raw_s:12.0f} "
            f"{job_s / raw_s:9.2f}  (goal <= {MERGE_GOAL}; submit to succeeded)"
        )


async def merge_job_against_raw(
    folder: Path, paths: list[Path], repeat: int, raw: Callable[[], object]
) -> tuple[float, float]:
    import httpx

    from brokers import backend
    from service.app import create_app

    backend.use_data_dir(folder / "data")
    app = create_app(backend, embedded_worker=True)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            ids = []
            for path in paths:
                response = await client.post(
                    "/v1/files", files={"file": (path.name, path.read_bytes(), "application/pdf")}
                )
                ids.append(response.json()["id"])

            async def one_job() -> float:
                started = time.perf_counter()
                response = await client.post("/v1/jobs/pdf/merge", json={"file_ids": ids})
                job_id = response.json()["id"]
                while True:
                    job = (await client.get(f"/v1/jobs/{job_id}")).json()
                    if job["status"] in {"succeeded", "failed", "cancelled"}:
                        break
                    await asyncio.sleep(0.002)
                if job["status"] != "succeeded":
                    raise RuntimeError(f"merge job ended {job['status']}: {job['error']}")
                return time.perf_counter() - started

            await one_job()  # starts the CPU pool
            job_best = raw_best = float("inf")
            for _ in range(repeat):
                started = time.perf_counter()
                raw()
                raw_best = min(raw_best, time.perf_counter() - started)
                job_best = min(job_best, await one_job())
    return job_best, raw_best


if __name__ == "__main__":
    main()
