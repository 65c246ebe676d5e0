"""Bulk QR from an uploaded CSV and with an uploaded logo, through the API, both backends."""

from __future__ import annotations

import csv
import io
import struct
import zlib
from pathlib import Path

import httpx
from PIL import Image, ImageDraw

from tasks.qr_batch_names import ARCHIVE_NAME
from tests.service.test_qr_batch_api import PATH, manifest, run_batch
from tests.support.files import upload
from tests.support.jobs import wait_for_job
from tests.support.qr_decode import decode

# No NUL: an upload holding one is not text (415); names with NUL are tested on their own.
HOSTILE = ["../../x", "/etc/passwd", "..\\x", "CON", "n" * 300, "a\x7fb", "\u202egnp.exe"]


def csv_bytes(rows: list[list[str]], header: tuple[str, ...] = ("data", "name", "label")) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def logo_png(size: tuple[int, int] = (240, 240)) -> bytes:
    image = Image.new("RGBA", size, (220, 40, 40, 255))
    ImageDraw.Draw(image).rectangle((40, 40, size[0] - 40, size[1] - 40), fill=(30, 30, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def claimed_png(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


async def test_a_csv_batch_names_files_safely_and_lists_bad_rows(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    rows = [[f"https://example.com/c/{i}", name, f"=cmd|{i}"] for i, name in enumerate(HOSTILE)]
    rows.insert(2, ["", "empty", ""])
    rows.insert(4, ["9" * 7200, "too long", ""])
    info = await upload(client, csv_bytes(rows), name="items.csv", content_type="text/csv")
    for fmt in ("png", "svg"):
        job, archive = await run_batch(client, {"csv_file_id": info["id"], "format": fmt})
        assert job["result"]["data"]["items"] == len(rows)
        assert job["result"]["data"]["failed"] == 2
        listed = manifest(archive)
        assert [row["status"] for row in listed].count("failed") == 2
        assert listed[2]["error"] == "data is empty"
        assert listed[4]["data"].startswith("9") and "no QR code holds" in listed[4]["error"]
        entries = [name for name in archive.namelist() if name != "manifest.csv"]
        assert len(entries) == len(HOSTILE)
        for row in listed:
            if row["status"] == "ok":
                assert ARCHIVE_NAME.fullmatch(row["file"]), row["file"]
                assert row["label"].startswith("'=cmd|")  # escaped for spreadsheets
                assert decode(row["file"], archive.read(row["file"]), tmp_path) == [row["data"]]


async def test_a_csv_without_a_data_column_is_refused_at_submit(
    client: httpx.AsyncClient,
) -> None:
    info = await upload(client, b"url,name\nx,y\n", name="items.csv", content_type="text/csv")
    response = await client.post(PATH, json={"csv_file_id": info["id"]})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "csv_file_id" and "data" in error["message"]
    unknown = await client.post(PATH, json={"csv_file_id": "f_0000000000000000000000000000"})
    assert unknown.status_code == 422
    assert [e["field"] for e in unknown.json()["errors"]] == ["csv_file_id"]


async def test_a_csv_broken_mid_way_fails_the_job_naming_the_line(
    client: httpx.AsyncClient,
) -> None:
    content = b'data,name\nok,1\nok,2\n"never closed,3\n'
    info = await upload(client, content, name="items.csv", content_type="text/csv")
    response = await client.post(PATH, json={"csv_file_id": info["id"]})
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"])
    assert job["status"] == "failed"
    assert job["error"]["type"] == "invalid_csv" and "line" in job["error"]["message"]
    good = await upload(client, csv_bytes([["after", "a", ""]]), "ok.csv", "text/csv")
    after, _ = await run_batch(client, {"csv_file_id": good["id"]})
    assert after["result"]["data"]["ok"] == 1


async def test_codes_with_an_uploaded_logo_decode(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    logo = await upload(client, logo_png(), name="logo.png", content_type="image/png")
    items = [{"data": f"https://example.com/logo/{i}", "error_correction": "L"} for i in range(5)]
    for fmt in ("png", "svg"):
        body = {"items": items, "logo_file_id": logo["id"], "format": fmt, "scale": 6}
        job, archive = await run_batch(client, body)
        assert job["result"]["data"]["ok"] == 5
        for row in manifest(archive):
            assert decode(row["file"], archive.read(row["file"]), tmp_path) == [row["data"]]


async def test_a_bad_logo_is_refused_at_submit_or_fails_the_job(
    client: httpx.AsyncClient,
) -> None:
    gif = io.BytesIO()
    Image.new("P", (30, 30)).save(gif, format="GIF")
    wrong = await upload(client, gif.getvalue(), name="logo.gif", content_type="image/gif")
    response = await client.post(PATH, json={"items": [{"data": "a"}], "logo_file_id": wrong["id"]})
    assert response.status_code == 415
    bomb = await upload(client, claimed_png(20000, 20000), "bomb.png", "image/png")
    response = await client.post(PATH, json={"items": [{"data": "a"}], "logo_file_id": bomb["id"]})
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "logo_file_id" and "too large" in error["message"]
    # A sound header over no pixels passes the submit's look and fails in the worker.
    empty = await upload(client, claimed_png(64, 64), "empty.png", "image/png")
    response = await client.post(PATH, json={"items": [{"data": "a"}], "logo_file_id": empty["id"]})
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"])
    assert job["status"] == "failed" and job["error"]["type"] == "invalid_image"
    after, _ = await run_batch(client, {"items": [{"data": "after the bad logo"}]})
    assert after["result"]["data"]["ok"] == 1
