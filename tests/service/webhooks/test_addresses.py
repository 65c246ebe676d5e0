"""The address classifier and the URL check: pure tables, no network."""

from __future__ import annotations

import ipaddress

import pytest
from fastapi.exceptions import RequestValidationError

from schemas.jobs import JobOptions
from service.webhooks.addresses import forbidden_reason, literal_address, loose_ipv4
from service.webhooks.urls import CallbackRefused, check_callback_option, parse_callback

REFUSED = [
    # IPv4
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.255", "CGNAT"),
    ("169.254.169.254", "metadata"),
    ("169.254.1.1", "link-local"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("255.255.255.255", "broadcast"),
    ("240.0.0.1", "reserved"),
    ("192.0.0.8", "reserved"),
    ("192.0.2.10", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    # IPv6
    ("::1", "loopback"),
    ("::", "unspecified"),
    ("fe80::1", "link-local"),
    ("febf::1", "link-local"),
    ("fc00::1", "unique local"),
    ("fd12:3456::1", "unique local"),
    ("fec0::1", "site-local"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("2001:db8::1", "documentation"),
    ("3fff::1", "documentation"),
    ("100::1", "discard"),
    ("5f00::1", "reserved"),
    ("::ffff:0:7f00:1", "reserved"),  # IPv4-translated (SIIT)
    # IPv4 inside IPv6
    ("::ffff:127.0.0.1", "IPv4-mapped form of 127.0.0.1, which is loopback"),
    ("::ffff:169.254.169.254", "IPv4-mapped form of 169.254.169.254"),
    ("::ffff:10.0.0.1", "IPv4-mapped form of 10.0.0.1, which is private"),
    ("::127.0.0.1", "IPv4-compatible form of 127.0.0.1"),
    ("::10.0.0.1", "IPv4-compatible"),
    ("::93.184.216.34", "IPv4-compatible"),  # deprecated: refused whatever it carries
    ("2002:7f00:1::", "6to4 form of 127.0.0.1"),
    ("2002:a9fe:a9fe::1", "6to4 form of 169.254.169.254"),
    ("2002:c0a8:101::", "6to4 form of 192.168.1.1"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001::1", "Teredo"),
    ("64:ff9b::7f00:1", "NAT64 form of 127.0.0.1"),
    ("64:ff9b::169.254.169.254", "NAT64 form of 169.254.169.254"),
    ("64:ff9b::a00:1", "NAT64 form of 10.0.0.1"),
    ("64:ff9b:1::5db8:d822", "local-use NAT64"),
    ("2001:10::1", "reserved"),
]

ALLOWED = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "100.63.255.255",
    "100.128.0.0",
    "172.32.0.1",
    "2606:2800:220:1::",
    "2a00:1450:4001:80b::200e",
    "::ffff:93.184.216.34",
    "2002:5db8:d822::1",
    "64:ff9b::5db8:d822",
]


@pytest.mark.parametrize(("address", "reason"), REFUSED)
def test_forbidden_addresses_are_refused_with_a_reason(address: str, reason: str) -> None:
    found = forbidden_reason(ipaddress.ip_address(address))
    assert found is not None, f"{address} was allowed"
    assert reason.lower() in found.lower(), found


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    ("spelling", "address"),
    [
        ("127.0.0.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("127.0.1", "127.0.0.1"),
        ("2130706433", "127.0.0.1"),
        ("0x7f000001", "127.0.0.1"),
        ("0x7f.1", "127.0.0.1"),
        ("0x7F.0.0.1", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("017700000001", "127.0.0.1"),
        ("0", "0.0.0.0"),
        ("0xa9.0xfe.0xa9.0xfe", "169.254.169.254"),
        ("169.254.43518", "169.254.169.254"),
        ("3232235777", "192.168.1.1"),
    ],
)
def test_every_ipv4_spelling_the_resolver_accepts_is_read_as_it_does(
    spelling: str, address: str
) -> None:
    assert loose_ipv4(spelling) == ipaddress.IPv4Address(address)


@pytest.mark.parametrize(
    "host", ["example.com", "256.1.1.1", "1.2.3.4.5", "08.1.1.1", "0x1g", "1..2", "", "4294967296"]
)
def test_names_and_out_of_range_numbers_are_not_ipv4(host: str) -> None:
    assert loose_ipv4(host) is None


def test_a_trailing_dot_names_the_same_address() -> None:
    assert literal_address("127.0.0.1.") == ipaddress.IPv4Address("127.0.0.1")
    assert literal_address("0x7f.1.") == ipaddress.IPv4Address("127.0.0.1")


REFUSED_URLS = [
    ("ftp://example.com/hook", "https"),
    ("http://example.com/hook", "https"),
    ("example.com/hook", "https"),
    ("https://user:secret@example.com/hook", "credentials"),
    ("https://user@example.com/hook", "credentials"),
    ("https://127.0.0.1/hook", "loopback"),
    ("https://127.0.0.1./hook", "loopback"),
    ("https://127.1/hook", "loopback"),
    ("https://0x7f000001/hook", "loopback"),
    ("https://0x7f.1/hook", "loopback"),
    ("https://2130706433/hook", "loopback"),
    ("https://0177.0.0.1/hook", "IPv4"),  # httpx itself refuses this one
    ("https://[::1]/hook", "loopback"),
    ("https://[::ffff:127.0.0.1]/hook", "IPv4-mapped"),
    ("https://[::ffff:7f00:1]/hook", "IPv4-mapped"),
    ("https://[64:ff9b::7f00:1]/hook", "NAT64"),
    ("https://[2002:7f00:1::]/hook", "6to4"),
    ("https://169.254.169.254/latest/meta-data/", "metadata"),
    ("https://[fe80::1]/hook", "link-local"),
    ("https://10.0.0.1:8443/hook", "private"),
    ("https://localhost/hook", "localhost"),
    ("https://LOCALHOST./hook", "localhost"),
    ("https://api.localhost/hook", "localhost"),
    ("https://%31%32%37.0.0.1/hook", "not a valid host"),
    ("https:///hook", "not a valid host"),
    ("https://exa mple.com/hook", "not a valid host"),
]


@pytest.mark.parametrize(("url", "reason"), REFUSED_URLS)
def test_urls_refused_without_dns(url: str, reason: str) -> None:
    with pytest.raises(CallbackRefused) as refused:
        parse_callback(url, allow_private=False)
    assert reason.lower() in str(refused.value).lower(), str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/hook",
        "https://example.com./hook",
        "https://hooks.example.com:8443/a/b?c=d",
        "https://93.184.216.34/hook",
        "https://[2606:2800:220:1::]/hook",
        "https://exämple.com/hook",
    ],
)
def test_public_https_urls_pass(url: str) -> None:
    target = parse_callback(url, allow_private=False)
    assert not target.host.endswith(".")


def test_allow_private_lifts_the_address_check_and_allows_http_but_not_credentials() -> None:
    target = parse_callback("http://127.0.0.1:9000/hook", allow_private=True)
    assert (target.host, target.port) == ("127.0.0.1", 9000)
    assert parse_callback("https://localhost/hook", allow_private=True).host == "localhost"
    with pytest.raises(CallbackRefused):
        parse_callback("http://u:p@127.0.0.1/hook", allow_private=True)
    with pytest.raises(CallbackRefused):
        parse_callback("gopher://127.0.0.1/hook", allow_private=True)


def test_the_submit_hook_names_callback_url() -> None:
    with pytest.raises(RequestValidationError) as invalid:
        check_callback_option(JobOptions(callback_url="https://127.1/hook"), allow_private=False)
    (error,) = invalid.value.errors()
    assert error["loc"] == ("body", "callback_url")
    check_callback_option(JobOptions(callback_url="https://example.com/x"), allow_private=False)
    check_callback_option(JobOptions(), allow_private=False)
