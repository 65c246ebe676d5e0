"""Exception handlers: every error leaves as problem+json."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import BaseRoute, Match

from service.errors import (
    PROBLEM_TYPE_PREFIX,
    BackendUnavailableError,
    FieldError,
    Problem,
    ProblemError,
    problem_response,
    validation_problem,
)

logger = logging.getLogger(__name__)

_SOURCES = {"body", "query", "path", "header", "cookie"}


def field_errors(error: RequestValidationError) -> list[FieldError]:
    found = []
    for issue in error.errors():
        location = [str(part) for part in issue.get("loc", ())]
        if location and location[0] in _SOURCES:
            location = location[1:]
        message = str(issue.get("msg", "invalid")).removeprefix("Value error, ")
        found.append(FieldError(field=".".join(location) or "body", message=message))
    return found


async def _on_problem(request: Request, error: Exception) -> Response:
    assert isinstance(error, ProblemError)
    return problem_response(error.problem(request.url.path), error.headers)


async def _on_validation(request: Request, error: Exception) -> Response:
    assert isinstance(error, RequestValidationError)
    return problem_response(validation_problem(field_errors(error), request.url.path))


async def _on_http(request: Request, error: Exception) -> Response:
    assert isinstance(error, HTTPException)
    headers = dict(error.headers or {})
    if error.status_code == 405:
        headers["Allow"] = ", ".join(_allowed_methods(request))
    problem = Problem(
        type=PROBLEM_TYPE_PREFIX + f"http-{error.status_code}",
        title=str(error.detail),
        status=error.status_code,
        instance=request.url.path,
    )
    return problem_response(problem, headers)


def _allowed_methods(request: Request) -> list[str]:
    """Starlette names only the first route that matched the path; a client needs them all."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "__NONE__"})
        if match is not Match.NONE and isinstance(route, BaseRoute):
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


async def _on_unexpected(request: Request, error: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(ProblemError("unexpected error; it has been logged").problem())


async def _on_unavailable(request: Request, error: Exception) -> Response:
    logger.warning("backend unavailable on %s %s: %s", request.method, request.url.path, error)
    unavailable = BackendUnavailableError(f"the job backend cannot be reached: {error}")
    return problem_response(unavailable.problem(request.url.path), unavailable.headers)


def install_handlers(app: FastAPI, unavailable: tuple[type[Exception], ...]) -> None:
    for error_type in unavailable:
        app.add_exception_handler(error_type, _on_unavailable)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http)
    app.add_exception_handler(Exception, _on_unexpected)
