"""Callback URLs: what can be refused from the URL alone, at submit and again before sending.

The address check after DNS is in :mod:`service.webhooks.sender`; this module needs no
network, so the API can answer 422 at once for what is wrong in the URL itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import httpx
from fastapi.exceptions import RequestValidationError

from schemas.jobs import JobOptions
from service.webhooks.addresses import IPAddress, forbidden_reason, literal_address

_HOSTNAME = re.compile(r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")


class CallbackRefused(ValueError):
    """A callback URL Offload will not call; the message says why."""


@dataclass(frozen=True)
class CallbackTarget:
    url: httpx.URL
    host: str
    """Lower case, ASCII (IDNA), without brackets or a trailing dot: for DNS, Host and SNI."""
    port: int
    literal: IPAddress | None
    """The address the host spells without DNS, in any of its spellings."""

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.url.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


def parse_callback(url: str, *, allow_private: bool) -> CallbackTarget:
    """The URL's parts, or :class:`CallbackRefused`: not http(s), http without
    ``allow_private``, credentials in it, a malformed host, or a host that is, in any
    spelling, a forbidden address or a ``localhost`` name (unless ``allow_private``)."""
    try:
        parsed = httpx.URL(url)
        raw_host = parsed.raw_host.decode("ascii")
    except (httpx.InvalidURL, UnicodeError, ValueError) as invalid:
        raise CallbackRefused(f"not a valid URL: {invalid}") from None
    scheme = parsed.scheme
    if scheme not in ("https", "http"):
        raise CallbackRefused("must be an https URL")
    if scheme == "http" and not allow_private:
        raise CallbackRefused("must be an https URL (http only with OFFLOAD_WEBHOOK_ALLOW_PRIVATE)")
    if parsed.userinfo:
        raise CallbackRefused("must not carry credentials (user:password@)")
    host = raw_host.lower()
    if ":" not in host:
        host = host[:-1] if host.endswith(".") else host
        if not _HOSTNAME.match(host):
            raise CallbackRefused(f"host {raw_host!r} is not a valid host name")
    literal = literal_address(host)
    if not allow_private:
        if literal is not None and (reason := forbidden_reason(literal)) is not None:
            raise CallbackRefused(f"host {raw_host!r} is {literal}: {reason}")
        if host == "localhost" or host.endswith(".localhost"):
            raise CallbackRefused(f"host {raw_host!r} is loopback (a localhost name)")
    port = parsed.port or (443 if scheme == "https" else 80)
    return CallbackTarget(url=parsed, host=host, port=port, literal=literal)


def check_callback_option(
    options: JobOptions, *, allow_private: bool, source: str = "body"
) -> None:
    """The submit-time hook: a 422 naming ``callback_url`` for a URL refused without DNS.

    Call it from every submit route with ``settings.webhook_allow_private``; ``source`` is
    where the options came from ("body"), as in the other validation errors.
    """
    if options.callback_url is None:
        return
    try:
        parse_callback(options.callback_url, allow_private=allow_private)
    except CallbackRefused as refused:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": (source, "callback_url"),
                    "msg": str(refused),
                    "input": options.callback_url,
                }
            ]
        ) from None
