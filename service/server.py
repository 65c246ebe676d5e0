"""``offload serve``: uvicorn with bounded requests, exiting 0 after a clean SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import FrameType

import uvicorn

from schemas.files import UPLOAD_PATH
from service.http_limits import limited_http_protocol
from service.settings import Settings

STARTUP_FAILURE = 3
"""uvicorn's exit status when the app could not start."""


class _Server(uvicorn.Server):
    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        # uvicorn waits for open responses before it stops; event streams and long-polls
        # would hold it up until their jobs finish. End them: clients come back.
        from brokers import backend

        try:
            asyncio.get_running_loop().call_soon_threadsafe(backend.events.end_all)
        except RuntimeError:  # not inside the loop
            backend.events.end_all()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        with super().capture_signals():
            yield
            # Once shut down, uvicorn raises the SIGTERM or SIGINT it handled again, so the
            # process dies of it (status 143) after a clean stop; a clean stop exits 0.
            self._captured_signals.clear()


def run(host: str, port: int, access_log: bool, settings: Settings) -> int:
    """Serve the API until SIGTERM or SIGINT; the exit status."""
    config = uvicorn.Config(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=None,
        access_log=access_log,
        http=limited_http_protocol(
            settings.max_header_bytes,
            settings.request_timeout_seconds,
            upload_paths=frozenset({UPLOAD_PATH}),
            upload_timeout=settings.upload_timeout_seconds,
        ),
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 2,
    )
    server = _Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 0 if server.started else STARTUP_FAILURE
