"""Interactive API docs (Swagger UI at /docs, ReDoc at /redoc) that work offline.

FastAPI's own pages load their scripts from a CDN, so they are blank on a machine without
internet access. The same assets ship in the ``fastapi-offline`` package; we serve them from
a fixed list under /docs/assets, so no request can name any other file.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
ASSETS_PATH = "/docs/assets"
ASSET_MEDIA_TYPES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}


def install_docs(app: FastAPI) -> None:
    """Add /docs, /redoc and their assets; build the app with ``docs_url=redoc_url=None``."""
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None,
        )

    async def redoc(request: Request) -> Response:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            with_google_fonts=False,
        )

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in ASSET_MEDIA_TYPES:
            raise HTTPException(404)
        return FileResponse(
            ASSETS_DIR / name,
            media_type=ASSET_MEDIA_TYPES[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )

    app.add_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_route(ASSETS_PATH + "/{name}", asset, methods=["GET"], include_in_schema=False)
