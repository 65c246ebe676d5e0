"""POST /v1/jobs/qr-batch through the API and a real worker, on both backends."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tasks.qr_batch_names import ARCHIVE_NAME
from tests.support.jobs import wait_for_job
from tests.support.qr_decode import decode, decode_image

PATH = "/v1/jobs/qr-batch"


async def run_batch(client: httpx.AsyncClient, body: dict[str, Any], timeout: float = 60) -> Any:
    response = await client.post(PATH, json=body)
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"], timeout=timeout)
    assert job["status"] == "succeeded", job
    download = await client.get(f"/v1/jobs/{job['id']}/result")
    assert download.status_code == 200
    assert download.headers["content-type"] == "application/zip"
    return job, zipfile.ZipFile(io.BytesIO(download.content))


def manifest(archive: zipfile.ZipFile) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(archive.read("manifest.csv").decode("utf-8"))))


async def test_every_code_of_a_small_batch_decodes_to_its_item(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    items = [
        {"data": "https://example.com/t/1", "name": "../../etc/passwd", "label": "A"},
        {"data": "ünïcode ✓ 日本", "name": '=HYPERLINK("x")'},
        {"data": "x" * 2000, "error_correction": "H"},  # over level H: fails alone
        {"data": "ORDER-0004", "dark": "#1A237E"},
    ]
    for fmt in ("png", "svg"):
        job, archive = await run_batch(client, {"items": items, "format": fmt, "scale": 4})
        assert job["result"]["data"] == {
            "items": 4,
            "ok": 3,
            "failed": 1,
            "output": "zip",
            "format": fmt,
        }
        assert job["progress"]["done"] == 4 and job["progress"]["total"] == 4
        rows = manifest(archive)
        assert [row["status"] for row in rows] == ["ok", "ok", "failed", "ok"]
        assert rows[1]["name"] == '\'=HYPERLINK("x")'
        assert "holds at most" in rows[2]["error"]
        entries = [name for name in archive.namelist() if name != "manifest.csv"]
        assert entries == [row["file"] for row in rows if row["file"]]
        for row in rows:
            if row["file"]:
                assert ARCHIVE_NAME.fullmatch(row["file"])
                content = archive.read(row["file"])
                assert decode(row["file"], content, tmp_path) == [items[int(row["item"])]["data"]]


async def test_a_large_batch_decodes_on_a_sample_and_uses_the_bulk_lane(
    client: httpx.AsyncClient,
) -> None:
    items = [{"data": f"https://example.com/o/{i}", "name": f"order {i}"} for i in range(2000)]
    job, archive = await run_batch(client, {"items": items, "scale": 2})
    assert job["lane"] == "bulk"
    assert job["result"]["data"]["ok"] == 2000
    rows = manifest(archive)
    assert [int(row["item"]) for row in rows] == list(range(2000))
    for row in random.Random(8).sample(rows, 40):
        assert row["file"] == f"{int(row['item']):06d}-order-{row['item']}.png"
        assert decode(row["file"], archive.read(row["file"]), Path()) == [row["data"]]


async def test_both_or_neither_source_is_refused_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    neither = await client.post(PATH, json={"format": "png"})
    assert neither.status_code == 422
    assert [e["field"] for e in neither.json()["errors"]] == ["items"]
    both = await client.post(PATH, json={"items": [{"data": "a"}], "csv_file_id": "f_1"})
    assert both.status_code == 422
    assert "csv_file_id" in [e["field"] for e in both.json()["errors"]]


async def test_structural_faults_are_refused_at_submit(client: httpx.AsyncClient) -> None:
    cases = {
        "items": {"items": []},
        "items.1.data": {"items": [{"data": "a"}, {"data": "9" * 7090}]},
        "items.0.unknown": {"items": [{"data": "a", "unknown": 1}]},
        "items.0.label": {"items": [{"data": "a", "label": "x" * 201}]},
        "format": {"items": [{"data": "a"}], "format": "gif"},
    }
    for field, body in cases.items():
        response = await client.post(PATH, json=body)
        assert response.status_code == 422, (field, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], response.json()
    too_many = await client.post(PATH, json={"items": [{"data": "a"}] * 10_001})
    assert too_many.status_code == 422
    assert "items" in [e["field"] for e in too_many.json()["errors"]]


async def test_this_route_takes_a_body_over_the_default_limit_and_others_do_not(
    client: httpx.AsyncClient,
) -> None:
    items = [
        {"data": f"https://example.com/{i:04d}/" + "p" * 100, "label": "L" * 60}
        for i in range(10_000)
    ]
    body = json.dumps({"items": items, "scale": 1, "border": 0}).encode()
    assert 1_048_576 < len(body) < 16 * 1_048_576
    accepted = await client.post(PATH, content=body, headers={"content-type": "application/json"})
    assert accepted.status_code == 202, accepted.text[:500]
    padded = json.dumps({"data": "a", "format": "png", "pad": "x" * 1_048_576}).encode()
    refused = await client.post(
        "/v1/jobs/qr", content=padded, headers={"content-type": "application/json"}
    )
    assert refused.status_code == 413
    huge = b'{"items": [' + b'{"data": "a"},' * (16 * 1_048_576 // 14) + b'{"data": "a"}]}'
    over = await client.post(PATH, content=huge, headers={"content-type": "application/json"})
    assert over.status_code == 413
    job = await long_poll(client, accepted.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["data"]["ok"] == 10_000


async def long_poll(client: httpx.AsyncClient, job_id: str, timeout: float = 90) -> Any:
    """Wait as a client of a big job would: each read of a job with 10,000 inline items
    parses its 2 MB request, so wait_for_job's 10 ms polling would slow the worker."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        job = (await client.get(f"/v1/jobs/{job_id}", params={"wait": 5})).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
    raise AssertionError(f"job {job_id} did not finish in {timeout} s")


