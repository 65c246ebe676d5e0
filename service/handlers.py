"""Exception handlers: every error leaves as problem+json."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.routing import Match

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
_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")

NotFoundExplainer = Callable[[str], ProblemError | None]
"""Says why a path that matched no route is wrong (e.g. not a job id), or returns None."""


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


def _on_http(
    explain_not_found: NotFoundExplainer,
) -> Callable[[Request, Exception], Awaitable[Response]]:
    async def on_http(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if error.status_code == 404:
            explained = explain_not_found(_route_path(request))
            if explained is not None:
                return problem_response(explained.problem(request.url.path), explained.headers)
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

    return on_http


def _route_path(request: Request) -> str:
    path: str = request.scope["path"]
    return path.removeprefix(request.scope.get("root_path", ""))


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path; Starlette names only the first route's.

    Each method is tried for real: FastAPI keeps included routers as lazy groups with no
    ``methods`` of their own, so reading the routes' methods misses all of them.
    """
    allowed = set()
    for method in _METHODS:
        probe = {
            "type": "http",
            "method": method,
            "path": request.scope["path"],
            "root_path": request.scope.get("root_path", ""),
            "headers": request.scope.get("headers", []),
        }
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")  # HeadMiddleware answers HEAD wherever GET is answered
    return sorted(allowed)


async def _on_unexpected(request: Request, error: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem_response(ProblemError("unexpected error; it has been logged").problem())


async def _on_unavailable(request: Request, error: Exception) -> Response:
    logger.warning("backend unavailable on %s %s: %s", request.method, request.url.path, error)
    unavailable = BackendUnavailableError(
        f"the job backend cannot be reached: {_public_reason(error)}"
    )
    return problem_response(unavailable.problem(request.url.path), unavailable.headers)


def _public_reason(error: Exception) -> str:
    """What a client may read of ``error``: an OSError's reason without the server path it
    names (an upload's or a result's place on disk); the log keeps it whole."""
    if isinstance(error, OSError) and error.filename is not None:
        return error.strerror or type(error).__name__
    return str(error)


def _explains_nothing(path: str) -> None:
    return None


def install_handlers(
    app: FastAPI,
    unavailable: tuple[type[Exception], ...],
    explain_not_found: NotFoundExplainer = _explains_nothing,
) -> None:
    for error_type in unavailable:
        app.add_exception_handler(error_type, _on_unavailable)
    app.add_exception_handler(ProblemError, _on_problem)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(HTTPException, _on_http(explain_not_found))
    app.add_exception_handler(Exception, _on_unexpected)
