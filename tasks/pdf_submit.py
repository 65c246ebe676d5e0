"""The PDF kinds' submit checks: which uploads a request names (``inputs``) and a cheap look
inside them (``check_files``): corrupt, over the page limit, page ranges past the end, too
many parts. Each refusal is a 422 naming the body field."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from pydantic import BaseModel
from taskiq import AsyncTaskiqDecoratedTask

from brokers.uploads import Upload
from schemas.jobs import Lane
from schemas.pdf import MAX_SPLIT_FILES, PdfInput, PdfMergeRequest, PdfSplitRequest
from schemas.pdf_ranges import out_of_range
from service.settings import Settings
from tasks.job_secrets import opened, seal_fields
from tasks.kinds import FileInput, Kind, declare_kind
from tasks.pdf_checks import field_fault, probe_inputs, refuse
from tasks.pdf_jobs import pdf_limits_of

PDF = frozenset({"application/pdf"})
PDF_TIMEOUT_SECONDS = 600.0
"""5,000 pages take seconds for any operation here; ten minutes means something is wrong."""


def merge_inputs(request: PdfMergeRequest) -> Iterator[FileInput]:
    for index, file_id in enumerate(request.file_ids):
        yield FileInput(field=f"file_ids.{index}", file_id=file_id, accept=PDF)


def single_input(request: PdfInput) -> Iterator[FileInput]:
    yield FileInput(field="file_id", file_id=request.file_id, accept=PDF)


def seal_passwords(request: PdfInput, settings: Settings) -> None:
    """The kinds' submit check, first: what the job stores holds its passwords sealed."""
    seal_fields(request, request.SECRETS, settings.data_dir)


def check_merge_files(
    request: PdfMergeRequest, settings: Settings, uploads: dict[str, Upload]
) -> None:
    """Each file readable and within the page limit, and all of them together too."""
    limits = pdf_limits_of(settings)
    model = type(request).__name__
    total_bytes = sum(uploads[file_id].size for file_id in request.file_ids)
    if total_bytes > limits.max_merge_bytes:
        message = (
            f"together these files are {total_bytes:,} bytes; this server merges at most "
            f"{limits.max_merge_bytes:,}"
        )
        refuse(model, [field_fault("file_ids", "merge_too_large", message, None)])
    first_field: dict[str, str] = {}
    for index, file_id in enumerate(request.file_ids):
        first_field.setdefault(file_id, f"file_ids.{index}")
    probes = probe_inputs(
        [
            (field, uploads[file_id].path, uploads[file_id].name)
            for file_id, field in first_field.items()
        ],
        limits,
        model=model,
    )
    pages_of = {file_id: probes[field].pages or 0 for file_id, field in first_field.items()}
    total = sum(pages_of[file_id] for file_id in request.file_ids)
    if total > limits.max_pages:
        message = (
            f"together these files have {total:,} pages; this server merges at most "
            f"{limits.max_pages:,}"
        )
        refuse(model, [field_fault("file_ids", "too_many_pages", message, None)])


def check_single_file(request: PdfInput, settings: Settings, uploads: dict[str, Upload]) -> None:
    """The file readable (with its password, if given) and within the page limit; its page
    ranges within its pages; a split into separate files not too many of them."""
    upload = uploads[request.file_id]
    model = type(request).__name__
    probe = probe_inputs(
        [("file_id", upload.path, upload.name)],
        pdf_limits_of(settings),
        model=model,
        password=opened(request.password, settings.data_dir),
    )["file_id"]
    if probe.pages is None:
        return  # encrypted, no (right) password: the job fails saying so
    ranges = request.page_ranges()
    field = _ranges_field(request)
    if ranges is not None and field is not None:
        fault = out_of_range(ranges, probe.pages)
        if fault is not None:
            refuse(model, [field_fault(field, "pages_out_of_range", fault, None)])
    if isinstance(request, PdfSplitRequest) and request.output == "pdfs":
        parts = probe.pages if ranges is None else len(ranges)
        if parts > MAX_SPLIT_FILES:
            message = (
                f"{parts} parts is more than {MAX_SPLIT_FILES} result files; ask for "
                f"output zip, or fewer ranges"
            )
            refuse(model, [field_fault("output", "too_many_parts", message, request.output)])


def _ranges_field(request: BaseModel) -> str | None:
    for name in ("pages", "ranges"):
        if getattr(request, name, None) is not None:
            return name
    return None


def declare_pdf_kind(
    operation: str,
    *,
    request: type[PdfInput] | type[PdfMergeRequest],
    task: AsyncTaskiqDecoratedTask[Any, Any],
    summary: str,
    check: Callable[[Any, Settings], object] | None = seal_passwords,
    inputs: Callable[[Any], Iterable[FileInput]] = single_input,
    check_files: Callable[[Any, Settings, dict[str, Upload]], object] = check_single_file,
) -> Kind[Any]:
    """One PDF operation as a kind: ``POST /v1/jobs/pdf/<operation>``, kind
    ``pdf_<operation>``, its uploads checked at submit, interactive, two runs at most."""
    return declare_kind(
        name="pdf_" + operation.replace("-", "_"),
        path=f"/v1/jobs/pdf/{operation}",
        request=request,
        task=task,
        summary=summary,
        check=check,
        inputs=inputs,
        check_files=check_files,
        lane=Lane.INTERACTIVE,
        max_attempts=2,
        timeout_s=PDF_TIMEOUT_SECONDS,
    )
