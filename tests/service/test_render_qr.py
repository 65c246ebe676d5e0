"""GET /v1/qr: the synchronous fast path."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from PIL import Image
from pyzbar.pyzbar import decode

from brokers.factory import Backend
from service.app import create_app
from service.routes.qr import sync_render_slots

PROBLEM = "application/problem+json"


async def test_returns_a_png_that_decodes(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/qr", params={"data": "fast path ✓", "scale": 4})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    [symbol] = decode(Image.open(io.BytesIO(response.content)))
    assert symbol.data.decode() == "fast path ✓"


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("svg", "image/svg+xml"), ("pdf", "application/pdf")]
)
async def test_other_formats_have_their_content_type(
    client: httpx.AsyncClient, fmt: str, content_type: str
) -> None:
    response = await client.get("/v1/qr", params={"data": "x", "format": fmt})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(content_type)


async def test_data_over_512_bytes_is_refused_with_the_field(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/qr", params={"data": "é" * 257})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == "data"
    assert (await client.get("/v1/qr", params={"data": "a" * 512})).status_code == 200


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "data"),
        ({"data": "x", "format": "gif"}, "format"),
        ({"data": "x", "scale": "0"}, "scale"),
        ({"data": "x", "dark": "black"}, "dark"),
        ({"data": "x" * 500, "error_correction": "H", "scale": 50, "border": 20}, "scale"),
    ],
)
async def test_bad_query_is_a_422_naming_the_field(
    client: httpx.AsyncClient, params: dict[str, str | int], field: str
) -> None:
    response = await client.get("/v1/qr", params=params)
    assert response.status_code == 422
    assert [error["field"] for error in response.json()["errors"]] == [field]


async def test_png_over_the_pixel_limit_is_a_422_naming_scale_and_border(
    client: httpx.AsyncClient,
) -> None:
    # "hi" is a 21-module code: with border 20 at scale 50, a 3050x3050 PNG.
    response = await client.get("/v1/qr", params={"data": "hi", "scale": 50, "border": 20})
    assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM
    too_large = "a 3050x3050 PNG is over the limit of 4,000,000 pixels"
    assert {error["field"]: error["message"] for error in response.json()["errors"]} == {
        "scale": f"{too_large}; with border 20, scale can be at most 32",
        "border": f"{too_large}; at scale 50, border can be at most 9",
    }
    largest = await client.get("/v1/qr", params={"data": "hi", "scale": 32, "border": 20})
    assert largest.status_code == 200
    with Image.open(io.BytesIO(largest.content)) as image:
        assert image.size == (61 * 32, 61 * 32)


@pytest.fixture
async def app_with_one_render_slot(
    any_backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    monkeypatch.setattr(any_backend.settings, "qr_max_sync_renders", 1)
    app = create_app(any_backend, embedded_worker=False)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://offload.test") as http:
            yield app, http


async def test_a_render_beyond_the_limit_waits_briefly_then_gets_429(
    app_with_one_render_slot: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    app, client = app_with_one_render_slot
    slots = sync_render_slots(app)
    assert slots.size == 1
    async with slots.taken():
        response = await client.get("/v1/qr", params={"data": "busy"})
    assert response.status_code == 429
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "1"
    problem = response.json()
    assert problem["type"] == "urn:offload:problem:too-many-renders"
    assert "POST /v1/jobs/qr" in problem["detail"]
    assert (await client.get("/v1/qr", params={"data": "free again"})).status_code == 200


async def test_waiting_renders_are_served_in_turn(
    app_with_one_render_slot: tuple[FastAPI, httpx.AsyncClient],
) -> None:
    """Renders that find the slot taken wait for it (briefly), rather than failing at once."""
    _, client = app_with_one_render_slot
    responses = await asyncio.gather(
        *(client.get("/v1/qr", params={"data": f"turn {n}", "scale": 2}) for n in range(3))
    )
    assert [response.status_code for response in responses] == [200] * 3


def test_429_is_documented_with_retry_after() -> None:
    spec = create_app(embedded_worker=False).openapi()
    documented = spec["paths"]["/v1/qr"]["get"]["responses"]["429"]
    assert PROBLEM in documented["content"]
    assert "Retry-After" in documented["headers"]


async def test_health_and_readiness(client: httpx.AsyncClient, any_backend: Backend) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    checks = {"store": "ok", "worker": "ok"}
    if any_backend.embedded:
        checks["disk"] = "ok"
    expected = {"status": "ok", "backend": any_backend.settings.backend, "checks": checks}
    assert ready.json() == expected
