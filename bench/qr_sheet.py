"""Printable QR sheets and drawing on PDFs: Offload's writers against raw pypdf, in one run.

    .venv/bin/python -m bench.qr_sheet            # ~1 minute on a loaded 2-core machine
    .venv/bin/python -m bench.qr_sheet --pages 300 --repeat 1

* sheet: a 1,000-page sheet with ``tasks.qr_sheet.write_qr_sheet``, (a) the default layout
  (A4, 4 x 5 = 20 codes a page, each with a label) and (b) one code a page; against a raw
  pypdf loop drawing the same rectangles (one per run of dark modules, flate-compressed
  content, a base-14 font for the label) into a ``PdfWriter``. Codes are made beforehand
  (a pool of 200 distinct version-3 codes, cycled): this measures the PDF writing, not the
  QR encoder, which is the bulk-QR kind's to choose.
* memory: peak RSS (ru_maxrss) of a fresh process writing a sheet of 1,000 and of 10,000
  codes, ours and the raw ``PdfWriter`` loop, above the process's RSS before writing.
* draw: a watermark and a QR stamp on every page of a 1,000-page PDF (40 lines of text a
  page), the jobs' CPU steps (``tasks.pdf_draw_files``: guard, clone, draw, save) against
  pypdf's ``merge_transformed_page`` of a page holding the same drawing, from
  ``PdfWriter(clone_from=reader)`` to a written file.

Figures are medians of ``--repeat`` runs (best of, for memory). Not a pytest test.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.common import PYTHON, REPO, load, say

Matrix = tuple[bytes, ...]
SIDE = 29
"""Version 3, what a 40-60 character URL takes at level M."""


def _function_area(x: int, y: int) -> bool:
    """Finder patterns with separators and format bits, timing lines, the alignment pattern."""
    corner = (x < 9 and y < 9) or (x > SIDE - 9 and y < 9) or (x < 9 and y > SIDE - 9)
    return corner or x == 6 or y == 6 or (SIDE - 10 <= x <= SIDE - 4 and SIDE - 10 <= y <= SIDE - 4)


def _codes_like_real_ones(count: int, seed: int = 8) -> Iterator[Matrix]:
    """Distinct matrices with a real code's function patterns and random data modules (after
    masking, real data modules are as good as random): rows repeat between codes as often
    as in real sheets, where a pool cycled over would repeat far more."""
    from schemas.qr import ErrorCorrection
    from tasks.qr_matrix import qr_modules

    base = qr_modules("https://example.com/items/000001?ref=sheet", ErrorCorrection.M)
    assert len(base) == SIDE
    data = [(x, y) for y in range(SIDE) for x in range(SIDE) if not _function_area(x, y)]
    generator = random.Random(seed)
    for _ in range(count):
        rows = [bytearray(row) for row in base]
        bits = generator.getrandbits(len(data))
        for n, (x, y) in enumerate(data):
            rows[y][x] = (bits >> n) & 1
        yield tuple(bytes(row) for row in rows)


def _codes(count: int, pool: list[Matrix] | None) -> Iterator[object]:
    from tasks.qr_sheet import SheetCode

    matrices = iter(pool) if pool is not None else _codes_like_real_ones(count)
    return (SheetCode(next(matrices), f"item {n:06d}") for n in range(count))


def ours(count: int, per_page: tuple[int, int], path: Path, pool: list[Matrix] | None) -> int:
    from schemas.qr_sheet import SheetOptions
    from tasks.qr_sheet import write_qr_sheet

    layout = SheetOptions(columns=per_page[0], rows=per_page[1])
    return write_qr_sheet(_codes(count, pool), layout, path)  # type: ignore[arg-type]


_RUN = re.compile(b"\x01+")


def raw_pypdf(count: int, per_page: tuple[int, int], path: Path, pool: list[Matrix] | None) -> int:
    """What a hand-written pypdf loop does: content string per page, PdfWriter, write."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    from schemas.qr_sheet import SheetOptions

    layout = SheetOptions(columns=per_page[0], rows=per_page[1])
    width, height = layout.page_points
    cell_w, cell_h = layout.cell_points
    margin, gap, side = layout.margin_mm * 72 / 25.4, layout.gap_mm * 72 / 25.4, layout.code_points
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
    resources = DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})})
    pages = 0
    matrices = iter(pool) if pool is not None else _codes_like_real_ones(count)
    for first in range(0, count, layout.per_page):
        ops = []
        for index in range(first, min(first + layout.per_page, count)):
            modules = next(matrices)
            row, column = divmod(index - first, layout.columns)
            left = margin + column * (cell_w + gap)
            top = height - margin - row * (cell_h + gap)
            total = len(modules) + 8
            scale = side / total
            ops.append(f"q {scale:.4f} 0 0 {-scale:.4f} {left:.3f} {top:.3f} cm 1 g 0 0 {total} ")
            ops.append(f"{total} re f 0 g 1 0 0 1 4 4 cm\n")
            for y, row_bytes in enumerate(modules):
                for run in _RUN.finditer(row_bytes):
                    ops.append(f"{run.start()} {y} {run.end() - run.start()} 1 re\n")
            ops.append("f Q\n")
            ops.append(f"BT /F1 8 Tf {left:.2f} {top - side - 9:.2f} Td (item {index:06d}) Tj ET\n")
        page = writer.add_blank_page(width=width, height=height)
        page[NameObject("/Resources")] = resources
        stream = DecodedStreamObject()
        stream.set_data(zlib.compress("".join(ops).encode("ascii"), 1))
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        page[NameObject("/Contents")] = writer._add_object(stream)
        pages += 1
    with path.open("wb") as out:
        writer.write(out)
    return pages


