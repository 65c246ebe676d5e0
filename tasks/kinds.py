"""A job kind, declared once: the submit route, its OpenAPI operation, the worker, the retry
endpoints and the tests all read this declaration.

A kind is one module in ``tasks/`` (found by ``tasks/__init__``) that defines its task and
calls :func:`declare_kind`, plus its request model in ``schemas/``::

    EXAMPLE = declare_kind(
        name="example",                 # POST /v1/jobs/example, operationId create_example_job
        request=ExampleRequest,         # pydantic model with examples; the job options are added
        task=run_example,               # the @broker.task that does the work
        summary="Queue one example.",   # the operation's description
        lane=Lane.BULK, max_attempts=5, timeout_s=600, backoff=Backoff(base_s=2, cap_s=600),
        check=check_example,            # optional: (request, settings) -> None, at submit
        inputs=example_inputs,          # optional: request -> FileInput of each uploaded file
        check_files=check_example_pdf,  # optional: (request, settings, uploads) -> None
    )
"""

from __future__ import annotations

import re
import types
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict
from taskiq import AsyncTaskiqDecoratedTask

from brokers.backoff import Backoff
from brokers.uploads import Upload
from schemas.jobs import MAX_ATTEMPTS_LIMIT, MAX_TIMEOUT_SECONDS, JobOptions, Lane
from schemas.kinds import register_kind_name
from service.settings import Settings

RequestT = TypeVar("RequestT", bound=BaseModel)

DEFAULT_MAX_ATTEMPTS = 3
KIND_NAME = re.compile(r"[a-z][a-z0-9_]{0,30}")
"""Fits a path segment and an operationId; under 32 characters, so never a job id."""
KIND_PATH = re.compile(r"/v1/jobs(/[a-z][a-z0-9-]{0,30}){1,2}")
"""A submit path of the kind's own: one or two lowercase segments under /v1/jobs."""
RESERVED_NAMES = frozenset({"retry"})
"""Other POST operations under /v1/jobs/ (retry_jobs): a kind of that name would hide them."""


class KindDeclarationError(ValueError):
    """A kind declaration that cannot work; raised at import, so the process does not start."""


@dataclass(frozen=True)
class FileInput:
    """One uploaded file a request names: checked at submit, before the job is stored."""

    field: str
    """The body field's dotted name, as the 422 names it: ``file_id``, ``file_ids.2``."""
    file_id: str
    accept: frozenset[str]
    """Sniffed media types the kind takes (``{"application/pdf"}``); others get 415."""


@dataclass(frozen=True)
class Kind(Generic[RequestT]):
    """One job kind. Build it with :func:`declare_kind`, which checks and registers it."""

    name: str
    request: type[RequestT]
    """The kind's own fields; the submit body is these plus the job options (``body``)."""
    task: AsyncTaskiqDecoratedTask[Any, Any]
    summary: str
    lane: Lane = Lane.INTERACTIVE
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    """Runs a job gets unless it asks otherwise, and what a manual retry gives it again."""
    timeout_s: float | None = None
    """The time limit of one attempt unless the job sets one; None: no limit."""
    backoff: Backoff = field(default_factory=Backoff)
    check: Callable[[RequestT, Settings], object] | None = None
    """Run at submit, off the event loop, before the job is stored: raises a pydantic
    ValidationError naming the request fields at fault (the API answers 422)."""
    route: str | None = None
    """The submit path when it is not ``/v1/jobs/<name>`` (``/v1/jobs/pdf/merge``)."""
    max_body_bytes: int | None = None
    """The submit body limit of this kind's route when not OFFLOAD_MAX_BODY_BYTES (bulk
    QR's 10,000 inline items need more than 1 MiB)."""
    inputs: Callable[[RequestT], Iterable[FileInput]] | None = None
    """The uploads a request names. At submit each must be the caller's, unexpired and not
    empty (else 422 naming its field) and of an accepted sniffed type (else 415)."""
    check_files: Callable[[RequestT, Settings, dict[str, Upload]], object] | None = None
    """Run after the inputs passed, off the event loop, with them by file id: a cheap look
    inside (page count, a corrupt header) that raises a ValidationError naming the field."""
    body: type[BaseModel] = field(init=False, repr=False, compare=False)
    """The submit body: ``request``'s fields and the job options, unknown fields refused."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "body", _body_model(self.request))

    @property
    def operation_id(self) -> str:
        return f"create_{self.name}_job"

    @property
    def path(self) -> str:
        return self.route or f"/v1/jobs/{self.name}"

    @property
    def task_name(self) -> str:
        return self.task.task_name

    def split(self, body: BaseModel) -> tuple[RequestT, JobOptions]:
        """A parsed ``body`` as the kind's request (the body itself: it is one) and the job
        options it carried; ``request_data`` gives what the task receives."""
        if not isinstance(body, self.request):
            raise TypeError(f"{type(body).__name__} is not a {self.name} submit body")
        options = JobOptions.model_construct(
            **{name: getattr(body, name) for name in JobOptions.model_fields}
        )
        return body, options

    def request_data(self, request: BaseModel) -> dict[str, Any]:
        """What the task is called with: the request's own fields as JSON, no job options."""
        return request.model_dump(mode="json", include=set(self.request.model_fields))


