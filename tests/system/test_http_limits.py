"""What a misbehaving client may cost ``offload serve``: raw sockets against the real process.

Loopback only; every loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.processes import Proc, Processes

pytestmark = pytest.mark.slow

TIMEOUT_SECONDS = 1.0
"""OFFLOAD_REQUEST_TIMEOUT_SECONDS in the timeout tests: short, so the tests are."""
SLACK_SECONDS = 5.0
"""How much later than the timeout the server may close (a busy machine)."""
ATTACKERS = 8
ATTACK_BYTES = 16 * 1024 * 1024
"""Each attacker sends up to this much of one header that never ends."""
MEMORY_ALLOWANCE_MB = 40
"""Peak RSS may grow this much while they do (it grew 147 MB before the limit; 0 MB after)."""


def address(proc: Proc) -> tuple[str, int]:
    assert proc.base_url is not None
    host, port = proc.base_url.removeprefix("http://").split(":")
    return host, int(port)


def peak_rss_mb(proc: Proc) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def answer(sock: socket.socket, deadline: float) -> bytes:
    """Everything the server sends until it closes the connection or ``deadline`` passes."""
    received = b""
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            break
        except ConnectionResetError:
            return received + b"<reset>"
        if not chunk:
            return received + b"<closed>"
        received += chunk
    return received + b"<still open>"


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        received += chunk
    head, body = received.split(b"\r\n\r\n", 1)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {received!r}"
        body += chunk
    return head + b"\r\n\r\n" + body


def status_line(received: bytes) -> bytes:
    return received.split(b"\r\n", 1)[0]


def send_header_that_never_ends(
    addr: tuple[str, int], outcome: list[str], all_sent: threading.Barrier
) -> None:
    """Send one header value of up to ATTACK_BYTES without ending it, until refused; keep
    the connection open until every attacker is done, so the server holds them all."""
    sent = 0
    with socket.create_connection(addr, timeout=10) as sock:
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: offload\r\nX-Padding: ")
            chunk = b"a" * 65536
            while sent < ATTACK_BYTES:
                sock.sendall(chunk)
                sent += len(chunk)
            outcome.append(f"server read all {sent} bytes")
        except OSError as error:
            outcome.append(f"refused after {sent} bytes ({type(error).__name__})")
        all_sent.wait(timeout=60)
        all_sent.wait(timeout=60)  # the test has measured


def test_a_huge_header_is_refused_and_costs_no_memory(processes: Processes) -> None:
    serve = processes.serve()
    addr = address(serve)

    with socket.create_connection(addr, timeout=10) as sock:
        head = b"GET /healthz HTTP/1.1\r\nHost: offload\r\nX-Padding: " + b"a" * 2**20 + b"\r\n\r\n"
        with contextlib.suppress(OSError):  # refused before it was all sent: also fine
            sock.sendall(head)
        received = answer(sock, time.monotonic() + 10)
    processes.check(
        status_line(received).startswith(b"HTTP/1.1 431") or received in (b"<closed>", b"<reset>"),
        f"a 1 MB header got {received[:200]!r}",
    )

    before = peak_rss_mb(serve)
    outcomes: list[str] = []
    all_sent = threading.Barrier(ATTACKERS + 1)
    attackers = [
        threading.Thread(target=send_header_that_never_ends, args=(addr, outcomes, all_sent))
        for _ in range(ATTACKERS)
    ]
    for attacker in attackers:
        attacker.start()
    all_sent.wait(timeout=60)
    grown = peak_rss_mb(serve) - before
    all_sent.wait(timeout=60)
    for attacker in attackers:
        attacker.join(timeout=60)
    processes.check(
        grown < MEMORY_ALLOWANCE_MB,
        f"peak RSS grew {grown} MB while {ATTACKERS} clients sent endless headers: {outcomes}",
    )
    assert all(outcome.startswith("refused") for outcome in outcomes), outcomes

    # A large header under the limit, sent in pieces (read in several chunks), is served.
    with socket.create_connection(addr, timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: offload\r\nConnection: close\r\n")
        for _ in range(12):
            sock.sendall(b"X-Cookie: " + b"c" * 4000 + b"\r\n")
            time.sleep(0.01)
        sock.sendall(b"\r\n")
        assert status_line(answer(sock, time.monotonic() + 10)) == b"HTTP/1.1 200 OK"


PARTIAL_REQUESTS = {
    "body-stops": b"POST /v1/jobs/qr HTTP/1.1\r\nHost: offload\r\n"
    b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n" + b'{"data": "x',
    "headers-stop": b"GET /healthz HTTP/1.1\r\nHost: offload\r\nX-Slow: ",
}


@pytest.mark.parametrize("partial", PARTIAL_REQUESTS.values(), ids=PARTIAL_REQUESTS.keys())
def test_a_request_that_stops_arriving_gets_408_and_is_closed(
    processes: Processes, partial: bytes
) -> None:
    serve = processes.serve(OFFLOAD_REQUEST_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS))
    with socket.create_connection(address(serve), timeout=10) as sock:
        sock.sendall(partial)
        sent_at = time.monotonic()
        received = answer(sock, sent_at + TIMEOUT_SECONDS + SLACK_SECONDS)
        waited = time.monotonic() - sent_at
    processes.check(
        status_line(received).startswith(b"HTTP/1.1 408") and received.endswith(b"<closed>"),
        f"after {waited:.1f} s the stalled client got {received[:300]!r}",
    )
    assert b"application/problem+json" in received, received
    assert waited >= TIMEOUT_SECONDS * 0.9, f"closed after {waited:.2f} s"


def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    processes: Processes,
) -> None:
    serve = processes.serve(OFFLOAD_REQUEST_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS))
    with socket.create_connection(address(serve), timeout=10) as sock:
        received = answer(sock, time.monotonic() + TIMEOUT_SECONDS + SLACK_SECONDS)
    assert received == b"<closed>", received


def test_a_keep_alive_client_may_pause_between_requests_longer_than_the_timeout(
    processes: Processes,
) -> None:
    """The deadline covers a request's arrival, not the idle time between requests
    (uvicorn's keep-alive timeout, 5 s, covers that)."""
    serve = processes.serve(OFFLOAD_REQUEST_TIMEOUT_SECONDS=str(TIMEOUT_SECONDS))
    request = b"GET /healthz HTTP/1.1\r\nHost: offload\r\n\r\n"
    with socket.create_connection(address(serve), timeout=10) as sock:
        for _ in range(2):
            sock.sendall(request)
            assert status_line(read_response(sock)) == b"HTTP/1.1 200 OK"
            time.sleep(TIMEOUT_SECONDS * 2)


def test_a_large_body_read_at_once_is_not_counted_as_a_head(processes: Processes) -> None:
    """A request whose body's last read (up to 256 KiB) also ends it was once counted as
    the next request's head: any body over 64 KiB could be refused 431."""
    serve = processes.serve()
    body = b'{"data": "' + b"x" * 900_000 + b'"}'
    head = (
        b"POST /v1/jobs/qr HTTP/1.1\r\nHost: offload\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body)
    )
    with socket.create_connection(address(serve), timeout=10) as sock:
        sock.sendall(head + body)
        assert status_line(read_response(sock)) == b"HTTP/1.1 422 Unprocessable Entity"
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: offload\r\n\r\n")
        assert status_line(read_response(sock)) == b"HTTP/1.1 200 OK"
