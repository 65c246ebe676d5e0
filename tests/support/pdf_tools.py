"""Judges of the PDFs we draw that we did not write: qpdf, poppler and zbar, per page and
per region of a page."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image
from pyzbar.pyzbar import ZBarSymbol, decode

from tests.support import pdfs

RESOLUTION = 150


def qpdf_check(path: Path) -> None:
    """``qpdf --check`` with neither errors nor warnings (tests/support/pdfs.py)."""
    assert "No syntax or stream encoding errors" in pdfs.qpdf_check(path)


def pdf_text(path: Path, page: int | None = None) -> str:
    pages = ["-f", str(page), "-l", str(page)] if page else []
    return subprocess.run(
        ["pdftotext", "-enc", "UTF-8", *pages, str(path), "-"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def pdf_info(path: Path) -> dict[str, str]:
    out = subprocess.run(["pdfinfo", str(path)], capture_output=True, text=True, check=True)
    return {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in out.stdout.splitlines())
    }


def rasterise(path: Path, directory: Path, page: int) -> Image.Image:
    prefix = directory / f"page-{page}"
    pages = ["-f", str(page), "-l", str(page), "-singlefile"]
    command = ["pdftoppm", "-r", str(RESOLUTION), "-png", *pages, str(path), str(prefix)]
    subprocess.run(command, check=True)
    with Image.open(f"{prefix}.png") as image:
        return image.convert("L")


def decode_qr(image: Image.Image) -> list[str]:
    return [found.data.decode("utf-8") for found in decode(image, symbols=[ZBarSymbol.QRCODE])]


def crop_points(image: Image.Image, box: tuple[float, float, float, float]) -> Image.Image:
    """The part of a rasterised page within ``box`` = (left, bottom, right, top) in points."""
    scale = RESOLUTION / 72
    height = image.height / scale
    left, bottom, right, top = box
    return image.crop(
        (
            round(left * scale),
            round((height - top) * scale),
            round(right * scale),
            round((height - bottom) * scale),
        )
    )
