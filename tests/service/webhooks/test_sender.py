"""One try against a real loopback receiver: the address checked is the address used."""

from __future__ import annotations

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
