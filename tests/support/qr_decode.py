"""Decoding QR outputs with zbar (pyzbar), SVG through librsvg's rsvg-convert first."""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image


def decode_image(image: Image.Image) -> list[str]:
    from pyzbar import pyzbar

    if image.mode in ("RGBA", "LA", "P", "PA", "1"):
        image = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", image.size, "white"), image)
    symbols = pyzbar.decode(image.convert("L"), symbols=[pyzbar.ZBarSymbol.QRCODE])
    return [symbol.data.decode("utf-8") for symbol in symbols]


def decode_png(content: bytes) -> list[str]:
    with Image.open(io.BytesIO(content)) as image:
        image.load()
        return decode_image(image)


def decode_svg(content: bytes, tmp_path: Path) -> list[str]:
    rsvg = shutil.which("rsvg-convert")
    if rsvg is None:
        pytest.fail("rsvg-convert is missing: apt-get install -y librsvg2-bin")
    result = subprocess.run(
        [rsvg, "--format", "png"], input=content, capture_output=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return decode_png(result.stdout)


def decode(name: str, content: bytes, tmp_path: Path) -> list[str]:
    return decode_svg(content, tmp_path) if name.endswith(".svg") else decode_png(content)
