"""What a file is, from its bytes: the client's word for it is never trusted."""

from __future__ import annotations

import codecs

OCTET_STREAM = "application/octet-stream"
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_HEAD_BYTES = 16
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/comma-separated-values"})


def sniff_head(head: bytes) -> str | None:
    """The binary type that ``head`` (the first bytes) starts, if any."""
    for magic, content_type in _MAGIC:
        if head.startswith(magic):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


class ContentSniffer:
    """Fed the content in order, it names the type: a known magic number, else text (valid
    UTF-8 with no NUL), else application/octet-stream."""

    def __init__(self) -> None:
        self._head = b""
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._text = True
        self._size = 0

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        if len(self._head) < _HEAD_BYTES:
            self._head += data[: _HEAD_BYTES - len(self._head)]
        if self._text:
            if b"\0" in data:
                self._text = False
                return
            try:
                self._decoder.decode(data)
            except UnicodeDecodeError:
                self._text = False

    def content_type(self, declared: str | None = None, name: str = "") -> str:
        """The sniffed type. Text is ``text/csv`` when the client called it CSV (by type or
        by a ``.csv`` name: the bytes cannot tell), else ``text/plain``."""
        binary = sniff_head(self._head)
        if binary is not None:
            return binary
        if self._size == 0 or not self._text or not self._text_complete():
            return OCTET_STREAM
        declared_type = (declared or "").split(";")[0].strip().lower()
        if declared_type in CSV_TYPES or name.lower().endswith(".csv"):
            return "text/csv"
        return "text/plain"

    def _text_complete(self) -> bool:
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            self._text = False
        return self._text
