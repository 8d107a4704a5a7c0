"""Errors on web pages: the same status and message as the API's, as an HTML page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from audit.errors import DomainError, retry_after


class SignInRequired(Exception):
    """A page needs a signed-in user: redirect to the sign-in page (then back). `ended`: there was a
    session, and it ended (idle timeout, maximum age, sign-out elsewhere, password change)."""

    def __init__(self, ended: bool = False) -> None:
        super().__init__("sign in first")
        self.ended = ended


def sign_in_redirect(request: Request, ended: bool = False) -> Response:
    target = request.url.path if request.method == "GET" else "/"
    if request.url.query and request.method == "GET":
        target += "?" + request.url.query
    flag = "&ended=1" if ended else ""
    response = RedirectResponse(f"/signin?next={quote(target, safe='')}{flag}", status_code=303)
    response.headers["Cache-Control"] = "no-store"
    return response


def error_page(request: Request, status: int, kind: str, detail: str, **extra: Any) -> HTMLResponse:
    from audit.web.templating import render

    context = {"status": status, "kind": kind, "detail": detail, "field": extra.get("field")}
    response = render(request, "error.html", context, status=status)
    wait = extra.get("retry_after")
    if isinstance(wait, int):
        response.headers["Retry-After"] = str(wait)
    return response


def domain_error_page(request: Request, exc: DomainError) -> Response:
    if exc.status_code == 401 and not getattr(request.state, "signing_in", False):
        return sign_in_redirect(request)
    response = error_page(request, exc.status_code, exc.kind, exc.detail, field=exc.extra.get("field"))
    wait = retry_after(exc)
    if wait is not None:
        response.headers["Retry-After"] = str(wait)
    return response
