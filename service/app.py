"""The FastAPI application: ``create_app`` is what uvicorn and taskiq-fastapi load."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from brokers.factory import Backend
from schemas.files import UPLOAD_PATH
from service.body_limit import BodyLimitMiddleware
from service.docs import install_docs
from service.embedded import EmbeddedRuntime
from service.errors import without_generic_validation_errors
from service.handlers import install_handlers
from service.head import HeadMiddleware
from service.routes import events, files, health, jobs, qr, webhooks
from service.routes.submit import kind_router
from tasks.kinds import declared_kinds

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Offload takes heavy work off the request path: submit a job, get its id at once, "
    "follow its status and download the result. Errors are RFC 9457 problem details."
)


def create_app(backend: Backend | None = None, *, embedded_worker: bool | None = None) -> FastAPI:
    if backend is None:
        from brokers import backend as configured

        backend = configured
    run_embedded = backend.embedded if embedded_worker is None else embedded_worker

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if backend.broker.is_worker_process:
            yield
            return
        await backend.broker.startup()
        runtime = EmbeddedRuntime(backend, app) if run_embedded else None
        app.state.runtime = runtime
        if runtime is not None:
            await runtime.start()
        logger.info(
            "Offload API ready on the %s backend; no API keys are configured, so every "
            "caller is the local tenant",
            backend.settings.backend,
        )
        try:
            yield
        finally:
            await backend.events.close()
            if runtime is not None:
                await runtime.stop()
            await backend.broker.shutdown()

    app = FastAPI(
        title="Offload",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        separate_input_output_schemas=False,
        docs_url=None,
        redoc_url=None,
    )
    app.state.backend = backend
    install_handlers(app, backend.unavailable_errors, explain_not_found=jobs.explain_unrouted)
    route_limits = {
        ("POST", kind.path): max(kind.max_body_bytes, backend.settings.max_body_bytes)
        for kind in declared_kinds()
        if kind.max_body_bytes is not None
    }
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=backend.settings.max_body_bytes,
        streamed=frozenset({("POST", UPLOAD_PATH)}),
        route_limits=route_limits,
    )
    app.add_middleware(HeadMiddleware)
    install_docs(app)
    generate_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        return without_generic_validation_errors(generate_openapi())

    app.openapi = openapi  # type: ignore[method-assign]
    # The kinds declared by now: importing tasks.kinds found every module in tasks/.
    app.include_router(kind_router(declared_kinds()))
    app.include_router(jobs.router)
    app.include_router(events.router)
    app.include_router(files.router)
    app.include_router(qr.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    return app
