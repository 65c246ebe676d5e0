"""A job kind is declared once: a kind declared here, in a test module, gets its route,
operation, request schema, defaults and retry budget with no edit anywhere else; and a
declaration refuses the mistakes it can see."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

import tasks
from brokers import backend, broker
from brokers.backoff import Backoff
from brokers.factory import Backend
from brokers.lifecycle import JobFailure
from schemas.jobs import JobOptions, Lane
from schemas.kinds import kind_names
from service.app import create_app
from service.settings import Settings
from tasks.kinds import KindDeclarationError, declare_kind, declared_kinds, find_kind
from tasks.qr import QR, render_qr_job
from tests.support.jobs import stored_labels, wait_for_job


class EchoRequest(BaseModel):
    """Text to hand back."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"text": "hi"}]})

    text: str = Field(min_length=1, max_length=100, description="What the job answers.")


class Refused(JobFailure):
    error_type = "refused"


@broker.task(task_name="tests.kinds.echo")
async def echo(request: EchoRequest) -> dict[str, Any]:
    if request.text == "fail":
        raise Refused("asked to fail")
    return {"data": {"text": request.text}, "files": []}


def no_secrets(request: EchoRequest, settings: Settings) -> None:
    if request.text == "secret":
        raise ValidationError.from_exception_data(
            "EchoRequest",
            [
                InitErrorDetails(
                    type=PydanticCustomError("secret", "must not be a secret"),
                    loc=("text",),
                    input=request.text,
                )
            ],
        )


@broker.task(task_name="tests.kinds.nested")
async def nested(request: EchoRequest) -> dict[str, Any]:
    return {"data": {"text": request.text}, "files": []}


NESTED = declare_kind(
    name="echo_nested",
    request=EchoRequest,
    task=nested,
    summary="Answer the text given, from a path of its own.",
    path="/v1/jobs/echo/nested",
)


ECHO = declare_kind(
    name="echo",
    request=EchoRequest,
    task=echo,
    summary="Answer the text given.",
    lane=Lane.BULK,
    max_attempts=4,
    timeout_s=30,
    backoff=Backoff(base_s=2.0, cap_s=20.0),
    check=no_secrets,
)


def test_its_route_operation_and_request_schema_come_from_the_declaration() -> None:
    spec = create_app(backend, embedded_worker=False).openapi()
    operation = spec["paths"]["/v1/jobs/echo"]["post"]
    assert operation["operationId"] == "create_echo_job"
    assert operation["description"] == "Answer the text given."
    body = operation["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/EchoRequest"}
    assert body["examples"]["example_1"]["value"] == {"text": "hi"}
    schema = spec["components"]["schemas"]["EchoRequest"]
    assert list(schema["properties"]) == ["text", *JobOptions.model_fields]
    assert schema["required"] == ["text"]
    assert schema["additionalProperties"] is False
    assert {"echo", "qr"} <= set(spec["components"]["schemas"]["JobKind"]["enum"])


