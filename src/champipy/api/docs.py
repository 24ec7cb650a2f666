"""/docs without a CDN: swagger-ui 5 from a package (fastapi-offline ships its assets), under
a Content-Security-Policy that lets only those assets and the page's own start-up script run.

FastAPI's default /docs loads swagger-ui from a CDN and /redoc likewise; a deployment without
internet gets a blank page, and any page that runs a CDN's script is as safe as that CDN.
"""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.S)


def _script_hashes(html: str) -> str:
    digests = (hashlib.sha256(script.encode()).digest() for script in _INLINE_SCRIPT.findall(html))
    return " ".join(f"'sha256-{base64.b64encode(digest).decode()}'" for digest in digests)


def docs_policy(html: str) -> str:
    return "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' {_script_hashes(html)}",
            "style-src 'self' 'unsafe-inline'",  # swagger-ui sets style attributes as it renders
            "img-src 'self' data:",
            "connect-src 'self'",
            "object-src 'none'",
            "frame-ancestors 'none'",
            "form-action 'self'",
            "base-uri 'none'",
        ]
    )


router = APIRouter(include_in_schema=False)


# A module-level endpoint reading its app from the request: FastAPI caches facts about every
# endpoint callable, so a closure per app would keep each app (and its container) alive.
@router.get("/docs")
async def docs(request: Request) -> HTMLResponse:
    app = request.app
    root = request.scope.get("root_path", "").rstrip("/")
    page = get_swagger_ui_html(
        openapi_url=f"{root}{app.openapi_url}",
        title=f"{app.title} - API",
        swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
        swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
        swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge fetched from swagger.io
    )
    page.headers["Content-Security-Policy"] = docs_policy(bytes(page.body).decode())
    page.headers["X-Frame-Options"] = "DENY"
    return page


def install_docs(app: FastAPI) -> None:
    """``FastAPI(docs_url=None, redoc_url=None)`` first; this adds /docs and its assets."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    app.include_router(router)
