"""The OpenAPI contract: stable operation ids, and no request the spec allows makes a 500."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from brokers import backend
from brokers.uploads import UPLOAD_ID
from service.app import create_app
from tasks.kinds import declared_kinds

app = create_app(backend, embedded_worker=False)
KINDS = declared_kinds()
"""The kinds this app was built with (a test module may declare more later)."""
# No schema can say which data fits in a QR code or how many pixels a PNG may have (that is
# a setting), nor which callback hosts a webhook may call or how far ahead run_at may be (it
# depends on the clock): for these operations, a request the schema allows may get their
# documented 422.
QR_LIMITS = {
    "include-operation-id": [*(kind.operation_id for kind in KINDS), "render_qr"],
    "checks": {
        "positive_data_acceptance": {
            "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
        }
    },
}
schema = schemathesis.openapi.from_asgi(
    "/openapi.json", app, config=SchemathesisConfig.from_dict({"operations": [QR_LIMITS]})
)

EXPECTED_OPERATIONS = {
    ("POST", "/v1/jobs/qr"): "create_qr_job",
    **{("POST", kind.path): kind.operation_id for kind in KINDS},
    ("GET", "/v1/jobs"): "list_jobs",
    ("GET", "/v1/jobs/{job_id}"): "get_job",
    ("GET", "/v1/jobs/{job_id}/result"): "get_job_result",
    ("GET", "/v1/jobs/{job_id}/files/{file_id}"): "get_job_file",
    ("GET", "/v1/jobs/{job_id}/events"): "stream_job_events",
    ("DELETE", "/v1/jobs/{job_id}"): "delete_job",
    ("POST", "/v1/jobs/{job_id}/cancel"): "cancel_job",
    ("POST", "/v1/jobs/{job_id}/retry"): "retry_job",
    ("POST", "/v1/jobs/retry"): "retry_jobs",
    ("GET", "/v1/qr"): "render_qr",
    ("POST", "/v1/files"): "upload_file",
    ("GET", "/v1/files/{file_id}"): "get_file",
    ("GET", "/v1/files/{file_id}/info"): "get_file_info",
    ("DELETE", "/v1/files/{file_id}"): "delete_file",
    ("GET", "/v1/webhooks/secret"): "get_webhook_secret",
    ("GET", "/healthz"): "get_health",
    ("GET", "/readyz"): "get_readiness",
}


def test_operation_ids_are_pinned() -> None:
    """They become SDK method names: renaming one breaks every generated client."""
    spec = app.openapi()
    found = {
        (method.upper(), path): operation["operationId"]
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert found == EXPECTED_OPERATIONS


def test_every_kind_has_its_submit_operation_with_examples() -> None:
    spec = app.openapi()
    assert "qr" in [kind.name for kind in KINDS]
    for kind in KINDS:
        operation = spec["paths"][kind.path]["post"]
        assert operation["operationId"] == f"create_{kind.name}_job"
        assert operation["description"] == kind.summary
        body = operation["requestBody"]["content"]["application/json"]
        assert body["examples"], kind.name
        component = body["schema"]["$ref"].removeprefix("#/components/schemas/")
        assert spec["components"]["schemas"][component]["examples"], kind.name
        assert set(operation["responses"]) >= {"200", "202", "409", "413", "415", "422", "503"}


def test_every_file_id_in_a_submit_example_could_be_an_upload() -> None:
    """A client that copies an example gets 422 for the file, never for its id's shape."""
    checked = 0
    for kind in KINDS:
        if kind.inputs is None:
            continue
        for example in kind.request.model_json_schema().get("examples", []):
            request = kind.request.model_validate(example)
            for wanted in kind.inputs(request):
                assert UPLOAD_ID.fullmatch(wanted.file_id), (kind.name, wanted)
                checked += 1
    assert checked > 0


def test_the_kind_is_one_enum_of_every_declared_kind() -> None:
    """Generated SDKs make it an enum: Job.kind and both kind filters refer to it."""
    spec = app.openapi()
    schemas = spec["components"]["schemas"]
    assert schemas["JobKind"]["type"] == "string"
    assert {kind.name for kind in KINDS} <= set(schemas["JobKind"]["enum"])
    reference = {"$ref": "#/components/schemas/JobKind"}
    assert schemas["Job"]["properties"]["kind"] == reference
    assert reference in schemas["RetryFilter"]["properties"]["kind"]["anyOf"]
    [kind_filter] = [
        parameter
        for parameter in spec["paths"]["/v1/jobs"]["get"]["parameters"]
        if parameter["name"] == "kind"
    ]
    assert reference in kind_filter["schema"]["anyOf"]


def test_every_error_response_is_documented_as_problem_json() -> None:
    spec = app.openapi()
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    assert "application/problem+json" in response["content"], (method, path, status)


@pytest.fixture(autouse=True)
def _no_collection_inside_ast_parsing() -> Iterator[None]:
    """Hypothesis and pytest's rewriter parse source while schemathesis runs. On CPython 3.11
    a garbage collection inside that parse can run a finalizer that parses too, and the
    interpreter then raises "AST constructor recursion depth mismatch" (cpython#106905)."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_only_documented_responses(case: schemathesis.Case) -> None:  # type: ignore[type-arg]
    case.call_and_validate()
