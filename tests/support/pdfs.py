"""PDFs built by the tests themselves, and independent tools (qpdf, poppler) to judge them."""

from __future__ import annotations

import io
import shutil
import subprocess
import zlib
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import (
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    StreamObject,
)

PAGE_WIDTH, PAGE_HEIGHT = 612, 792


def text_pdf(texts: list[str], *, compress: bool = True) -> bytes:
    """One Letter page per text, each drawn in Helvetica (so pdftotext finds it)."""
    writer = PdfWriter()
    font = _helvetica(writer)
    for text in texts:
        page = writer.add_blank_page(PAGE_WIDTH, PAGE_HEIGHT)
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        content = DecodedStreamObject()
        content.set_data(f"BT /F1 18 Tf 72 700 Td ({escaped}) Tj ET".encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(
            content.flate_encode() if compress else content
        )
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def numbered_pdf(pages: int) -> bytes:
    """Pages that say which they are: "page 1", "page 2", ..."""
    return text_pdf([f"page {number}" for number in range(1, pages + 1)])


def encrypted_pdf(texts: list[str], user_password: str, owner_password: str | None = None) -> bytes:
    writer = PdfWriter(clone_from=io.BytesIO(text_pdf(texts)))
    writer.encrypt(user_password, owner_password, algorithm="AES-256")
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def bomb_pdf(inflated_bytes: int = 100_000_000, pages: int = 1) -> bytes:
    """A PDF of about 100 KB a page whose every page's content stream inflates to
    ``inflated_bytes`` (SECURITY.md 3.1): written already compressed, never decoded here."""
    squeezer = zlib.compressobj(9)
    chunk = b" " * 1_000_000
    compressed = b"".join(squeezer.compress(chunk) for _ in range(inflated_bytes // len(chunk)))
    compressed += squeezer.flush()
    writer = PdfWriter()
    font = _helvetica(writer)
    for _ in range(pages):
        page = writer.add_blank_page(PAGE_WIDTH, PAGE_HEIGHT)
        # A font, so text extraction reads the stream (pypdf skips a page with none).
        page[NameObject("/Resources")] = DictionaryObject(
            {NameObject("/Font"): DictionaryObject({NameObject("/F1"): font})}
        )
        stream = StreamObject()
        stream._data = compressed
        stream[NameObject("/Filter")] = NameObject("/FlateDecode")
        stream[NameObject("/Length")] = NumberObject(len(compressed))
        page[NameObject("/Contents")] = writer._add_object(stream)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue()


def corrupt_pdf() -> bytes:
    """Starts like a PDF, then nothing a reader can use: no objects, no xref, no trailer."""
    return b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog /Pages 2 0 R >>\ngarbage\n"


def broken_stream_pdf() -> bytes:
    """Two pages whose header, cross-reference table and page tree are sound (the submit
    probe passes) but whose last content stream never ends: reading it fails."""
    good = numbered_pdf(2)
    stream = good.rindex(b"/Filter /FlateDecode")
    start = good.rindex(b" 0 obj", 0, stream)
    start = good.rindex(b"\n", 0, start) + 1
    end = good.index(b"endobj", stream) + len(b"endobj")
    header = good[start : good.index(b"obj", start) + 3] + b"\n<< /Length 999999 >>\nstream\n"
    return good[:start] + header + b"@" * (end - start - len(header)) + good[end:]


def certificate_encrypted_pdf() -> bytes:
    """A PDF encrypted for certificates (/Adobe.PubSec), a handler pypdf does not implement:
    no password can open it here."""
    plain = numbered_pdf(1)
    entry = b"trailer\n<<\n/Encrypt << /Filter /Adobe.PubSec /V 5 >>\n/ID [<00> <00>]"
    assert b"trailer\n<<" in plain
    return plain.replace(b"trailer\n<<", entry, 1)


def qpdf_check(path: Path, password: str | None = None) -> str:
    """``qpdf --check``'s output; raises if qpdf finds errors (exit 2) or warnings (3)."""
    command = [_tool("qpdf")]
    if password is not None:
        command.append(f"--password={password}")
    result = subprocess.run(
        [*command, "--check", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, f"qpdf --check failed: {result.stdout}{result.stderr}"
    return result.stdout


def page_count(path: Path, password: str | None = None) -> int:
    command = [_tool("pdfinfo")]
    if password is not None:
        command += ["-upw", password]
    output = subprocess.run(
        [*command, str(path)], capture_output=True, text=True, check=True
    ).stdout
    for line in output.splitlines():
        if line.startswith("Pages:"):
            return int(line.split()[1])
    raise AssertionError(f"pdfinfo gave no page count: {output}")


def page_texts(path: Path, password: str | None = None) -> list[str]:
    """Each page's text as pdftotext reads it, stripped."""
    command = [_tool("pdftotext"), "-layout"]
    if password is not None:
        command += ["-upw", password]
    output = subprocess.run(
        [*command, str(path), "-"], capture_output=True, text=True, check=True
    ).stdout
    return [page.strip() for page in output.split("\f")][:-1]


def pdfinfo(path: Path, *options: str) -> str:
    """``pdfinfo``'s report (``-f 1 -l N`` adds each page's size and rotation)."""
    return subprocess.run(
        [_tool("pdfinfo"), *options, str(path)], capture_output=True, text=True, check=True
    ).stdout


def rotations(path: Path) -> list[int]:
    """Each page's rotation as pdfinfo reports it."""
    report = pdfinfo(path, "-f", "1", "-l", str(page_count(path)))
    return [int(line.split()[-1]) for line in report.splitlines() if " rot:" in line]


def qpdf_encryption(path: Path, password: str) -> str:
    return subprocess.run(
        [_tool("qpdf"), f"--password={password}", "--show-encryption", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def qpdf_refuses(path: Path) -> str:
    """What ``qpdf --check`` says of an encrypted file opened without its password."""
    result = subprocess.run(
        [_tool("qpdf"), "--check", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2, f"qpdf opened it: {result.stdout}"
    return result.stderr


def qpdf_decrypt(path: Path, password: str, out: Path) -> Path:
    subprocess.run(
        [_tool("qpdf"), f"--password={password}", "--decrypt", str(path), str(out)], check=True
    )
    return out


def _helvetica(writer: PdfWriter) -> IndirectObject:
    return writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )


def _tool(name: str) -> str:
    found = shutil.which(name)
    assert found is not None, f"{name} is not installed (./dev test installs it)"
    return found