_kinds: dict[str, Kind[Any]] = {}


def declare_kind(
    *,
    name: str,
    request: type[RequestT],
    task: AsyncTaskiqDecoratedTask[Any, Any],
    summary: str,
    lane: Lane = Lane.INTERACTIVE,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    timeout_s: float | None = None,
    backoff: Backoff | None = None,
    check: Callable[[RequestT, Settings], object] | None = None,
    path: str | None = None,
    max_body_bytes: int | None = None,
    inputs: Callable[[RequestT], Iterable[FileInput]] | None = None,
    check_files: Callable[[RequestT, Settings, dict[str, Upload]], object] | None = None,
) -> Kind[RequestT]:
    """Declare a kind; raises KindDeclarationError (and registers nothing) on a mistake.
    ``path`` replaces the submit path ``/v1/jobs/<name>``; ``inputs`` names the uploaded
    files a request uses and ``check_files`` looks inside them (see :class:`Kind`)."""
    kind = Kind(
        name=name,
        request=request,
        task=task,
        summary=summary,
        lane=lane,
        max_attempts=max_attempts,
        timeout_s=timeout_s,
        backoff=backoff or Backoff(),
        check=check,
        route=path,
        max_body_bytes=max_body_bytes,
        inputs=inputs,
        check_files=check_files,
    )
    faults = _faults(kind)
    if faults:
        raise KindDeclarationError(f"job kind {name!r} cannot be declared: " + "; ".join(faults))
    _kinds[name] = kind
    register_kind_name(name)
    return kind


def declared_kinds() -> tuple[Kind[Any], ...]:
    """Every declared kind, in the order declared (the order of their routes)."""
    return tuple(_kinds.values())


def find_kind(name: str) -> Kind[Any] | None:
    return _kinds.get(name)


def _faults(kind: Kind[Any]) -> list[str]:
    faults = []
    if not KIND_NAME.fullmatch(kind.name):
        faults.append(f"the name must match {KIND_NAME.pattern}")
    if kind.name in RESERVED_NAMES:
        faults.append(f"the name is taken by the operation POST /v1/jobs/{kind.name}")
    if kind.name in _kinds:
        faults.append("a kind of that name is already declared")
    if kind.route is not None and not KIND_PATH.fullmatch(kind.route):
        faults.append(f"the path must match {KIND_PATH.pattern}")
    if kind.route is not None and kind.route.removeprefix("/v1/jobs/") in RESERVED_NAMES:
        faults.append(f"the path is taken by the operation POST {kind.route}")
    for other in _kinds.values():
        if other.path == kind.path:
            faults.append(f"kind {other.name!r} already answers POST {kind.path}")
    for other in _kinds.values():
        if other.task_name == kind.task_name:
            faults.append(f"task {kind.task_name!r} already runs kind {other.name!r}")
    clashes = _field_names(kind.request) & _field_names(JobOptions)
    if clashes:
        faults.append(f"request fields {sorted(clashes)} clash with the job options")
    if not kind.request.model_json_schema().get("examples"):
        faults.append("the request model has no examples (json_schema_extra) for the docs")
    if not kind.summary.strip() or "\n" in kind.summary.strip():
        faults.append("the summary must be one line")
    if not 1 <= kind.max_attempts <= MAX_ATTEMPTS_LIMIT:
        faults.append(f"max_attempts must be 1 to {MAX_ATTEMPTS_LIMIT}")
    if kind.timeout_s is not None and not 0 < kind.timeout_s <= MAX_TIMEOUT_SECONDS:
        faults.append(f"timeout_s must be over 0 and at most {MAX_TIMEOUT_SECONDS}")
    if "timeout" in kind.task.labels:
        # Submit sets the label from the job or the kind: one on the task would be a second
        # default that silently loses.
        faults.append("the task has its own timeout label; give timeout_s to the kind")
    if kind.max_body_bytes is not None and kind.max_body_bytes <= 0:
        faults.append("max_body_bytes must be over 0")
    if kind.backoff.base_s <= 0 or kind.backoff.cap_s < kind.backoff.base_s:
        faults.append("backoff needs 0 < base_s <= cap_s")
    if kind.check_files is not None and kind.inputs is None:
        faults.append("check_files needs inputs: it is given the uploads that inputs names")
    return faults


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names |= {name, info.alias or name, info.validation_alias or name}
    return {name for name in names if isinstance(name, str)}


def _body_model(request: type[BaseModel]) -> type[BaseModel]:
    # It keeps the request model's name (and docstring, and examples), so the OpenAPI
    # component and the classes SDKs generate from it stay what they were before the job
    # options joined it (QrOptions for create_qr_job). Unknown fields are refused whatever
    # the request model allows: a typo in an option must not pass silently.
    namespace = {
        "__module__": request.__module__,
        "__qualname__": request.__qualname__,
        "__doc__": request.__doc__,
        "model_config": ConfigDict(extra="forbid"),
    }
    # JobOptions first in the bases puts the kind's own fields first in the body.
    body = types.new_class(
        request.__name__, (JobOptions, request), exec_body=lambda ns: ns.update(namespace)
    )
    return cast(type[BaseModel], body)
