"""One try against a real loopback receiver: the address checked is the address used."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

from service.webhooks.sender import send
from tests.support.receiver import receiver


async def test_the_name_is_resolved_once_and_the_checked_address_is_the_one_connected_to() -> None:
    answers = [["93.184.216.34"], ["127.0.0.1"]]  # a rebinding DNS: public, then loopback
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[min(len(asked) - 1, 1)]

    with receiver() as hook:
        outcome = await send(
            f"https://rebind.example:{hook.port}/hook",
            b"{}",
            {},
            allow_private=False,
            timeout_s=1.0,
            resolver=rebinding,
        )
    assert asked == ["rebind.example"]
    assert not outcome.delivered and not outcome.refused  # 93.184.216.34 is not reachable here
    assert hook.connections == 0


async def test_the_request_goes_to_the_resolved_address_with_the_url_s_host() -> None:
    async def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with receiver(statuses=[204]) as hook:
        outcome = await send(
            f"http://hooks.example:{hook.port}/hook?x=1",
            b'{"a": 1}',
            {"webhook-id": "msg_1"},
            allow_private=True,
            timeout_s=3.0,
            resolver=local,
        )
    assert outcome.delivered and outcome.status_code == 204, outcome
    (request,) = hook.requests
    assert request.headers["host"] == f"hooks.example:{hook.port}"
    assert request.path == "/hook?x=1"
    assert request.body == b'{"a": 1}'
    assert request.headers["webhook-id"] == "msg_1"


async def test_a_name_with_any_private_address_is_refused_before_connecting() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "::ffff:169.254.169.254"]

    with receiver() as hook:
        outcome = await send(
            f"https://mixed.example:{hook.port}/", b"{}", {}, allow_private=False,
            timeout_s=1.0, resolver=mixed,
        )  # fmt: skip
    assert outcome.refused and outcome.error is not None
    assert "169.254.169.254" in outcome.error
    assert hook.connections == 0


def certificates(folder: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a certificate it signed for hooks.example: (ca, cert, key)."""

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=folder, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
            "ca.pem", "-days", "2", "-subj", "/CN=Offload test CA")  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "hook.key", "-out", "hook.csr",
            "-subj", "/CN=hooks.example")  # fmt: skip
    (folder / "ext").write_text("subjectAltName=DNS:hooks.example\n")
    openssl("x509", "-req", "-in", "hook.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "hook.pem", "-days", "2", "-extfile", "ext")  # fmt: skip
    return folder / "ca.pem", folder / "hook.pem", folder / "hook.key"


async def test_tls_to_the_checked_address_names_the_host_in_sni_and_checks_its_certificate(
    tmp_path: Path,
) -> None:
    ca, cert, key = certificates(tmp_path)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    names: list[str | None] = []

    def remember(_socket: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        names.append(name)

    server.sni_callback = remember
    client = ssl.create_default_context(cafile=str(ca))

    async def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with receiver(tls=server) as hook:
        good = await send(
            f"https://hooks.example:{hook.port}/hook", b"{}", {}, allow_private=True,
            timeout_s=5.0, resolver=local, tls=client,
        )  # fmt: skip
        # The same address under a name the certificate does not cover is refused by TLS.
        wrong = await send(
            f"https://other.example:{hook.port}/hook", b"{}", {}, allow_private=True,
            timeout_s=5.0, resolver=local, tls=client,
        )  # fmt: skip
    assert good.delivered, good
    assert names[0] == "hooks.example"
    assert not wrong.delivered and wrong.error is not None and "certificate" in wrong.error.lower()
    assert len(hook.requests) == 1
    assert hook.requests[0].headers["host"] == f"hooks.example:{hook.port}"
