"""Which addresses a webhook may reach: pure functions, no DNS, no sockets.

A callback URL is the client's to choose, so without these checks Offload would POST, from
inside its network, to whatever the client names: the cloud metadata service, Redis on
localhost, an admin panel on 10.0.0.1. Every address a delivery would connect to is
classified here; the address lists are written out (not ``ipaddress``'s ``is_private`` and
friends), because those changed between Python releases and treat embedded IPv4 forms
inconsistently.
"""

from __future__ import annotations

import ipaddress
import re

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

_FORBIDDEN_V4: tuple[tuple[_V4, str], ...] = tuple(
    (_V4(network), reason)
    for network, reason in (
        ("0.0.0.0/8", "unspecified ('this network')"),
        ("10.0.0.0/8", "private (RFC 1918)"),
        ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local (incl. cloud metadata 169.254.169.254)"),
        ("172.16.0.0/12", "private (RFC 1918)"),
        ("192.0.0.0/24", "IETF protocol assignments (reserved)"),
        ("192.0.2.0/24", "documentation (TEST-NET-1)"),
        ("192.88.99.0/24", "6to4 relay anycast (reserved)"),
        ("192.168.0.0/16", "private (RFC 1918)"),
        ("198.18.0.0/15", "benchmarking (reserved)"),
        ("198.51.100.0/24", "documentation (TEST-NET-2)"),
        ("203.0.113.0/24", "documentation (TEST-NET-3)"),
        ("224.0.0.0/4", "multicast"),
        ("255.255.255.255/32", "broadcast"),
        ("240.0.0.0/4", "reserved"),
    )
)

_GLOBAL_UNICAST_V6 = _V6("2000::/3")
"""The only IPv6 space handed out for the public internet; anything outside it is refused."""

_FORBIDDEN_V6: tuple[tuple[_V6, str], ...] = tuple(
    (_V6(network), reason)
    for network, reason in (
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use NAT64 (RFC 8215)"),
        ("100::/64", "discard-only (reserved)"),
        ("2001::/32", "Teredo tunnel"),
        ("2001::/23", "IETF protocol assignments (reserved)"),
        ("2001:db8::/32", "documentation"),
        ("3fff::/20", "documentation"),
        ("fc00::/7", "unique local (private)"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local (deprecated, private)"),
        ("ff00::/8", "multicast"),
    )
)

_NAT64 = _V6("64:ff9b::/96")
_IPV4_MAPPED = _V6("::ffff:0:0/96")
_IPV4_COMPATIBLE = _V6("::/96")
_SIXTOFOUR = _V6("2002::/16")


def forbidden_reason(address: IPAddress) -> str | None:
    """Why a webhook may not connect to ``address``, or None if it is a public address.

    IPv6 forms that carry an IPv4 address (IPv4-mapped ``::ffff:a.b.c.d``, NAT64
    ``64:ff9b::a.b.c.d``, 6to4 ``2002:AABB:CCDD::``) are judged by the address they carry;
    IPv4-compatible ``::a.b.c.d`` (deprecated), Teredo and local NAT64 are refused outright.
    """
    if isinstance(address, ipaddress.IPv4Address):
        for network4, reason in _FORBIDDEN_V4:
            if address in network4:
                return reason
        return None
    embedded = _embedded_v4(address)
    if embedded is not None:
        form, v4 = embedded
        inner = forbidden_reason(v4)
        return None if inner is None else f"{form} form of {v4}, which is {inner}"
    for network, reason in _FORBIDDEN_V6:
        if address in network:
            return reason
    if address in _IPV4_COMPATIBLE:
        return f"IPv4-compatible form of {ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)}"
    if address not in _GLOBAL_UNICAST_V6:
        return "reserved (not global unicast)"
    return None


def _embedded_v4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address in _IPV4_MAPPED:
        return "IPv4-mapped", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _SIXTOFOUR:
        return "6to4", ipaddress.IPv4Address((int(address) >> 80) & 0xFFFFFFFF)
    return None


_LOOSE_V4_PART = re.compile(r"^(0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*)$")


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """``host`` read the way C's ``inet_aton`` (and so ``getaddrinfo``) reads it, or None.

    ``127.1``, ``0x7f.1``, ``0177.0.0.1`` and ``2130706433`` all mean 127.0.0.1 to the
    resolver, so they must mean it to the check too: one to four parts, each decimal, octal
    (leading 0) or hex (0x), the last one filling the remaining bytes.
    """
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(_LOOSE_V4_PART.match(part) for part in parts):
        return None
    values = [_part_value(part) for part in parts]
    *leading, last = values
    if any(value > 0xFF for value in leading) or last >= 256 ** (5 - len(parts)):
        return None
    number = last
    for index, value in enumerate(leading):
        number |= value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _part_value(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part[0] == "0":
        return int(part, 8)
    return int(part)


def literal_address(host: str) -> IPAddress | None:
    """The address a URL's host names without DNS (any IPv4 spelling, IPv6), or None."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            return None
    # A trailing dot names the same host ("127.0.0.1." is 127.0.0.1 to the resolver).
    return loose_ipv4(host[:-1] if host.endswith(".") else host)
