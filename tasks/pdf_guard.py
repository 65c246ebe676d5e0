"""Every PDF Offload reads goes through here: limits on what pypdf may decode, and typed
failures a job can report (corrupt, encrypted, wrong password, over a limit).

Pure: no broker, no HTTP. A run_cpu step (tasks/pdf_ops.py, the watermark and QR stamp) does
its pypdf work inside :func:`pdf_limits` and opens inputs with :func:`open_pdf`; the submit
check opens them with :func:`probe_pdf`. The failures are plain exceptions (they cross the
process pool by pickling) with an ``error_type``; the task wrappers turn them into job
failures (tasks/pdf_jobs.py).
"""

from __future__ import annotations

import contextlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from pypdf import PdfReader, PdfWriter, apply_configuration
from pypdf.errors import (
    DependencyError,
    FileNotDecryptedError,
    LimitReachedError,
    PyPdfError,
    WrongPasswordError,
)
from pypdf.generic import DictionaryObject

DEFAULT_MAX_PAGES = 5_000
DEFAULT_MAX_STREAM_BYTES = 50_000_000
"""Most bytes one stream may decode to (pypdf's own default is 75,000,000)."""
DEFAULT_MAX_MERGE_BYTES = 200_000_000
HEADER_WINDOW = 1024
"""PDF readers accept ``%PDF-`` anywhere in the first 1,024 bytes (PDF 32000-1, annex H)."""

# What pypdf raises on a malformed file besides its own errors: a broken xref or object
# stream surfaces as whatever the parser tripped on; a feature pypdf lacks (certificate
# encryption, /Adobe.PubSec; a filter it cannot decode) as NotImplementedError or
# DependencyError, which no retry can help either.
_MALFORMED = (
    PyPdfError,
    NotImplementedError,
    DependencyError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    RecursionError,
    zlib.error,
    struct.error,
)


class PdfInputError(Exception):
    """An input PDF this server will not process; ``error_type`` names the failure."""

    error_type = "invalid_pdf"


class InvalidPdf(PdfInputError):
    error_type = "invalid_pdf"


class EncryptedPdf(PdfInputError):
    error_type = "encrypted_pdf"


class WrongPassword(PdfInputError):
    error_type = "wrong_password"


class InputLimitExceeded(PdfInputError):
    """A stream inflates past the limit (a decompression bomb), or the structure is too big."""

    error_type = "input_limit_exceeded"


class TooManyPages(PdfInputError):
    error_type = "too_many_pages"


@dataclass(frozen=True)
class PdfLimits:
    """What one PDF may cost; picklable, so it travels to the CPU pool with the work."""

    max_pages: int = DEFAULT_MAX_PAGES
    max_stream_bytes: int = DEFAULT_MAX_STREAM_BYTES
    max_merge_bytes: int = DEFAULT_MAX_MERGE_BYTES
    """Most bytes the inputs of one merge may add up to: the writer holds them all."""

    def configuration(self) -> dict[str, int]:
        """pypdf Configuration overrides: every decoder's output capped at max_stream_bytes."""
        cap = self.max_stream_bytes
        return {
            "maximum_declared_stream_length": cap,
            "array_based_stream_maximum_output_length": cap,
            "zlib_maximum_output_length": cap,
            "lzw_maximum_output_length": cap,
            "run_length_maximum_output_length": cap,
            "jbig2_maximum_output_length": cap,
            "brotli_maximum_output_length": cap,
            "image_maximum_buffer_size": cap,
            "stream_decoding_work_maximum_length": 4 * cap,
            "xmp_maximum_input_length": min(cap, 5_000_000),
        }


@dataclass(frozen=True)
class PdfProbe:
    """What opening a PDF told, without decoding any content stream."""

    pages: int | None
    """None when the file is encrypted and no (right) password was given."""
    encrypted: bool


@contextlib.contextmanager
def pdf_limits(limits: PdfLimits, label: str = "the PDF") -> Iterator[None]:
    """Run pypdf work under ``limits``; what pypdf raises becomes a :class:`PdfInputError`
    naming ``label`` (a file's name, never its server path)."""
    try:
        with apply_configuration(None, **limits.configuration()):
            yield
    except PdfInputError:
        raise
    except (LimitReachedError, MemoryError) as error:
        raise InputLimitExceeded(f"{label} is over this server's limits: {error}") from None
    except WrongPasswordError:
        raise WrongPassword(f"the password does not open {label}") from None
    except FileNotDecryptedError:
        raise EncryptedPdf(f"{label} is encrypted; give its password") from None
    except _MALFORMED as error:
        detail = str(error) or type(error).__name__
        raise InvalidPdf(f"{label} is not a readable PDF: {detail}") from None


