"""``offload serve`` without its embedded worker and scheduler: the submit path alone.

Same uvicorn settings and logging as ``service.cli`` uses for ``offload serve``; the only
difference is ``create_app(embedded_worker=False)``, so jobs are stored and queued but
nothing in this process runs them::

    OFFLOAD_DATA_DIR=/tmp/x .venv/bin/python -m bench.serve_no_worker --port 8002
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

from service.app import create_app
from service.logs import configure_logging
from service.settings import get_settings


def create_app_without_worker() -> FastAPI:
    return create_app(embedded_worker=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args()
    settings = get_settings()
    configure_logging(settings)
    uvicorn.run(
        "bench.serve_no_worker:create_app_without_worker",
        factory=True,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=int(settings.shutdown_grace_seconds) + 2,
    )


if __name__ == "__main__":
    main()
