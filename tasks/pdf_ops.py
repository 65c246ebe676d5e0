"""PDF operations on paths: merge, split, rotate, extract text, encrypt, decrypt.

Pure (no broker, no HTTP): each is one run_cpu step of its job (tasks/pdf_kinds.py). Inputs
are opened with tasks/pdf_guard.py and all pypdf work runs inside its limits, so a bad or
hostile file ends as a typed PdfInputError. ``progress(done, total)`` is called per file or
page. Outputs are written to the paths given; nothing is held whole in memory beyond what
pypdf itself holds.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pypdf import PdfWriter

from schemas.pdf_ranges import PageRange, out_of_range, selected_pages
from tasks.pdf_guard import (
    InputLimitExceeded,
    PdfInputError,
    PdfLimits,
    TooManyPages,
    open_pdf,
    pdf_limits,
    save_pdf,
)

Progress = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    return None


@dataclass(frozen=True)
class Source:
    """An input file: where it is, the name to call it in messages, its password if any."""

    path: Path
    name: str = "the PDF"
    password: str | None = None


class RangesOutOfBounds(PdfInputError):
    """Page ranges past a file's end (the submit check catches this first)."""

    error_type = "pages_out_of_range"


def merge(
    sources: list[Source], out: Path, limits: PdfLimits, progress: Progress = no_progress
) -> int:
    """``sources`` one after the other into ``out``; returns the page count."""
    total_bytes = sum(source.path.stat().st_size for source in sources)
    if total_bytes > limits.max_merge_bytes:
        raise InputLimitExceeded(
            f"these files add up to {total_bytes:,} bytes; this server merges at most "
            f"{limits.max_merge_bytes:,}"
        )
    writer = PdfWriter()
    pages = 0
    for done, source in enumerate(sources, start=1):
        reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
        with pdf_limits(limits, source.name):
            pages += len(reader.pages)
            if pages > limits.max_pages:
                raise TooManyPages(
                    f"the merged PDF would have over {limits.max_pages:,} pages, this "
                    f"server's limit (reached at {source.name})"
                )
            writer.append(reader)
        progress(done, len(sources))
    save_pdf(writer, out, limits=limits, label="the merged PDF")
    return pages


def split_parts(ranges: tuple[PageRange, ...] | None, page_count: int) -> list[tuple[str, range]]:
    """The parts a split makes: ``(file name, page indices)``; None ranges: one per page."""
    if ranges is None:
        ranges = tuple(PageRange(page, page) for page in range(1, page_count + 1))
    fault = out_of_range(ranges, page_count)
    if fault is not None:
        raise RangesOutOfBounds(fault)
    width = len(str(page_count))
    parts = []
    for number, page_range in enumerate(ranges, start=1):
        indices = page_range.indices(page_count)
        first, last = indices.start + 1, indices.stop
        pages = f"{first:0{width}d}" if first == last else f"{first:0{width}d}-{last:0{width}d}"
        parts.append((f"part-{number:04d}-pages-{pages}.pdf", indices))
    return parts


def split_to_files(
    source: Source,
    ranges: tuple[PageRange, ...] | None,
    outs: list[Path],
    limits: PdfLimits,
    progress: Progress = no_progress,
) -> list[tuple[str, int]]:
    """One PDF per range, written to ``outs`` (as many as ranges); their names and pages."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    parts = split_parts(ranges, len(reader.pages))
    if len(outs) != len(parts):
        raise ValueError(f"{len(parts)} parts need as many output paths, not {len(outs)}")
    total = sum(len(indices) for _, indices in parts)
    done = 0
    for (_, indices), out in zip(parts, outs, strict=True):
        writer = PdfWriter()
        with pdf_limits(limits, source.name):
            for index in indices:
                writer.add_page(reader.pages[index])
                done += 1
                progress(done, total)
        save_pdf(writer, out, limits=limits, label=source.name)
    return [(name, len(indices)) for name, indices in parts]


def split_to_zip(
    source: Source,
    ranges: tuple[PageRange, ...] | None,
    out: Path,
    limits: PdfLimits,
    progress: Progress = no_progress,
) -> list[tuple[str, int]]:
    """One PDF per range, each a member of the ZIP ``out``; their names and pages."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    parts = split_parts(ranges, len(reader.pages))
    total = sum(len(indices) for _, indices in parts)
    done = 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for name, indices in parts:
            writer = PdfWriter()
            buffer = io.BytesIO()
            with pdf_limits(limits, source.name):
                for index in indices:
                    writer.add_page(reader.pages[index])
                    done += 1
                    progress(done, total)
                writer.write(buffer)
            archive.writestr(name, buffer.getvalue())
    return [(name, len(indices)) for name, indices in parts]


