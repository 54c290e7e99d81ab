"""Adds the console, its static files, the offline API docs and their headers to the app."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api_service.console.docs import install_docs
from api_service.console.rendering import PREFIX, STATIC_DIR, SecurityHeadersMiddleware, install_error_pages
from api_service.console.router import router


def install_console(app: FastAPI) -> None:
    """Call after the API's routers and error handlers; the app must be built with docs_url=None."""
    install_docs(app)
    # Before the router: its catch-all 404 route would otherwise shadow the static files.
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC_DIR), name="console-static")
    # The router's last route is the console's catch-all 404.
    app.include_router(router)
    install_error_pages(app)
    app.add_middleware(SecurityHeadersMiddleware)