WRITERS: dict[str, Callable[[int, tuple[int, int], Path, list[Matrix] | None], int]] = {
    "ours": ours,
    "raw": raw_pypdf,
}


def sheet_part(pages: int, repeat: int, work: Path) -> None:
    ours(10, (4, 5), work / "warm.pdf", None)  # font parsed once per process, as in a worker
    for per_page in ((4, 5), (1, 1)):
        codes = pages * per_page[0] * per_page[1]
        pool = list(_codes_like_real_ones(codes))
        rates: dict[str, float] = {}
        for name, writer in WRITERS.items():
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                written = writer(codes, per_page, work / f"{name}.pdf", pool)
                times.append(time.perf_counter() - start)
            rates[name] = written / statistics.median(times)
            size = (work / f"{name}.pdf").stat().st_size
            say(
                f"  sheet {per_page[0]}x{per_page[1]} {name:4}: {rates[name]:7.0f} pages/s "
                f"({rates[name] * per_page[0] * per_page[1]:,.0f} codes/s), {written} pages, "
                f"{size / 1e6:.1f} MB"
            )
        say(f"  sheet {per_page[0]}x{per_page[1]} ours/raw: {rates['ours'] / rates['raw']:.2f}x")


def memory_child(writer: str, codes: int, directory: str) -> None:
    path = Path(directory) / f"memory-{writer}.pdf"
    ours(10, (4, 5), path, None)
    Path("/proc/self/clear_refs").write_text("5")  # the peak (VmHWM) starts again from here
    before = _status_kib("VmRSS")
    WRITERS[writer](codes, (4, 5), path, None)  # codes made lazily, one at a time
    print(json.dumps({"before_kib": before, "peak_kib": _status_kib("VmHWM")}))  # noqa: T201


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def memory_part(work: Path) -> None:
    for name in WRITERS:
        grown = {}
        for codes in (1_000, 10_000):
            out = subprocess.run(
                [PYTHON, "-m", "bench.qr_sheet", "--memory-child", name, str(codes), str(work)],
                cwd=REPO,
                capture_output=True,
                text=True,
                check=True,
            )
            figures = json.loads(out.stdout.strip().splitlines()[-1])
            grown[codes] = (figures["peak_kib"] - figures["before_kib"]) / 1024
            say(
                f"  memory {name:4} {codes:6,} codes: peak {figures['peak_kib'] / 1024:6.1f} MiB,"
                f" {grown[codes]:6.1f} MiB above the start"
            )
        say(f"  memory {name:4} growth 10k vs 1k: {grown[10_000] - grown[1_000]:+.1f} MiB")


