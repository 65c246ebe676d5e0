"""A logo in the centre of bulk QR codes: read once with image-bomb limits, drawn small.

Reading follows SECURITY.md 3.2: the size is checked from the header before any pixel is
decoded, a DecompressionBombWarning is an error, and only PNG and JPEG are opened. The logo
is then reduced to at most LOGO_SIDE pixels and kept as PNG bytes, which cross to the CPU
pool with each chunk of items.

On a code it covers LOGO_FRACTION of the symbol's side (about 5% of its modules) on a light
pad; error correction H, which the batch is forced to, restores 30%.
"""

from __future__ import annotations

import base64
import io
import math
import warnings
from pathlib import Path
from xml.etree import ElementTree

from PIL import Image, UnidentifiedImageError

from tasks.qr_batch_render import RGBA

MAX_LOGO_PIXELS = 16_000_000
"""4000x4000: more than any logo needs, a 64 MB RGBA decode at most."""
LOGO_SIDE = 512
LOGO_FRACTION = 0.22
LOGO_FORMATS = frozenset({"PNG", "JPEG"})


class LogoError(ValueError):
    """The logo cannot be used; message only, as it crosses the CPU pool's boundary."""


def check_logo_header(path: Path, max_pixels: int = MAX_LOGO_PIXELS) -> None:
    """Raise LogoError unless the header of the image at ``path`` is a PNG or JPEG of at
    most ``max_pixels`` pixels; decodes nothing (the submit's cheap look)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                _check_header(image, max_pixels)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise LogoError(f"the logo is too large: {error}") from None
        except (UnidentifiedImageError, OSError, SyntaxError) as error:
            raise LogoError(f"the logo cannot be read as an image: {error}") from None


def _check_header(image: Image.Image, max_pixels: int) -> None:
    if image.format not in LOGO_FORMATS:
        raise LogoError(f"the logo is {image.format}; it must be PNG or JPEG")
    width, height = image.size
    if width * height > max_pixels:
        raise LogoError(f"the logo is {width}x{height} pixels; at most {max_pixels:,} pixels")


def prepare_logo(path: Path, max_pixels: int = MAX_LOGO_PIXELS) -> bytes:
    """The logo at ``path`` as RGBA PNG bytes, at most LOGO_SIDE pixels a side.

    Raises LogoError for a file that is not a PNG or JPEG, is corrupt, or claims more than
    ``max_pixels`` pixels."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as image:
                _check_header(image, max_pixels)
                image.load()
                logo = image.convert("RGBA")
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
            raise LogoError(f"the logo is too large: {error}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as error:
            if isinstance(error, LogoError):
                raise
            raise LogoError(f"the logo cannot be read as an image: {error}") from None
    logo.thumbnail((LOGO_SIDE, LOGO_SIDE), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    logo.save(buffer, format="PNG")
    return buffer.getvalue()


def logo_box(symbol: int, border: int, scale: int) -> tuple[int, int]:
    """Left/top offset and side, in pixels (or user units), of the logo's light pad on a
    code of ``symbol`` modules: whole modules, centred."""
    side = max(3, math.ceil(symbol * LOGO_FRACTION))
    if (symbol - side) % 2:
        side += 1
    start = border + (symbol - side) // 2
    return start * scale, side * scale


class LogoArt:
    """A prepared logo, decoded once per CPU step; resized copies cached by size."""

    def __init__(self, png: bytes) -> None:
        self._logo = Image.open(io.BytesIO(png)).convert("RGBA")
        self._png = png
        self._sized: dict[int, Image.Image] = {}

    def _fitted(self, side: int) -> Image.Image:
        if side not in self._sized:
            copy = self._logo.copy()
            copy.thumbnail((side, side), Image.Resampling.LANCZOS)
            self._sized[side] = copy
        return self._sized[side]

    def on_png(self, png: bytes, symbol: int, border: int, scale: int, light: RGBA) -> bytes:
        """The code ``png`` (from render_png) with the logo on a light pad in its centre."""
        code = Image.open(io.BytesIO(png)).convert("RGBA")
        start, side = logo_box(symbol, border, scale)
        code.paste(light, (start, start, start + side, start + side))
        pad = max(1, side // 12)
        logo = self._fitted(side - 2 * pad)
        left = start + (side - logo.width) // 2
        top = start + (side - logo.height) // 2
        code.alpha_composite(logo, (left, top))
        buffer = io.BytesIO()
        code.save(buffer, format="PNG")
        return buffer.getvalue()

    def on_svg(self, svg: ElementTree.Element, symbol: int, border: int, light: RGBA) -> None:
        """Add the logo (an embedded PNG) on a light pad to ``svg``, in module units."""
        start, side = logo_box(symbol, border, 1)
        pad = ElementTree.SubElement(
            svg, "rect", {"x": str(start), "y": str(start), "width": str(side), "height": str(side)}
        )
        pad.set("fill", "#{:02X}{:02X}{:02X}".format(*light[:3]))
        inset = side / 12
        ElementTree.SubElement(
            svg,
            "image",
            {
                "x": f"{start + inset:g}",
                "y": f"{start + inset:g}",
                "width": f"{side - 2 * inset:g}",
                "height": f"{side - 2 * inset:g}",
                "preserveAspectRatio": "xMidYMid meet",
                "href": "data:image/png;base64," + base64.b64encode(self._png).decode("ascii"),
            },
        )
