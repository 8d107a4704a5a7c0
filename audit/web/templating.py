"""Rendering pages: one Jinja2 environment (autoescaped), the base context every page gets."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from audit.web import nav
from audit.web import session as web_session

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M UTC")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str) and len(value) >= 16 and value[10] == "T":  # ledger timestamps
        return value[:16].replace("T", " ") + " UTC"
    return "" if value is None else str(value)


TEMPLATES.env.filters["when"] = _when


def with_query(request: Request, **changes: Any) -> str:
    """The current URL's query with some parameters changed (None drops one): sort and page links."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params)


def render(
    request: Request, template: str, context: dict[str, Any] | None = None, status: int = 200
) -> HTMLResponse:
    """The page, with the signed-in user (if any), the CSRF token for its forms, and helpers."""
    basis = web_session.csrf_basis(request)
    new_pre = None
    if basis is None:
        new_pre = web_session.new_presession()
        basis = "p:" + new_pre
    ctx = {
        "request": request,
        "me": getattr(request.state, "user", None),
        "csrf_token": web_session.csrf_for(basis),
        "with_query": lambda **kw: with_query(request, **kw),
        "links": nav.links(request, getattr(request.state, "user", None)),
        **(context or {}),
    }
    response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status)
    response.headers["Cache-Control"] = "no-store"  # pages hold patient-related data
    if new_pre:
        web_session.set_cookie(response, web_session.PRESESSION_COOKIE, new_pre)
    return response
