"""Reading and writing a PDF's metadata: the document information dictionary, and the XMP
packet kept in step with it (title, author, subject, keywords, creator, producer).

Pure; run as a CPU step of the metadata jobs (tasks/pdf_kinds.py).
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.xmp import XmpInformation

from tasks.pdf_guard import PdfLimits, open_pdf, pdf_limits, save_pdf
from tasks.pdf_ops import Progress, Source, no_progress

STANDARD_KEYS = {
    "title": "/Title",
    "author": "/Author",
    "subject": "/Subject",
    "keywords": "/Keywords",
    "creator": "/Creator",
    "producer": "/Producer",
}
"""The request's names for the Info dictionary's text entries (PDF 32000-1, 14.3.3)."""
MAX_VALUE_CHARACTERS = 10_000
MAX_INFO_ENTRIES = 200
"""Info entries a read reports (a result of at most about 2 MB); the rest are counted."""


def read_metadata(
    source: Source, limits: PdfLimits, progress: Progress = no_progress
) -> dict[str, Any]:
    """Info entries (by their request names; other keys as written, without the slash),
    the XMP fields Offload keeps, the page count, encryption and the PDF version."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    with pdf_limits(limits, source.name):
        entries = [
            (_request_name(key), value)
            for key, value in (reader.metadata or {}).items()
            if isinstance(key, str)
        ]
        # A job's result is JSON in the job store: a file with 100,000 entries of 10,000
        # characters (within pypdf's limits) must not make it a gigabyte.
        info = {name: _text(value) for name, value in entries[:MAX_INFO_ENTRIES]}
        progress(1, 1)
        return {
            "info": info,
            "info_truncated": len(entries) > MAX_INFO_ENTRIES,
            "xmp": _xmp_fields(reader),
            "pages": len(reader.pages),
            "encrypted": reader.is_encrypted,
            "pdf_version": reader.pdf_header.removeprefix("%PDF-"),
        }


def write_metadata(
    source: Source,
    changes: dict[str, str | None],
    out: Path,
    limits: PdfLimits,
    progress: Progress = no_progress,
) -> dict[str, str]:
    """``source`` with its Info entries changed (None removes one) and an XMP packet that
    says the same; returns the Info entries written."""
    reader = open_pdf(source.path, source.password, limits=limits, label=source.name)
    with pdf_limits(limits, source.name):
        writer = PdfWriter(clone_from=reader)
        info = {
            str(key): _text(value)
            for key, value in (reader.metadata or {}).items()
            if isinstance(key, str)
        }
        for name, value in changes.items():
            key = STANDARD_KEYS.get(name, f"/{name}")
            if value is None:
                info.pop(key, None)
            else:
                info[key] = value
        info["/ModDate"] = _pdf_date(datetime.datetime.now(datetime.UTC))
        writer.metadata = info
        writer.xmp_metadata = _xmp_for(info)
    save_pdf(writer, out, limits=limits, label=source.name)
    progress(1, 1)
    return {_request_name(key): value for key, value in info.items()}


def _xmp_for(info: dict[str, str]) -> XmpInformation:
    xmp = XmpInformation.create()
    if "/Title" in info:
        xmp.dc_title = {"x-default": info["/Title"]}
    if "/Author" in info:
        xmp.dc_creator = [info["/Author"]]
    if "/Subject" in info:
        xmp.dc_description = {"x-default": info["/Subject"]}
    if "/Keywords" in info:
        xmp.pdf_keywords = info["/Keywords"]
    if "/Producer" in info:
        xmp.pdf_producer = info["/Producer"]
    if "/Creator" in info:
        xmp.xmp_creator_tool = info["/Creator"]
    xmp.xmp_modify_date = datetime.datetime.now(datetime.UTC)
    return xmp


def _xmp_fields(reader: PdfReader) -> dict[str, Any] | None:
    xmp = reader.xmp_metadata
    if xmp is None:
        return None
    fields = {
        "title": (xmp.dc_title or {}).get("x-default"),
        "creator": xmp.dc_creator,
        "description": (xmp.dc_description or {}).get("x-default"),
        "keywords": xmp.pdf_keywords,
        "producer": xmp.pdf_producer,
        "creator_tool": xmp.xmp_creator_tool,
        "modify_date": _iso(xmp.xmp_modify_date),
        "create_date": _iso(xmp.xmp_create_date),
    }
    return {name: value for name, value in fields.items() if value}


def _request_name(key: str) -> str:
    named = {pdf_key: name for name, pdf_key in STANDARD_KEYS.items()}
    return named.get(key, key.removeprefix("/"))


def _text(value: object) -> str:
    getter = getattr(value, "get_object", None)
    resolved = getter() if callable(getter) else value
    return str(resolved)[:MAX_VALUE_CHARACTERS]


def _iso(moment: datetime.datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _pdf_date(moment: datetime.datetime) -> str:
    return moment.strftime("D:%Y%m%d%H%M%SZ")
