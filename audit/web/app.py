"""Mount the web pages on the application: routers, static files, the locally served API docs."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
# Paths that are not pages: they keep the API's JSON errors.
NOT_PAGES = ("/api/", "/fhir/", "/openapi.json", "/metrics", "/healthz", "/readyz")


def is_page(request: Request) -> bool:
    """Whether errors on this request render as an HTML page (every path but the API's)."""
    path = request.url.path
    return not path.startswith(NOT_PAGES) and path not in ("/metrics", "/healthz", "/readyz")


def install(app: FastAPI, *, docs: bool) -> None:
    from audit.web.routes import ROUTERS
    from audit.web.routes.docs import router as docs_router

    for router in ROUTERS:
        app.include_router(router)
    if docs:
        app.include_router(docs_router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
