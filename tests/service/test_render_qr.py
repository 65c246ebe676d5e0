"""GET /v1/qr: the synchronous fast path."""

from __future__ import annotations

import io

import httpx
import pytest
from PIL import Image
from pyzbar.pyzbar import decode

from brokers.factory import Backend


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


async def test_health_and_readiness(client: httpx.AsyncClient, any_backend: Backend) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    checks = {"store": "ok", "worker": "ok"}
    if any_backend.embedded:
        checks["disk"] = "ok"
    expected = {"status": "ok", "backend": any_backend.settings.backend, "checks": checks}
    assert ready.json() == expected
