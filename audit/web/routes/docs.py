"""/docs (Swagger UI) and /redoc, served from this package: they work with no internet.

Swagger UI's files come from the `swagger-ui-bundle` package; ReDoc's standalone bundle is vendored
in static/redoc (see its LICENSE). Their start-up scripts are files too (the CSP forbids inline)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

from audit.errors import NotFound
from audit.web.templating import TEMPLATES

router = APIRouter(include_in_schema=False)
SWAGGER_FILES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png"})


@router.get("/docs", response_class=HTMLResponse)
def swagger(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "docs/swagger.html", {})


@router.get("/docs/assets/{name}")
def swagger_asset(name: str) -> FileResponse:
    if name not in SWAGGER_FILES:
        raise NotFound(f"no asset {name!r}")
    return FileResponse(str(swagger_ui_path / name), headers={"Cache-Control": "public, max-age=86400"})


@router.get("/redoc", response_class=HTMLResponse)
def redoc(request: Request) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(request, "docs/redoc.html", {})