def rotate(
    source: Source,
    ranges: tuple[PageRange, ...] | None,
    angle: int,
    out: Path,
    limits: PdfLimits,
    progress: Progress = no_progress,
) -> int:
    """Turn the pages ``ranges`` name (None: all) ``angle`` degrees clockwise; returns how
    many pages turned."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    with pdf_limits(limits, source.name):
        if ranges is not None and (fault := out_of_range(ranges, len(reader.pages))):
            raise RangesOutOfBounds(fault)
        chosen = selected_pages(ranges, len(reader.pages))
        writer = PdfWriter(clone_from=reader)
        for done, index in enumerate(chosen, start=1):
            writer.pages[index].rotate(angle)
            progress(done, len(chosen))
    save_pdf(writer, out, limits=limits, label=source.name)
    return len(chosen)


def extract_text(
    source: Source,
    ranges: tuple[PageRange, ...] | None,
    out: Path,
    limits: PdfLimits,
    progress: Progress = no_progress,
) -> tuple[int, int]:
    """``{"pages": [{"page": 1, "text": "..."}, ...]}`` to ``out``, one page at a time;
    returns (pages, characters)."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    characters = 0
    with pdf_limits(limits, source.name), out.open("w", encoding="utf-8") as file:
        if ranges is not None and (fault := out_of_range(ranges, len(reader.pages))):
            raise RangesOutOfBounds(fault)
        chosen = selected_pages(ranges, len(reader.pages))
        file.write('{"pages": [')
        for done, index in enumerate(chosen, start=1):
            text = reader.pages[index].extract_text()
            # The reader keeps every object it resolved, decoded streams included: pages of
            # 40 MB streams (each under the stream limit) would add up. Forget them per page.
            reader.resolved_objects.clear()
            characters += len(text)
            separator = "" if done == 1 else ", "
            file.write(separator + json.dumps({"page": index + 1, "text": text}))
            progress(done, len(chosen))
        file.write("]}\n")
    return len(chosen), characters


def encrypt(
    source: Source,
    user_password: str,
    owner_password: str | None,
    out: Path,
    limits: PdfLimits,
    progress: Progress = no_progress,
) -> int:
    """``source`` encrypted with AES-256: ``user_password`` opens it, ``owner_password``
    (default: the user password) also lifts its permissions. Returns the page count."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    with pdf_limits(limits, source.name):
        writer = PdfWriter(clone_from=reader)
        writer.encrypt(user_password, owner_password, algorithm="AES-256")
        pages = len(writer.pages)
    save_pdf(writer, out, limits=limits, label=source.name)
    progress(pages, pages)
    return pages


def decrypt(
    source: Source, out: Path, limits: PdfLimits, progress: Progress = no_progress
) -> tuple[int, bool]:
    """``source`` opened with its password and written without encryption; returns the
    page count and whether it was encrypted at all."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    with pdf_limits(limits, source.name):
        writer = PdfWriter(clone_from=reader)
        pages = len(writer.pages)
    save_pdf(writer, out, limits=limits, label=source.name)
    progress(pages, pages)
    return pages, reader.is_encrypted


def count_pages(source: Source, limits: PdfLimits, progress: Progress = no_progress) -> int:
    """The page count of ``source`` (opened as every operation opens it)."""
    pages = len(open_pdf(source.path, source.password, limits=limits, label=source.name).pages)
    progress(0, pages)
    return pages
