"""HEAD wherever GET is answered: the same status and headers, no body (RFC 9110, 9.3.2)."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class HeadMiddleware:
    """Runs a HEAD request as its GET and drops the body on the way out.

    FastAPI routes answer only the methods they declare, and declaring HEAD beside GET would
    put a second operation with the same id in the OpenAPI spec; answering here keeps one
    definition of every GET, ETag and 304 included.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.start":
                await send(message)
            elif not message.get("more_body", False):
                await send({"type": "http.response.body", "body": b"", "more_body": False})

        # Offering the pathsend extension lets a file response name its file instead of
        # reading it all for a body that is dropped anyway.
        extensions = {**scope.get("extensions", {}), "http.response.pathsend": {}}
        as_get = {**scope, "method": "GET", "extensions": extensions}
        await self.app(as_get, receive, send_headers_only)
