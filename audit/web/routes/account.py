"""Home, sign-in, sign-out and changing one's own password."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from audit.deps import BindDep, SessionDep
from audit.errors import NotAuthenticated
from audit.uow import unit_of_work
from audit.user import entry
from audit.user import service as users
from audit.user.routes import client_address
from audit.user.schemas import SignInForm
from audit.web import session as web_session
from audit.web.deps import PageUser, check_csrf
from audit.web.forms import model
from audit.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])


@router.get("/")
def home(request: Request, user: PageUser) -> Response:
    return render(request, "home.html", {})


def _safe_next(value: str | None) -> str:
    """Only a path on this site (never `//host` or a scheme) is a place to go back to."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value[:500]
    return "/"


@router.get("/signin")
def signin_page(request: Request, next: str | None = None, ended: bool = False) -> Response:
    return render(request, "signin.html", {"next": _safe_next(next), "ended": ended})


@router.post("/signin")
def signin(
    request: Request,
    bind: BindDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    """The API's sign-in (same back-off: a 429 page with Retry-After during back-off)."""
    request.state.signing_in = True
    form = model(SignInForm, {"username": username, "password": password})  # the API's form rules
    try:
        token, _ = entry.sign_in(
            bind,
            username=form.username,
            password=form.password,
            address=client_address(request),
            lifetime=web_session.idle_seconds(),
            channel="web",
        )
    except NotAuthenticated as exc:
        context = {"error": exc.detail, "next": _safe_next(next), "username": username}
        return render(request, "signin.html", context, status=401)
    response = RedirectResponse(_safe_next(next), status_code=303)
    web_session.set_cookie(response, web_session.SESSION_COOKIE, web_session.cookie_value(token))
    return response


@router.post("/signout")
def signout(request: Request, session: SessionDep, user: PageUser) -> Response:
    users.sign_out(session, token=request.state.token, user=user)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(web_session.SESSION_COOKIE, path="/")
    return response


@router.get("/account/password")
def password_page(request: Request, user: PageUser) -> Response:
    return render(request, "password.html", {})


@router.post("/account/password")
def change_password(
    request: Request,
    bind: BindDep,
    user: PageUser,
    current_password: Annotated[str, Form(max_length=1024)],
    new_password: Annotated[str, Form(max_length=256)],
    new_password_again: Annotated[str, Form(max_length=256)],
) -> Response:
    """Re-enter the current password (checked with the sign-in back-off), then set the new one;
    every other session of the user ends."""
    if new_password != new_password_again:
        return render(request, "password.html", {"error": "the two new passwords differ"}, status=422)
    request.state.signing_in = True  # a wrong current password is an error on this page, not a sign-out
    checked = model(SignInForm, {"username": user.username, "password": current_password})
    try:
        entry.authenticate(
            bind, username=user.username, password=checked.password, address=client_address(request)
        )
    except NotAuthenticated:
        return render(request, "password.html", {"error": "the current password is wrong"}, status=401)
    with unit_of_work(bind) as session:
        users.change_own_password(
            session, user=user, new_password=new_password, keep_token=request.state.token
        )
    return render(request, "password.html", {"done": True})