def check_header(path: Path, label: str = "the PDF") -> None:
    """Refuse an empty file or one without ``%PDF-`` near its start (cheap, no parsing)."""
    with path.open("rb") as file:
        head = file.read(HEADER_WINDOW)
    if not head:
        raise InvalidPdf(f"{label} is empty (0 bytes)")
    if b"%PDF-" not in head:
        raise InvalidPdf(
            f"{label} is not a PDF: no %PDF- header in its first {HEADER_WINDOW} bytes"
        )


def open_pdf(
    path: Path,
    password: str | None = None,
    *,
    limits: PdfLimits = PdfLimits(),
    label: str = "the PDF",
) -> PdfReader:
    """A reader of ``path``, decrypted with ``password`` when encrypted, its page count
    within ``limits.max_pages``. Raises InvalidPdf, EncryptedPdf, WrongPassword,
    TooManyPages or InputLimitExceeded. Later pypdf work on the reader belongs inside
    :func:`pdf_limits` too."""
    with pdf_limits(limits, label):
        reader = _reader(path, password, limits, label)
        pages = len(reader.pages)
    _check_pages(pages, limits, label)
    return reader


def probe_pdf(
    path: Path,
    password: str | None = None,
    *,
    limits: PdfLimits = PdfLimits(),
    label: str = "the PDF",
) -> PdfProbe:
    """For the submit check, in the API process: header, cross-reference table, encryption
    and the page count the page tree declares, reading no content stream and no page (a
    page tree of thousands of pages, or object streams that inflate, cost nothing here; the
    worker counts the pages for real). Raises InvalidPdf, TooManyPages, InputLimitExceeded;
    an encrypted file whose password is missing or wrong is reported, not refused (the job
    fails with ``encrypted_pdf`` or ``wrong_password``)."""
    try:
        with pdf_limits(limits, label):
            reader = _reader(path, password, limits, label)
            declared = _declared_pages(reader)
            pages = len(reader.pages) if declared is None else declared
    except (EncryptedPdf, WrongPassword):
        return PdfProbe(pages=None, encrypted=True)
    _check_pages(pages, limits, label)
    return PdfProbe(pages=pages, encrypted=reader.is_encrypted)


def _reader(path: Path, password: str | None, limits: PdfLimits, label: str) -> PdfReader:
    """Opened and decrypted, its declared page count within the limit; inside pdf_limits."""
    check_header(path, label)
    reader = PdfReader(path)
    if reader.is_encrypted and password is not None and not reader.decrypt(password):
        raise WrongPassword(f"the password does not open {label}")
    # Without a password pypdf has tried the empty one; a file it did not open raises
    # FileNotDecryptedError here, which pdf_limits reports as EncryptedPdf.
    declared = _declared_pages(reader)
    # Refused on its word before the page tree is walked (a file may claim a million).
    if declared is not None and declared > limits.max_pages:
        _too_many(declared, limits, label)
    return reader


def _check_pages(pages: int, limits: PdfLimits, label: str) -> None:
    if pages > limits.max_pages:
        _too_many(pages, limits, label)
    if pages <= 0:
        raise InvalidPdf(f"{label} has no pages")


def _declared_pages(reader: PdfReader) -> int | None:
    """The page tree's own /Count: what the file claims, before its pages are counted."""
    tree = reader.root_object.get("/Pages")
    node = None if tree is None else tree.get_object()
    count = node.get("/Count") if isinstance(node, DictionaryObject) else None
    return count if isinstance(count, int) else None


def _too_many(pages: int, limits: PdfLimits, label: str) -> NoReturn:
    raise TooManyPages(
        f"{label} has {pages:,} pages; this server takes at most {limits.max_pages:,}"
    )


def save_pdf(
    writer: PdfWriter,
    path: Path,
    *,
    limits: PdfLimits = PdfLimits(),
    label: str = "the PDF",
) -> int:
    """Write ``writer`` to ``path`` under ``limits`` (writing decodes what it compresses);
    returns the bytes written."""
    with pdf_limits(limits, label), path.open("wb") as file:
        writer.write(file)
    return path.stat().st_size
