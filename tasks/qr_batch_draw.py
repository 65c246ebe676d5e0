"""Drawing a chunk of bulk QR items: the CPU step, one call per chunk in the worker's pool.

Pure (no broker): the bulk QR task sends chunks of items here with ``attempt.run_cpu``, two
or more at once so that every core draws, and writes what comes back into the archive in
order. An item that cannot be drawn comes back with its error; the others are unaffected.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from schemas.qr import ErrorCorrection
from schemas.qr_batch import BatchFormat
from tasks.qr_batch_items import BatchItem
from tasks.qr_batch_logo import LogoArt
from tasks.qr_batch_names import archive_name
from tasks.qr_batch_render import RGBA, render_png, svg_bytes, svg_code
from tasks.qr_encoder import QrCapacityError
from tasks.qr_matrix import zxing_modules


@dataclass(frozen=True)
class DrawOptions:
    """What every item of a batch shares; picklable, sent with each chunk."""

    format: BatchFormat
    scale: int
    border: int
    max_png_pixels: int
    logo_png: bytes | None = None
    sheet_max_modules: int | None = None
    """For a PDF sheet: return the modules of codes up to this many across, draw nothing."""


@dataclass(frozen=True)
class DrawnItem:
    item: BatchItem
    file: str | None
    content: bytes | None
    error: str | None
    modules: tuple[bytes, ...] | None = None
    """For a PDF sheet: the code's modules (its writer draws them)."""


def _rgba(colour: str) -> RGBA:
    digits = colour.removeprefix("#")
    alpha = int(digits[6:8], 16) if len(digits) == 8 else 255
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16), alpha


def _draw(item: BatchItem, options: DrawOptions, logo: LogoArt | None) -> DrawnItem:
    if item.fault:
        return DrawnItem(item, None, None, item.fault)
    try:
        # A logo hides modules: only level H restores enough of them.
        level = item.error_correction if options.logo_png is None else ErrorCorrection.H
        rows = zxing_modules(item.data, level)
    except QrCapacityError as error:
        return DrawnItem(item, None, None, str(error))
    symbol, border, scale = len(rows), options.border, options.scale
    if options.sheet_max_modules is not None:
        if symbol > options.sheet_max_modules:
            too_small = (
                f"the code is {symbol} modules across; this sheet layout prints at most "
                f"{options.sheet_max_modules} (fewer rows or columns, or less data)"
            )
            return DrawnItem(item, None, None, too_small)
        return DrawnItem(item, None, None, None, rows)
    dark, light = _rgba(item.dark), _rgba(item.light)
    if options.format is BatchFormat.png:
        side = (symbol + 2 * border) * scale
        if side * side > options.max_png_pixels:
            too_large = (
                f"a {side}x{side} PNG is over the limit of {options.max_png_pixels:,} pixels; "
                "use a smaller scale or border, or less data"
            )
            return DrawnItem(item, None, None, too_large)
        content = render_png(rows, scale, border, dark, light)
        if logo is not None:
            content = logo.on_png(content, symbol, border, scale, light)
    else:
        svg = svg_code(rows, scale, border, dark, light, item.label)
        if logo is not None:
            logo.on_svg(svg, symbol, border, light)
        content = svg_bytes(svg)
    name = archive_name(item.index, item.name, options.format.value)
    return DrawnItem(item, name, content, None)


def draw_chunk(items: Sequence[BatchItem], options: DrawOptions) -> list[DrawnItem]:
    """Every item of ``items`` drawn, or with the reason it could not be, in order."""
    logo = None if options.logo_png is None else LogoArt(options.logo_png)
    return [_draw(item, options, logo) for item in items]
