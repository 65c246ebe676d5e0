"""Submit-time checks of PDF inputs, for a kind's ``check_files``: a corrupt file, one over
the page limit, or page numbers past a file's end answer 422 naming the body field.

Cheap: :func:`tasks.pdf_guard.probe_pdf` reads the header, cross-reference table and page
tree, never a content stream. Run off the event loop (the submit route does).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pydantic import ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from tasks.pdf_guard import InputLimitExceeded, PdfInputError, PdfLimits, PdfProbe, probe_pdf


def probe_inputs(
    inputs: Iterable[tuple[str, Path, str]],
    limits: PdfLimits,
    *,
    model: str,
    password: str | None = None,
) -> dict[str, PdfProbe]:
    """Probe each ``(field, path, name)``; the probes by field, or a ValidationError naming
    every field whose file is refused. ``field`` is the dotted body field (``file_ids.2``);
    ``name`` the file's own name, for the message."""
    probes: dict[str, PdfProbe] = {}
    faults: list[InitErrorDetails] = []
    for field, path, name in inputs:
        try:
            probes[field] = probe_pdf(path, password, limits=limits, label=name)
        except PdfInputError as refused:
            kind = (
                "pdf_too_large" if isinstance(refused, InputLimitExceeded) else refused.error_type
            )
            faults.append(field_fault(field, kind, str(refused), name))
    if faults:
        raise ValidationError.from_exception_data(model, faults)
    return probes


def field_fault(field: str, kind: str, message: str, value: object) -> InitErrorDetails:
    """One 422 entry at the dotted ``field`` (``file_ids.2`` -> ``("file_ids", 2)``)."""
    loc = tuple(int(part) if part.isdigit() else part for part in field.split("."))
    return InitErrorDetails(type=PydanticCustomError(kind, message), loc=loc, input=value)


def refuse(model: str, faults: list[InitErrorDetails]) -> None:
    if faults:
        raise ValidationError.from_exception_data(model, faults)
