"""API contract for the PDF operations: one request model per operation.

Inputs are uploaded files (``POST /v1/files``) named by id. Page ranges are checked for
syntax here and against each file's page count at submit (tasks/pdf_submit.py).
Passwords are write-only: masked in reprs and logs, never part of a job as the API shows it.
"""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    SecretStr,
    field_validator,
)

from schemas.pdf_ranges import PageRange, parse_ranges

MAX_MERGE_FILES = 100
MAX_SPLIT_FILES = 100
"""Most result files a split with ``output: "pdfs"`` makes; a ZIP holds any number."""
MAX_PASSWORD_CHARACTERS = 128
SEALED_PREFIX = "sealed:v1:"
"""What tasks/job_secrets.py puts before a sealed password."""
MAX_METADATA_ENTRIES = 50
MAX_METADATA_CHARACTERS = 10_000
CUSTOM_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
RESERVED_KEYS = frozenset({"CreationDate", "ModDate", "Trapped"})
"""Info entries that are not free text: the server writes ModDate itself."""


def _valid_ranges(text: str | None) -> str | None:
    if text is not None:
        parse_ranges(text)
    return text


def _short_or_sealed(secret: SecretStr) -> SecretStr:
    value = secret.get_secret_value()
    # Sealed at submit (tasks/job_secrets.py), a password is longer when the task reads it.
    limit = 4 * MAX_PASSWORD_CHARACTERS if value.startswith(SEALED_PREFIX) else None
    if len(value) > (limit or MAX_PASSWORD_CHARACTERS):
        raise ValueError(f"at most {MAX_PASSWORD_CHARACTERS} characters")
    return secret


FileId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="Id of an uploaded PDF (POST /v1/files), as its response gave it.",
    ),
]
Password = Annotated[
    SecretStr,
    Field(min_length=1, json_schema_extra={"maxLength": MAX_PASSWORD_CHARACTERS}),
    AfterValidator(_short_or_sealed),
    # The task needs the password itself: in the job's stored request, not in reprs or logs.
    PlainSerializer(lambda secret: secret.get_secret_value(), return_type=str, when_used="json"),
]
PageRanges = Annotated[
    str,
    Field(
        max_length=10_000,
        description="Pages and ranges, 1-based: `1-3,5,7-` is pages 1 to 3, 5, and 7 to the "
        "end. Checked against the file's page count at submit (422 naming this field).",
    ),
    AfterValidator(_valid_ranges),
]


class PdfInput(BaseModel):
    """One uploaded PDF, and its password if it is encrypted."""

    SECRETS: ClassVar[tuple[str, ...]] = ("password",)
    """Fields sealed at submit (tasks/job_secrets.py)."""

    file_id: FileId
    password: Password | None = Field(
        default=None,
        description="Opens an encrypted input (its user or owner password). Never shown back.",
    )

    def page_ranges(self) -> tuple[PageRange, ...] | None:
        """The ranges the request names, parsed; None: every page."""
        text = getattr(self, "pages", None) or getattr(self, "ranges", None)
        return None if text is None else parse_ranges(text)


class PdfMergeRequest(BaseModel):
    """PDFs to join, in order, into one."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "file_ids": [
                        "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                        "9c8b7a6f5e4d4c3b2a1f0e9d8c7b6a5f",
                    ]
                }
            ]
        },
    )

    file_ids: list[FileId] = Field(
        min_length=2,
        max_length=MAX_MERGE_FILES,
        description="Uploaded PDFs, in the order their pages appear in the result. The same "
        "id may appear more than once. Encrypted inputs: decrypt them first.",
    )


class PdfSplitRequest(PdfInput):
    """One PDF cut into parts, one per range."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "ranges": "1-3,5,7-"},
                {"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "output": "pdfs"},
            ]
        },
    )

    ranges: PageRanges | None = Field(
        default=None, description="One part per comma-separated range; unset: one per page."
    )
    output: Literal["zip", "pdfs"] = Field(
        default="zip",
        description=f"zip: one ZIP of the parts; pdfs: each part its own result file (at most "
        f"{MAX_SPLIT_FILES}).",
    )


class PdfRotateRequest(PdfInput):
    """Pages to turn clockwise."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "angle": 90, "pages": "2-3"},
                {"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "angle": 180},
            ]
        },
    )

    angle: Literal[90, 180, 270] = Field(description="Degrees clockwise.")
    pages: PageRanges | None = Field(default=None, description="Pages to turn; unset: all.")


class PdfExtractTextRequest(PdfInput):
    """Text of each page, as JSON."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "pages": "1-10"}]
        },
    )

    pages: PageRanges | None = Field(default=None, description="Pages to read; unset: all.")


class PdfReadMetadataRequest(PdfInput):
    """A PDF's document information, XMP fields, page count and encryption."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b"}]},
    )


class PdfWriteMetadataRequest(PdfInput):
    """Document information to set or remove; the XMP packet is rewritten to match."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                    "metadata": {
                        "title": "Quarterly report",
                        "author": "Finance",
                        "keywords": None,
                        "Department": "Sales",
                    },
                }
            ]
        },
    )

    metadata: dict[str, str | None] = Field(
        min_length=1,
        description="title, author, subject, keywords, creator, producer, or a custom key "
        "(letters, digits, _; up to 64); a value sets the entry, null removes it.",
    )

    @field_validator("metadata")
    @classmethod
    def _known_shape(cls, metadata: dict[str, str | None]) -> dict[str, str | None]:
        if len(metadata) > MAX_METADATA_ENTRIES:
            raise ValueError(f"at most {MAX_METADATA_ENTRIES} entries")
        for key, value in metadata.items():
            if not CUSTOM_KEY.fullmatch(key) or key in RESERVED_KEYS:
                raise ValueError(
                    f"{key[:70]!r} is not a key this server writes: letters, digits and _, "
                    f"starting with a letter, not {', '.join(sorted(RESERVED_KEYS))}"
                )
            if value is not None and len(value) > MAX_METADATA_CHARACTERS:
                raise ValueError(f"{key}: at most {MAX_METADATA_CHARACTERS:,} characters")
        return metadata


class PdfEncryptRequest(PdfInput):
    """A PDF to lock with AES-256."""

    SECRETS: ClassVar[tuple[str, ...]] = ("password", "user_password", "owner_password")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b",
                    "user_password": "open sesame",
                    "owner_password": "change the rules",
                }
            ]
        },
    )

    user_password: Password = Field(description="Opens the result. Never shown back.")
    owner_password: Password | None = Field(
        default=None,
        description="Also opens it, with every permission; unset: the user password.",
    )


class PdfDecryptRequest(PdfInput):
    """An encrypted PDF to write without encryption."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"file_id": "3f1c9e0a4b2d4f6e8a7b5c3d1e0f9a8b", "password": "pw"}]
        },
    )

    password: Password = Field(description="Its user or owner password. Never shown back.")
