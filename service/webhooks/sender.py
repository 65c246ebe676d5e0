"""One try at a webhook: check the URL, resolve it once, check every address, POST to the
checked address, and read at most a little of the answer."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import lru_cache

import certifi
import httpx

from service.webhooks.addresses import IPAddress, forbidden_reason, literal_address
from service.webhooks.urls import CallbackRefused, CallbackTarget, parse_callback

MAX_RESPONSE_BYTES = 64 * 1024
"""Of a receiver's answer only the status matters; a larger body is not read."""

Resolver = Callable[[str, int], Awaitable[list[str]]]


@dataclass(frozen=True)
class TryOutcome:
    status_code: int | None
    error: str | None
    refused: bool
    """The URL or its address is not allowed: trying again cannot help."""
    duration_ms: float

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


async def resolve(host: str, port: int) -> list[str]:
    """Every address the host has, in the resolver's order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@lru_cache(maxsize=1)
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=certifi.where())


async def send(
    url: str,
    body: bytes,
    headers: dict[str, str],
    *,
    allow_private: bool,
    timeout_s: float,
    resolver: Resolver | None = None,
    tls: ssl.SSLContext | None = None,
) -> TryOutcome:
    """One try; ``resolver`` defaults to the system's (looked up now, so tests can swap it),
    ``tls`` to certifi's CAs."""
    started = time.monotonic()

    def outcome(status: int | None, error: str | None, refused: bool = False) -> TryOutcome:
        return TryOutcome(status, error, refused, (time.monotonic() - started) * 1000)

    try:
        target = parse_callback(url, allow_private=allow_private)
    except CallbackRefused as refused:
        return outcome(None, f"refused: {refused}", refused=True)
    try:
        async with asyncio.timeout(timeout_s):
            address = await _checked_address(target, allow_private, resolver or resolve)
            status = await _post(target, address, body, headers, timeout_s, tls or _tls())
            return outcome(status, None)
    except CallbackRefused as refused:
        return outcome(None, f"refused: {refused}", refused=True)
    except TimeoutError:
        return outcome(None, f"timed out after {timeout_s:g} s")
    except socket.gaierror as unresolved:
        return outcome(None, f"could not resolve {target.host}: {unresolved.strerror}")
    except (httpx.HTTPError, OSError, ssl.SSLError) as failed:
        return outcome(
            None, f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
        )


async def _checked_address(
    target: CallbackTarget, allow_private: bool, resolver: Resolver
) -> IPAddress:
    """The one address to connect to. Every address the name has must be allowed, so a
    name with one public and one private address cannot be steered to the private one."""
    if target.literal is not None:
        candidates: list[IPAddress] = [target.literal]
    else:
        resolved = [
            literal_address(found.split("%", 1)[0])
            for found in await resolver(target.host, target.port)
        ]
        candidates = [address for address in resolved if address is not None]
        if not candidates:
            raise OSError(f"{target.host} has no addresses")
    if not allow_private:
        for address in candidates:
            if (reason := forbidden_reason(address)) is not None:
                raise CallbackRefused(f"{target.host} resolves to {address}: {reason}")
    return candidates[0]


async def _post(
    target: CallbackTarget,
    address: IPAddress,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
    tls: ssl.SSLContext,
) -> int:
    """POST to the checked address itself: the URL names the IP (no second DNS lookup), the
    Host header and TLS (SNI and the certificate check) name the host. A fresh connection
    each time, so a TLS session checked for one host is never reused for another."""
    extensions = {}
    if target.url.scheme == "https" and target.literal is None:
        extensions["sni_hostname"] = target.host
    async with httpx.AsyncClient(
        verify=tls,
        trust_env=False,  # a proxy would resolve the name itself, past our check
        follow_redirects=False,
        timeout=timeout_s,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        request = client.build_request(
            "POST",
            target.url.copy_with(host=str(address)),
            content=body,
            headers={**headers, "host": target.host_header, "user-agent": "Offload-Webhooks/1"},
            extensions=extensions,
        )
        response = await client.send(request, stream=True)
        try:
            read = 0
            async for chunk in response.aiter_raw():
                read += len(chunk)
                if read >= MAX_RESPONSE_BYTES:
                    break
        finally:
            await response.aclose()
        return response.status_code