@pytest.mark.parametrize("output", ["zip", "pdf"])
async def test_a_batch_cancelled_mid_way_ends_cancelled(
    client: httpx.AsyncClient, output: str
) -> None:
    items = [{"data": f"https://example.com/slow/{i}" + "z" * 200} for i in range(10_000)]
    body = {"items": items, "scale": 20, "format": "png", "output": output}
    response = await client.post(PATH, json=body)
    job_id = response.json()["id"]
    for _ in range(2000):
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["progress"] and job["progress"]["done"] > 0:
            break
        await asyncio.sleep(0.01)
    assert job["status"] == "running" and job["progress"]["done"] < 10_000, job
    cancelled = await client.post(f"/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code in (200, 202), cancelled.text
    final = await wait_for_job(client, job_id, timeout=30)
    assert final["status"] == "cancelled", final
    assert final["progress"]["done"] < 10_000
    assert final["result"] is None
    after = await run_batch(client, {"items": [{"data": "after the cancel"}]})
    assert after[0]["result"]["data"]["ok"] == 1


def run_tool(*args: str) -> str:
    tool = shutil.which(args[0])
    assert tool is not None, f"{args[0]} is missing: apt-get install -y qpdf poppler-utils"
    result = subprocess.run([tool, *args[1:]], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def test_a_pdf_sheet_passes_qpdf_and_every_code_decodes_on_its_page(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    items = [{"data": f"https://example.com/seat/{i}", "label": f"Seat {i} ✓"} for i in range(14)]
    items.insert(5, {"data": "é" * 1000, "label": "too large for a 3x2 cell"})
    body = {"items": items, "output": "pdf", "sheet": {"columns": 3, "rows": 2, "page": "Letter"}}
    response = await client.post(PATH, json=body)
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"], timeout=60)
    assert job["status"] == "succeeded", job
    assert job["result"]["data"] == {"items": 15, "ok": 14, "failed": 1, "output": "pdf"}
    sheet_file, manifest_file = job["result"]["files"]
    assert (sheet_file["name"], manifest_file["name"]) == ("qr-codes.pdf", "manifest.csv")
    download = await client.get(f"/v1/jobs/{job['id']}/result")
    assert download.headers["content-type"] == "application/pdf"
    sheet = tmp_path / "sheet.pdf"
    sheet.write_bytes(download.content)
    run_tool("qpdf", "--check", str(sheet))
    assert "Pages:           3" in run_tool("pdfinfo", str(sheet))
    listing = await client.get(manifest_file["url"])
    assert listing.status_code == 200 and listing.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(listing.content.decode("utf-8"))))
    assert rows[5]["status"] == "failed" and "modules across" in rows[5]["error"]
    for page in (1, 2, 3):
        expected = {row["data"] for row in rows if row["file"] == f"qr-codes.pdf#page={page}"}
        assert len(expected) == (6 if page < 3 else 2)
        prefix = tmp_path / f"page{page}"
        run_tool(
            "pdftoppm",
            "-r",
            "150",
            "-png",
            "-singlefile",
            "-f",
            str(page),
            "-l",
            str(page),
            str(sheet),
            str(prefix),
        )
        with Image.open(f"{prefix}.png") as image:
            assert set(decode_image(image)) == expected
        text = run_tool("pdftotext", "-f", str(page), "-l", str(page), str(sheet), "-")
        assert all(row["label"] in text for row in rows if row["data"] in expected)


async def test_a_logo_on_a_pdf_sheet_is_refused_at_submit(client: httpx.AsyncClient) -> None:
    body = {"items": [{"data": "a"}], "output": "pdf", "logo_file_id": "f_1"}
    response = await client.post(PATH, json=body)
    assert response.status_code == 422
    assert "logo_file_id" in [e["field"] for e in response.json()["errors"]]
