"""JSON request bodies: another media type gets 415, and an unreadable body says why."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from service.errors import FieldError, UnsupportedMediaTypeError, documented

JSON_MEDIA_TYPE = "application/json"

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class JsonBodyRoute(APIRoute):
    """A route whose body is JSON: it checks the media type and explains parse failures.

    FastAPI reads a form or text body as raw bytes and then reports a type error on the body
    model; it reports a syntax error at a character offset named like a field; and it turns a
    number too long for Python or a too deep nesting into "error parsing the body". Each of
    these becomes a problem that names the real fault.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        if self.body_field is not None:
            self.responses = {**documented(UnsupportedMediaTypeError), **self.responses}

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def handle_json(request: Request) -> Response:
            content_type = request.headers.get("content-type")
            if await request.body() and not _is_json(content_type):
                raise _unsupported(content_type)
            try:
                return await handler(request)
            except (RequestValidationError, HTTPException) as error:
                fault = _unreadable_json(error.__cause__)
                if fault is None:
                    raise
                raise RequestValidationError(
                    [{"loc": ("body",), "msg": fault, "type": "json_invalid"}]
                ) from error

        return handle_json


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == JSON_MEDIA_TYPE or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _unsupported(content_type: str | None) -> UnsupportedMediaTypeError:
    sent = "is missing" if content_type is None else f"is {content_type!r}"
    return UnsupportedMediaTypeError(
        f"the body must be {JSON_MEDIA_TYPE}",
        errors=[FieldError(field="content-type", message=f"{sent}; send {JSON_MEDIA_TYPE}")],
    )


def _unreadable_json(cause: BaseException | None) -> str | None:
    """What is wrong with a body that json.loads refused, or None for any other failure."""
    if isinstance(cause, json.JSONDecodeError):
        return f"is not valid JSON: {cause.msg} (line {cause.lineno}, column {cause.colno})"
    if isinstance(cause, UnicodeDecodeError):
        return f"is not UTF-8: byte {cause.object[cause.start]:#04x} at offset {cause.start}"
    if isinstance(cause, RecursionError):
        return "is nested too deeply: too many arrays or objects inside one another"
    if isinstance(cause, ValueError) and "digits" in str(cause):
        return (
            "has a number too large: integers may have at most "
            f"{sys.get_int_max_str_digits()} digits"
        )
    return None
