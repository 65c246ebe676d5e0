"""Which QR encoder bulk QR should use: items/s of each candidate on the same payloads.

    .venv/bin/python -m bench.qr_encoders            # ~30 s
    .venv/bin/python -m bench.qr_encoders --items 500

One process, one core, one run; every candidate encodes the same payloads (URLs, order ids,
non-ASCII text) at level M, scale 10, border 4. Candidates:

* qrcode-png: the plain ``qrcode`` loop (``QRCode.add_data``, ``make_image``, PNG save), the
  baseline the issue's goal (>= 5x) is measured against;
* segno-png / segno-svg: ``segno.make(...).save(kind=...)``;
* zxing-png / zxing-svg: zxing-cpp's own writers (``to_image`` + Pillow, ``to_svg``);
* qrcode-matrix+png: our qrcode-based matrix (ECI 26 for non-ASCII) and our PNG writer;
* zxing-matrix+png / +svg: a zxing-cpp matrix (ECI 26 for non-ASCII) and our writers: what
  ``tasks.qr_matrix`` and the batch writers use now.

Every candidate's first output is decoded with zbar to show that it is a real code.
Last, the single-code path (``tasks.qr_render.render_qr``, PNG/SVG/PDF) on the zxing-cpp
matrix against the same renderer on qrcode's matrix.
"""

from __future__ import annotations

import argparse
import io
import time
from collections.abc import Callable

import qrcode
import segno
import zxingcpp
from PIL import Image
from pyzbar import pyzbar

from bench.common import load, say
from schemas.qr import ErrorCorrection
from tasks.qr_batch_render import render_png, render_svg
from tasks.qr_encoder import fit_qr

SCALE, BORDER = 10, 4


def payloads(count: int) -> list[str]:
    kinds = [
        "https://example.com/orders/{i}?ref=qr",
        "ORDER-{i:08d}",
        "Grüße aus Köln #{i}, 你好",
        "{i:020d}",
    ]
    return [kinds[i % len(kinds)].format(i=i) for i in range(count)]


def qrcode_png(data: str) -> bytes:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=SCALE)
    qr.border = BORDER
    qr.add_data(data)
    buffer = io.BytesIO()
    qr.make_image().save(buffer)
    return buffer.getvalue()


def segno_png(data: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m", micro=False).save(buffer, kind="png", scale=SCALE, border=BORDER)
    return buffer.getvalue()


def segno_svg(data: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(data, error="m", micro=False).save(buffer, kind="svg", scale=SCALE, border=BORDER)
    return buffer.getvalue()


def _zxing(data: str) -> zxingcpp.Barcode:
    extra = {} if data.isascii() else {"eci": 26}
    return zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.QRCode, ec_level="M", **extra)


def zxing_png(data: str) -> bytes:
    image = _zxing(data).to_image(scale=SCALE)
    height, width = image.shape
    pil = Image.frombuffer("L", (width, height), bytes(memoryview(image)), "raw", "L", 0, 1)
    buffer = io.BytesIO()
    pil.save(buffer, format="PNG")
    return buffer.getvalue()


def zxing_svg(data: str) -> bytes:
    return _zxing(data).to_svg(scale=SCALE).encode()


def qrcode_matrix_png(data: str) -> bytes:
    qr = fit_qr(data, ErrorCorrection.M)
    qr.make(fit=False)
    rows = tuple(bytes(row) for row in qr.get_matrix())
    return render_png(rows, SCALE, BORDER, (0, 0, 0, 255), (255, 255, 255, 255))


def zxing_matrix_png(data: str) -> bytes:
    from tasks.qr_matrix import qr_modules

    qr_modules.cache_clear()
    return render_png(
        qr_modules(data, ErrorCorrection.M), SCALE, BORDER, (0, 0, 0, 255), (255, 255, 255, 255)
    )


def zxing_matrix_svg(data: str) -> bytes:
    from tasks.qr_matrix import qr_modules

    qr_modules.cache_clear()
    return render_svg(
        qr_modules(data, ErrorCorrection.M), SCALE, BORDER, (0, 0, 0, 255), (255, 255, 255, 255)
    )


CANDIDATES: dict[str, Callable[[str], bytes]] = {
    "qrcode-png": qrcode_png,
    "segno-png": segno_png,
    "segno-svg": segno_svg,
    "zxing-png": zxing_png,
    "zxing-svg": zxing_svg,
    "qrcode-matrix+png": qrcode_matrix_png,
    "zxing-matrix+png": zxing_matrix_png,
    "zxing-matrix+svg": zxing_matrix_svg,
}


def decodes(output: bytes, data: str) -> bool:
    if output.startswith(b"\x89PNG"):
        image = Image.open(io.BytesIO(output))
    else:  # SVG: only check it is one; the batch tests decode rasterised SVGs
        return b"<svg" in output
    return [found.data.decode() for found in pyzbar.decode(image.convert("L"))] == [data]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1000)
    args = parser.parse_args()
    items = payloads(args.items)
    say(f"{args.items} payloads, level M, scale {SCALE}, border {BORDER}; {load()}")
    rates: dict[str, float] = {}
    for name, encode in CANDIDATES.items():
        sample = next(data for data in items if not data.isascii())
        ok = decodes(encode(sample), sample)
        started = time.perf_counter()
        size = 0
        for data in items:
            size += len(encode(data))
        elapsed = time.perf_counter() - started
        rates[name] = args.items / elapsed
        say(
            f"{name:20s} {rates[name]:8.0f} items/s  {size / args.items / 1024:6.1f} KiB/item  "
            f"non-ASCII sample decodes: {ok}"
        )
    baseline = rates["qrcode-png"]
    say("ratio to the plain qrcode PNG loop (one core):")
    for name, rate in rates.items():
        say(f"  {name:20s} {rate / baseline:5.2f}x")
    single_code(items[: max(1, args.items // 3)])


def _qrcode_modules(data: str, level: ErrorCorrection) -> tuple[bytes, ...]:
    qr = fit_qr(data, level)
    qr.make(fit=False)
    return tuple(bytes(row) for row in qr.get_matrix())


def single_code(items: list[str]) -> None:
    from schemas.qr import QrOptions
    from tasks import qr_matrix, qr_render

    for fmt in ("png", "svg", "pdf"):
        options = [QrOptions(data=data, format=fmt) for data in items]
        rates = []
        for modules in (qr_matrix.zxing_modules, _qrcode_modules):
            qr_render.qr_modules = modules  # type: ignore[assignment]
            started = time.perf_counter()
            for one in options:
                qr_render.render_qr(one)
            rates.append(len(options) / (time.perf_counter() - started))
        qr_render.qr_modules = qr_matrix.qr_modules
        say(
            f"single-code render_qr {fmt}: zxing-cpp matrix {rates[0]:.0f}/s, "
            f"qrcode matrix {rates[1]:.0f}/s ({rates[0] / rates[1]:.1f}x)"
        )


if __name__ == "__main__":
    main()