async def test_a_kind_may_answer_on_a_path_of_its_own(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/jobs/echo/nested", json={"text": "deep"})
    assert response.status_code == 202, response.text
    assert response.json()["kind"] == "echo_nested"
    done = await wait_for_job(client, response.json()["id"])
    assert done["result"]["data"] == {"text": "deep"}
    assert (await client.post("/v1/jobs/echo_nested", json={"text": "x"})).status_code == 404


async def test_its_jobs_run_with_its_defaults(
    client: httpx.AsyncClient, any_backend: Backend
) -> None:
    response = await client.post("/v1/jobs/echo", json={"text": "hello"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert job["kind"] == "echo"
    assert (job["lane"], job["max_attempts"], job["timeout_s"]) == ("bulk", 4, 30)
    labels = await stored_labels(any_backend, job["id"])
    assert labels["offload_backoff_base_s"] == 2.0 and labels["offload_backoff_cap_s"] == 20.0
    assert labels["timeout"] == 30 and labels["lane"] == "bulk"
    done = await wait_for_job(client, job["id"])
    assert done["status"] == "succeeded" and done["result"]["data"] == {"text": "hello"}
    listed = (await client.get("/v1/jobs", params={"kind": "echo"})).json()["items"]
    assert [item["id"] for item in listed] == [job["id"]]


async def test_its_submit_check_and_unknown_fields_are_422s_naming_the_field(
    client: httpx.AsyncClient,
) -> None:
    for body, field in [
        ({"text": "secret"}, "text"),
        ({"text": "x", "colour": "red"}, "colour"),
        ({"text": "x", "delay_s": -1}, "delay_s"),
    ]:
        response = await client.post("/v1/jobs/echo", json=body)
        assert response.status_code == 422, response.text
        assert [error["field"] for error in response.json()["errors"]] == [field]
    assert (await client.get("/v1/jobs")).json()["items"] == []


async def test_a_retry_gives_the_job_its_kinds_attempts_again(client: httpx.AsyncClient) -> None:
    first = (await client.post("/v1/jobs/echo", json={"text": "fail"})).json()["id"]
    second = (await client.post("/v1/jobs/echo", json={"text": "fail"})).json()["id"]
    for job_id in (first, second):
        failed = await wait_for_job(client, job_id)
        assert failed["status"] == "failed" and failed["attempts"] == 1
    retried = await client.post(f"/v1/jobs/{first}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["max_attempts"] == 1 + ECHO.max_attempts
    many = await client.post("/v1/jobs/retry", json={"kind": "echo"})
    assert many.json() == {"count": 1}, "the first is no longer failed"
    again = (await client.get(f"/v1/jobs/{second}")).json()
    assert again["max_attempts"] == 1 + ECHO.max_attempts


async def test_the_kind_filters_take_only_declared_kinds(client: httpx.AsyncClient) -> None:
    listed = await client.get("/v1/jobs", params={"kind": "nope"})
    assert listed.status_code == 422
    assert [error["field"] for error in listed.json()["errors"]] == ["kind"]
    retried = await client.post("/v1/jobs/retry", json={"kind": "nope"})
    assert retried.status_code == 422


def test_the_worker_registers_every_declared_kinds_task() -> None:
    """``taskiq worker brokers:broker tasks`` imports the package: it finds every module."""
    package = Path(tasks.__file__).parent
    modules = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    assert {name for name in modules if f"tasks.{name}" not in sys.modules} == set()
    for kind in declared_kinds():
        assert broker.find_task(kind.task_name) is kind.task
    assert find_kind("qr") is QR and QR.task is render_qr_job


class Clashing(EchoRequest):
    lane: str = "mine"


class Unexampled(BaseModel):
    text: str


@broker.task(task_name="tests.kinds.timed", timeout=5)
async def timed(request: EchoRequest) -> None:
    return None


@broker.task(task_name="tests.kinds.unused")
async def unused(request: EchoRequest) -> None:
    return None


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "qr"}, "already declared"),
        ({"name": "echo"}, "already declared"),
        ({"task": render_qr_job}, "task 'offload.qr.render' already runs kind 'qr'"),
        ({"request": Clashing}, "request fields ['lane'] clash with the job options"),
        ({"name": "retry"}, "taken by the operation POST /v1/jobs/retry"),
        ({"name": "Bad-Name"}, "the name must match"),
        ({"name": "a" * 32}, "the name must match"),
        ({"request": Unexampled}, "no examples"),
        ({"task": timed}, "own timeout label"),
        ({"max_attempts": 0}, "max_attempts must be 1 to 25"),
        ({"timeout_s": 0}, "timeout_s must be over 0"),
        ({"summary": "two\nlines"}, "one line"),
        ({"backoff": Backoff(base_s=10, cap_s=1)}, "backoff"),
        ({"path": "/v1/jobs/echo"}, "kind 'echo' already answers POST /v1/jobs/echo"),
        ({"path": "/v1/jobs/retry"}, "taken by the operation POST /v1/jobs/retry"),
        ({"path": "/v1/other/thing"}, "the path must match"),
        ({"path": "/v1/jobs/../files"}, "the path must match"),
        ({"path": "/v1/jobs/a/b/c"}, "the path must match"),
    ],
)
def test_a_declaration_refuses_mistakes_and_registers_nothing(
    changes: dict[str, Any], says: str
) -> None:
    before = (declared_kinds(), kind_names())
    fields: dict[str, Any] = {
        "name": "unused",
        "request": EchoRequest,
        "task": unused,
        "summary": "Never declared.",
        **changes,
    }
    with pytest.raises(KindDeclarationError, match=says.replace("[", r"\[").replace("]", r"\]")):
        declare_kind(**fields)
    assert (declared_kinds(), kind_names()) == before
