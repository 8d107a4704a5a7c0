"""Web sessions: the cookie, the idle timeout, and CSRF tokens.

A web session is a server-side bearer token (`api_token`, issued by the same sign-in as the API, so
the back-off rules are the API's). The cookie holds the token plus a keyed signature that only web
sign-ins carry, so an API bearer token cannot be replayed as a cookie to get a sliding lifetime.
The token's `expires_at` is the idle deadline: each page request moves it to now + idle timeout,
never past `issued_at` + the session maximum (both in compliance.yaml `web:`). Sign-out revokes it.

CSRF: every form carries `csrf_token` = HMAC(secret, basis), the basis being the session token or,
before sign-in, a random pre-session cookie. A POST without the right token is refused (403) and
recorded (`web.csrf` denied).
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from fastapi import Request
from sqlalchemy import update
from sqlmodel import Session, col, select

from audit.config import get_settings
from audit.errors import NotAuthenticated
from audit.models import ApiToken, utcnow
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser
from audit.security import keyed_digest, token_digest
from audit.user.service import resolve_token

SESSION_COOKIE = "audit_session"
PRESESSION_COOKIE = "audit_pre"
CSRF_FIELD = "csrf_token"


def idle_seconds() -> int:
    return get_compliance().web.idle_timeout_minutes * 60


def _signature(token: str) -> str:
    return keyed_digest("web-session", token)[:32]


def cookie_value(token: str) -> str:
    return f"{token}.{_signature(token)}"


def token_of(cookie: str | None) -> str | None:
    """The session token in a cookie, if the cookie was made by a web sign-in."""
    if not cookie or len(cookie) > 200 or "." not in cookie:
        return None
    token, _, signature = cookie.rpartition(".")
    return token if hmac.compare_digest(signature, _signature(token)) else None


def secure_cookies() -> bool:
    return get_settings().env != "development"


def set_cookie(response: object, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(  # type: ignore[attr-defined]
        name,
        value,
        max_age=max_age,
        httponly=True,
        secure=secure_cookies(),
        samesite="strict",
        path="/",
    )


@dataclass(frozen=True)
class WebSession:
    user: CurrentUser
    token: str


def open_session(session: Session, token: str, now: datetime | None = None) -> WebSession:
    """The signed-in user of a session token (refused when revoked, idle too long or past its
    maximum), and the idle deadline moved forward."""
    now = now or utcnow()
    user = resolve_token(session, token, now)
    row = session.exec(select(ApiToken).where(ApiToken.token_hash == token_digest(token))).one()
    cap = row.issued_at + timedelta(hours=get_compliance().web.max_session_hours)
    deadline = min(now + timedelta(seconds=idle_seconds()), cap)
    if deadline <= now:
        raise NotAuthenticated("the session has ended")
    if deadline > row.expires_at + timedelta(seconds=5):  # skip the write when nothing moves
        session.execute(update(ApiToken).where(col(ApiToken.id) == row.id).values(expires_at=deadline))
    return WebSession(CurrentUser.of(user), token)


def csrf_basis(request: Request) -> str | None:
    token = token_of(request.cookies.get(SESSION_COOKIE))
    if token:
        return "s:" + token_digest(token)
    pre = request.cookies.get(PRESESSION_COOKIE)
    return "p:" + pre if pre and 16 <= len(pre) <= 64 else None


def csrf_for(basis: str) -> str:
    return keyed_digest("csrf", basis)


def csrf_valid(request: Request, supplied: object) -> bool:
    basis = csrf_basis(request)
    if basis is None or not isinstance(supplied, str) or len(supplied) != 64:
        return False
    return hmac.compare_digest(supplied, csrf_for(basis))


def new_presession() -> str:
    return secrets.token_urlsafe(24)
