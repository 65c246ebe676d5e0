"""Uploaded files, as the API shows them."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

UPLOAD_PATH = "/v1/files"
"""Where files are uploaded; the HTTP server gives this path's bodies a longer deadline."""


class FileInfo(BaseModel):
    """An uploaded file: give its id to the jobs that use it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "3f0c6a8e9b1d4c2fa7e5d8b6c4a29e10",
                    "name": "invoice.pdf",
                    "content_type": "application/pdf",
                    "size": 48213,
                    "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                    "expires_at": "2026-01-31T12:00:00Z",
                }
            ]
        }
    )

    id: str = Field(description="The file's id: 32 lowercase hexadecimal characters.")
    name: str = Field(description="The name the client gave, as metadata only.")
    content_type: str = Field(
        description="Sniffed from the content (PDF, PNG, JPEG, GIF, WebP, text/csv, "
        "text/plain or application/octet-stream), never taken from the client."
    )
    size: int = Field(ge=0, description="Bytes.")
    sha256: str = Field(description="Hex digest of the content; also the download's ETag.")
    expires_at: datetime = Field(description="When the file is deleted.")
