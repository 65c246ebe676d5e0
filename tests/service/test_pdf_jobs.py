"""The PDF operations through the API, on both backends, with the embedded worker: every
output checked by qpdf and poppler."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import zipfile
from pathlib import Path
from typing import Any

import httpx

from brokers.factory import Backend
from tests.support.files import upload
from tests.support.jobs import wait_for_job
from tests.support.pdfs import (
    encrypted_pdf,
    numbered_pdf,
    page_count,
    page_texts,
    pdfinfo,
    qpdf_check,
    qpdf_decrypt,
    qpdf_encryption,
    qpdf_refuses,
    rotations,
    text_pdf,
)


async def submit(client: httpx.AsyncClient, operation: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"/v1/jobs/pdf/{operation}", json=body)
    assert response.status_code == 202, response.text
    job = await wait_for_job(client, response.json()["id"], timeout=60)
    assert job["status"] == "succeeded", job
    return job


async def download(client: httpx.AsyncClient, file: dict[str, Any], path: Path) -> Path:
    response = await client.get(file["url"])
    assert response.status_code == 200, response.text
    await asyncio.to_thread(path.write_bytes, response.content)
    return path


async def test_merge_joins_files_in_order(client: httpx.AsyncClient, tmp_path: Path) -> None:
    first = await upload(client, text_pdf(["one", "two"]), "a.pdf")
    second = await upload(client, text_pdf(["three"]), "b.pdf")
    job = await submit(client, "merge", {"file_ids": [second["id"], first["id"], second["id"]]})
    assert job["kind"] == "pdf_merge"
    assert job["result"]["data"] == {"pages": 4, "files": 3}
    assert job["progress"]["done"] == job["progress"]["total"] == 3
    [file] = job["result"]["files"]
    assert (file["name"], file["content_type"]) == ("merged.pdf", "application/pdf")
    out = await download(client, file, tmp_path / "merged.pdf")
    qpdf_check(out)
    assert page_texts(out) == ["three", "one", "two", "three"]


async def test_split_to_a_zip_and_to_separate_files(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = await upload(client, numbered_pdf(6))
    job = await submit(client, "split", {"file_id": source["id"], "ranges": "1-2,4,5-"})
    assert [part["pages"] for part in job["result"]["data"]["parts"]] == [2, 1, 2]
    [archive_file] = job["result"]["files"]
    archive = await download(client, archive_file, tmp_path / "parts.zip")
    with zipfile.ZipFile(archive) as parts:
        names = parts.namelist()
        texts = []
        for name in names:
            path = tmp_path / name
            path.write_bytes(parts.read(name))
            qpdf_check(path)
            texts.append(page_texts(path))
    assert texts == [["page 1", "page 2"], ["page 4"], ["page 5", "page 6"]]
    job = await submit(client, "split", {"file_id": source["id"], "output": "pdfs"})
    files = job["result"]["files"]
    assert len(files) == 6
    for number, file in enumerate(files, start=1):
        assert file["name"] == f"part-{number:04d}-pages-{number}.pdf"
        out = await download(client, file, tmp_path / f"{number}.pdf")
        qpdf_check(out)
        assert page_texts(out) == [f"page {number}"]


async def test_rotate_turns_the_pages_asked(client: httpx.AsyncClient, tmp_path: Path) -> None:
    source = await upload(client, numbered_pdf(3))
    job = await submit(client, "rotate", {"file_id": source["id"], "angle": 270, "pages": "2-"})
    assert job["result"]["data"] == {"pages_rotated": 2, "angle": 270}
    out = await download(client, job["result"]["files"][0], tmp_path / "rotated.pdf")
    qpdf_check(out)
    assert rotations(out) == [0, 270, 270]


async def test_extract_text_gives_json_per_page(client: httpx.AsyncClient, tmp_path: Path) -> None:
    source = await upload(client, text_pdf(["Hello", "World"]))
    job = await submit(client, "extract-text", {"file_id": source["id"]})
    assert job["result"]["data"]["pages"] == 2
    file = job["result"]["files"][0]
    assert file["content_type"] == "application/json"
    document = json.loads((await download(client, file, tmp_path / "t.json")).read_text())
    assert [(page["page"], page["text"].strip()) for page in document["pages"]] == [
        (1, "Hello"),
        (2, "World"),
    ]


async def test_metadata_written_then_read(client: httpx.AsyncClient, tmp_path: Path) -> None:
    source = await upload(client, numbered_pdf(2))
    body = {"file_id": source["id"], "metadata": {"title": "Plan", "Department": "Ops"}}
    job = await submit(client, "write-metadata", body)
    out = await download(client, job["result"]["files"][0], tmp_path / "document.pdf")
    qpdf_check(out)
    assert "Title:           Plan" in pdfinfo(out)
    written = await upload(client, out.read_bytes(), "document.pdf")
    job = await submit(client, "read-metadata", {"file_id": written["id"]})
    data = job["result"]["data"]
    assert data["info"]["title"] == "Plan" and data["info"]["Department"] == "Ops"
    assert data["xmp"]["title"] == "Plan"
    assert (data["pages"], data["encrypted"]) == (2, False)
    assert job["result"]["files"] == []


async def test_encrypt_then_decrypt_and_the_passwords_are_never_stored_or_shown(
    client: httpx.AsyncClient, any_backend: Backend, tmp_path: Path
) -> None:
    source = await upload(client, numbered_pdf(2))
    body = {"file_id": source["id"], "user_password": "u-Secret-1", "owner_password": "o-Secret-2"}
    job = await submit(client, "encrypt", body)
    locked = await download(client, job["result"]["files"][0], tmp_path / "locked.pdf")
    qpdf_check(locked, "u-Secret-1")
    shown = qpdf_encryption(locked, "u-Secret-1")
    assert "R = 6" in shown and "AESv3" in shown
    assert "invalid password" in qpdf_refuses(locked)
    plain = qpdf_decrypt(locked, "o-Secret-2", tmp_path / "plain.pdf")
    assert page_texts(plain) == ["page 1", "page 2"]

    uploaded = await upload(client, locked.read_bytes(), "locked.pdf")
    decrypted = await submit(
        client, "decrypt", {"file_id": uploaded["id"], "password": "u-Secret-1"}
    )
    assert decrypted["result"]["data"] == {"pages": 2, "was_encrypted": True}
    out = await download(client, decrypted["result"]["files"][0], tmp_path / "decrypted.pdf")
    assert "File is not encrypted" in qpdf_check(out)
    assert page_count(out) == 2

    for shown_job in (job, decrypted):
        listed = (await client.get(f"/v1/jobs/{shown_job['id']}")).text
        assert "Secret" not in listed
        record = await any_backend.store.get(shown_job["id"])
        assert record is not None
        stored = json.dumps(record.request) + str(record.message)
        assert "u-Secret-1" not in stored and "o-Secret-2" not in stored
        assert "sealed:v1:" in stored


async def test_an_encrypted_input_opens_with_its_password_in_other_operations(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = await upload(client, encrypted_pdf(["locked text"], "pw"))
    job = await submit(client, "extract-text", {"file_id": source["id"], "password": "pw"})
    text = json.loads(
        (await download(client, job["result"]["files"][0], tmp_path / "t")).read_text()
    )
    assert text["pages"][0]["text"].strip() == "locked text"


async def test_a_long_job_reports_pages_and_is_cancelled_mid_way(
    client: httpx.AsyncClient,
) -> None:
    source = await upload(client, numbered_pdf(4000), "long.pdf")
    response = await client.post("/v1/jobs/pdf/extract-text", json={"file_id": source["id"]})
    job_id = response.json()["id"]
    job = await wait_for_job(client, job_id, {"running"})
    for _ in range(400):
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["progress"] and job["progress"]["done"]:
            break
        await asyncio.sleep(0.05)
    assert job["progress"]["total"] == 4000
    assert job["progress"]["message"].endswith("of 4000 pages")
    assert (await client.post(f"/v1/jobs/{job_id}/cancel")).status_code in (200, 202)
    job = await wait_for_job(client, job_id, timeout=30)
    assert job["status"] == "cancelled", job
    assert job["progress"]["done"] < 4000
    small = await upload(client, numbered_pdf(1))
    await submit(client, "extract-text", {"file_id": small["id"]})


async def test_the_zip_of_a_split_holds_only_server_made_names(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    source = await upload(client, numbered_pdf(2), "../../etc/passwd.pdf")
    job = await submit(client, "split", {"file_id": source["id"]})
    archive = await download(client, job["result"]["files"][0], tmp_path / "z.zip")
    names = zipfile.ZipFile(io.BytesIO(archive.read_bytes())).namelist()
    assert names == ["part-0001-pages-1.pdf", "part-0002-pages-2.pdf"]


def pool_processes() -> list[int]:
    """This process's CPU pool children (spawned by multiprocessing), never redis-server."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and b"spawn_main" in cmdline:
            pids.append(int(stat.parent.name))
    return pids