def _input_pdf(path: Path, pages: int) -> Path:
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

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
    for number in range(pages):
        page = writer.add_blank_page(width=595, height=842)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        lines = "".join(f"0 -14 Td (Line {n} of page {number}) Tj\n" for n in range(40))
        stream = DecodedStreamObject()
        stream.set_data(f"BT /F1 11 Tf 72 800 Td\n{lines}ET\n".encode("ascii"))
        page[NameObject("/Contents")] = writer._add_object(stream.flate_encode())
    with path.open("wb") as out:
        writer.write(out)
    return path


def draw_part(pages: int, repeat: int, work: Path) -> None:
    """The job's own CPU step (guard, clone, draw, save) against the same reading and
    writing with pypdf's merge_transformed_page of a page holding the drawing."""
    from pypdf import PdfReader, PdfWriter, Transformation

    from schemas.pdf_draw import PdfStampQrRequest, PdfWatermarkRequest
    from tasks.pdf_draw import stamp_qr, watermark
    from tasks.pdf_draw_files import stamp_qr_file, watermark_file
    from tasks.pdf_guard import PdfLimits
    from tasks.pdf_ops import Source

    source = _input_pdf(work / "input.pdf", pages)
    stamp = PdfStampQrRequest(file_id="f", data="https://example.com/doc/42")
    mark = PdfWatermarkRequest(file_id="f", text="CONFIDENTIAL")

    def drawing_page(draw: Callable[[PdfWriter], object]) -> object:
        blank = PdfWriter()
        blank.add_blank_page(width=595, height=842)
        draw(blank)
        buffer = io.BytesIO()
        blank.write(buffer)
        return PdfReader(buffer).pages[0]

    overlays = {
        "stamp": drawing_page(lambda writer: stamp_qr(writer, stamp, [0])),
        "watermark": drawing_page(lambda writer: watermark(writer, mark, [0])),
    }
    steps: dict[str, Callable[[Path], object]] = {
        "stamp": lambda out: stamp_qr_file(Source(source), stamp, out, PdfLimits(), _quiet),
        "watermark": lambda out: watermark_file(Source(source), mark, out, PdfLimits(), _quiet),
    }
    for name, step in steps.items():

        def by_merge_page(out: Path, overlay: object = overlays[name]) -> None:
            writer = PdfWriter(clone_from=PdfReader(source))
            for page in writer.pages:
                page.merge_transformed_page(overlay, Transformation())  # type: ignore[arg-type]
            with out.open("wb") as file:
                writer.write(file)

        rates = {}
        for label, run in (("ours", step), ("merge_page", by_merge_page)):
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                run(work / f"{name}-{label}.pdf")
                times.append(time.perf_counter() - start)
            rates[label] = pages / statistics.median(times)
            say(f"  {name:9} {label:10}: {rates[label]:7.0f} pages/s")
        say(f"  {name:9} ours/merge_page: {rates['ours'] / rates['merge_page']:.2f}x")


def _quiet(done: int, total: int) -> None:
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", choices=["sheet", "memory", "draw"], action="append")
    parser.add_argument("--memory-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        writer, codes, directory = args.memory_child
        memory_child(writer, int(codes), directory)
        return
    say(f"bench.qr_sheet: {args.pages} pages, median of {args.repeat}; {load()}")
    with tempfile.TemporaryDirectory() as directory:
        work = Path(directory)
        for part in args.only or ["sheet", "memory", "draw"]:
            say(f"{part}:")
            {
                "sheet": lambda: sheet_part(args.pages, args.repeat, work),
                "memory": lambda: memory_part(work),
                "draw": lambda: draw_part(args.pages, args.repeat, work),
            }[part]()
    say(load())


if __name__ == "__main__":
    sys.exit(main())
