"""`/docs` (Swagger UI) served entirely from Postgate, so it works offline.

FastAPI's default page loads its script and CSS from a CDN and stays blank without internet.
The assets come from the `fastapi-offline` package (a maintained wheel that ships Swagger UI) and
are mounted under /docs-static; the page is FastAPI's own HTML pointed at them. Its CSP allows
only this host, and its one inline script by hash. ReDoc is not served: its bundle fetches its
logo from cdn.redoc.ly, and no page of Postgate may reach another host.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_STATIC = "/docs-static"
ASSETS_DIR = Path(str(files("fastapi_offline").joinpath("static")))
INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def docs_csp(html: str) -> str:
    """Only this host; the page's inline scripts by SHA-256; inline styles (Swagger UI sets some)."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'" for body in INLINE_SCRIPT.findall(html)
    )
    return (
        f"default-src 'self'; script-src 'self' {hashes}; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
    )


def _page(response: HTMLResponse) -> Callable[[], HTMLResponse]:
    """A fresh response per request with the page's HTML and its CSP, both computed once."""
    html = bytes(response.body).decode()
    headers = {"Content-Security-Policy": docs_csp(html)}
    return lambda: HTMLResponse(html, headers=headers)


def install_docs(app: FastAPI) -> None:
    """Mount the assets and add /docs and /docs/oauth2-redirect (the app is built with docs_url=None)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=ASSETS_DIR), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"
    swagger = _page(
        get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - API docs",
            swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            oauth2_redirect_url=redirect_url,
            # No validator badge: it would send the spec's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
        )
    )
    oauth_redirect = _page(get_swagger_ui_oauth2_redirect_html())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return swagger()

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return oauth_redirect()