LONG_PAGES = 4000
"""Long enough to be seen running with progress before it ends: 1,500 pages once finished
on an idle machine between two looks."""


async def test_a_pool_process_killed_mid_job_is_run_again_and_nothing_is_lost(
    client: httpx.AsyncClient,
) -> None:
    source = await upload(client, numbered_pdf(LONG_PAGES), "long.pdf")
    response = await client.post("/v1/jobs/pdf/extract-text", json={"file_id": source["id"]})
    job_id = response.json()["id"]
    for _ in range(600):
        job = (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["progress"] and job["progress"]["done"]:
            break
        await asyncio.sleep(0.05)
    assert job["status"] == "running" and job["attempts"] == 1, job
    victims = await asyncio.to_thread(pool_processes)
    assert victims, "no CPU pool process found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    job = await wait_for_job(client, job_id, timeout=90)
    assert job["status"] == "succeeded", job
    assert job["attempts"] == 2
    assert [error["type"] for error in job["attempt_errors"]] == ["cpu_step_died"]
    assert job["result"]["data"]["pages"] == LONG_PAGES


async def test_a_repeated_submit_with_its_key_finds_the_job_though_passwords_are_sealed(
    client: httpx.AsyncClient,
) -> None:
    source = await upload(client, numbered_pdf(1))
    body = {"file_id": source["id"], "user_password": "same-Secret"}
    headers = {"Idempotency-Key": "encrypt-once"}
    first = await client.post("/v1/jobs/pdf/encrypt", json=body, headers=headers)
    again = await client.post("/v1/jobs/pdf/encrypt", json=body, headers=headers)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    other = {**body, "user_password": "other-Secret"}
    reused = await client.post("/v1/jobs/pdf/encrypt", json=other, headers=headers)
    assert reused.status_code == 409


async def test_a_refused_password_is_not_echoed(client: httpx.AsyncClient) -> None:
    source = await upload(client, numbered_pdf(1))
    password = "Z" * 129
    response = await client.post(
        "/v1/jobs/pdf/encrypt", json={"file_id": source["id"], "user_password": password}
    )
    assert response.status_code == 422
    assert "user_password" in response.text
    assert password not in response.text
