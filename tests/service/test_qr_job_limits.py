"""POST /v1/jobs/qr: what one request may cost the API process."""

from __future__ import annotations

import asyncio
import gc
import time

import httpx
import pytest
from pydantic import ValidationError

from brokers.factory import Backend
from schemas.qr import QrOptions
from tasks.qr_limits import check_qr_options

PROBLEM = "application/problem+json"
VERSION_40 = "a" * 2953
"""At level L: a version 40 code, 177 modules a side without its border."""


def field_messages(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return {error["field"]: error["message"] for error in response.json()["errors"]}


async def test_data_longer_than_any_qr_code_is_refused_naming_the_limit(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/v1/jobs/qr", json={"data": "A" * 1_040_000})
    assert field_messages(response) == {
        "data": "data is 1040000 characters; no QR code holds more than 7089 "
        "(digits only, at error_correction L)"
    }


async def test_png_over_the_pixel_limit_is_refused_naming_scale_and_border(
    client: httpx.AsyncClient,
) -> None:
    body = {"data": VERSION_40, "error_correction": "L", "scale": 10, "border": 20}
    response = await client.post("/v1/jobs/qr", json=body)
    too_large = "a 2170x2170 PNG is over the limit of 4,000,000 pixels"
    assert field_messages(response) == {
        "scale": f"{too_large}; with border 20, scale can be at most 9",
        "border": f"{too_large}; at scale 10, border can be at most 11",
    }
    assert (await client.get("/v1/jobs")).json()["items"] == [], "nothing was stored"


async def test_the_pixel_limit_is_a_setting(
    client: httpx.AsyncClient, any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = {"data": VERSION_40, "error_correction": "L", "scale": 12, "format": "png"}
    assert (await client.post("/v1/jobs/qr", json=body)).status_code == 422
    monkeypatch.setattr(any_backend.settings, "qr_max_pixels", 5_000_000)
    assert (await client.post("/v1/jobs/qr", json=body)).status_code == 202


async def test_the_capacity_fit_leaves_the_event_loop_free(client: httpx.AsyncClient) -> None:
    """While eight requests with the longest data a QR code can hold are fitted, the loop
    keeps turning and /healthz answers.

    The probe reads the loop thread's own CPU time between two of its turns: fits run on the
    loop show up whole in one turn (all eight of them, as the requests arrive together),
    however loaded the machine, where a wall-clock gap could not tell a busy loop from a
    descheduled process. Off the loop, the longest turn is parsing eight bodies (~5 ms
    here, against ~20 ms for one fit)."""
    body = {"data": "A" * 7089, "error_correction": "H"}  # every character fitted, then refused
    refused = "data is 7089 characters; a QR code at level H holds at most 1852"
    assert field_messages(await client.post("/v1/jobs/qr", json=body))["data"].startswith(refused)
    options = QrOptions.model_validate(body)
    started = time.thread_time()
    with pytest.raises(ValidationError):
        check_qr_options(options, max_png_pixels=4_000_000)
    one_fit = time.thread_time() - started

    longest_turn = 0.0
    health_answers = 0
    fitting = True

    async def probe() -> None:
        nonlocal longest_turn
        last = time.thread_time()
        while fitting:
            await asyncio.sleep(0)
            now = time.thread_time()
            longest_turn = max(longest_turn, now - last)
            last = now

    async def ask_health() -> None:
        nonlocal health_answers
        while fitting:
            assert (await client.get("/healthz")).status_code == 200
            health_answers += 1
            # Through httpx's ASGI transport, /healthz never waits on anything: without this,
            # the loop would turn only for it.
            await asyncio.sleep(0)

    # A full collection in this test process could take longer than a fit in any one turn.
    gc.collect()
    gc.disable()
    try:
        watchers = [asyncio.create_task(probe()), asyncio.create_task(ask_health())]
        posts = [client.post("/v1/jobs/qr", json=body) for _ in range(8)]
        responses = await asyncio.gather(*posts)
        answered_while_fitting = health_answers
        fitting = False
        await asyncio.gather(*watchers)
    finally:
        gc.enable()
    assert [response.status_code for response in responses] == [422] * 8
    assert answered_while_fitting >= 1
    assert longest_turn < 2 * one_fit, f"a turn of {longest_turn:.3f} s CPU; a fit {one_fit:.3f} s"
