"""What a page route depends on: the signed-in user (from the session cookie), the CSRF check of
every form post, role gates, and validated sort/page parameters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlmodel import col, select

from audit.deps import BindDep
from audit.errors import Forbidden, InvalidInput, NotAuthenticated
from audit.ledger import service as ledger
from audit.ledger.events import DENIED, Actor, EventDraft
from audit.models import ApiToken, User
from audit.principal import CurrentUser
from audit.security import token_digest
from audit.uow import unit_of_work
from audit.web import session as web_session
from audit.web.errors import SignInRequired

PER_PAGE = (10, 25, 50, 100)
MAX_PAGE = 100_000


def page_user(request: Request, bind: BindDep) -> CurrentUser:
    """The signed-in user; a page without one redirects to the sign-in page. The idle deadline moves
    in its own short transaction (so a page's later units of work never wait on it)."""
    token = web_session.token_of(request.cookies.get(web_session.SESSION_COOKIE))
    if token is None:
        raise SignInRequired()
    try:
        with unit_of_work(bind) as session:
            opened = web_session.open_session(session, token)
    except NotAuthenticated as exc:
        raise SignInRequired(ended=True) from exc
    request.state.user = opened.user
    request.state.token = opened.token
    return opened.user


PageUser = Annotated[CurrentUser, Depends(page_user)]


async def check_csrf(request: Request, bind: BindDep) -> None:
    """Every POST to a page carries the form's CSRF token; a missing or wrong one is refused (403)
    and, for a signed-in user, recorded as a denied `web.csrf` event naming them. An anonymous caller's
    refusal is not recorded: otherwise anyone could append to the ledger without limit by posting
    forms (failed sign-ins, the other anonymous attempt, are folded into counted events for that reason)."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    form = await request.form()
    if web_session.csrf_valid(request, form.get(web_session.CSRF_FIELD)):
        return
    path = request.url.path[:200]
    token = web_session.token_of(request.cookies.get(web_session.SESSION_COOKIE))

    def record(session: object) -> None:
        if not token:
            return  # anonymous: refused, but nothing stored (no one's session was at stake)
        row = session.exec(  # type: ignore[attr-defined]
            select(User)
            .join(ApiToken, col(ApiToken.user_id) == col(User.id))
            .where(ApiToken.token_hash == token_digest(token))
        ).first()
        if row is None:
            return  # a cookie that names no session: anonymous too
        actor = Actor(row.id, None, row.username)
        ledger.append_one(
            session,  # type: ignore[arg-type]
            EventDraft(
                type="web.csrf",
                actor=actor,
                outcome=DENIED,
                subject_type="page",
                subject_id=path[:64],
                detail={"path": path, "method": request.method},
            ),
        )

    with unit_of_work(bind):
        raise Forbidden(
            "the form's security token is missing or wrong: reload the page and try again", field="csrf_token"
        ).recording(record)


def require_role(user: CurrentUser, role: str, page: str) -> None:
    """A page made for one role (a provider's queue, a coder's worklist). The data on it is still
    filtered by the policy's ReadScope; this only keeps people on the pages made for them."""
    if user.has(role):
        return
    event = EventDraft(
        type="web.page",
        actor=user.actor(),
        outcome=DENIED,
        subject_type="page",
        subject_id=page,
        detail={"needs_role": role},
    )
    error = Forbidden(f"the {page} page is for users with the {role} role", rule_ids=["web.role_page"])
    raise error.recording(lambda s: ledger.append_one(s, event))


@dataclass(frozen=True)
class Listing:
    """A validated sort and page of a table: `sort` is one of the table's columns."""

    sort: str
    desc: bool
    page: int
    per: int

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per


def listing(request: Request, columns: tuple[str, ...], default: str, desc: bool = False) -> Listing:
    """Read `sort`, `dir`, `page`, `per` from the query; a hostile value is a 422 naming the field."""
    q = request.query_params
    sort = q.get("sort", default)
    if sort not in columns:
        raise InvalidInput("sort", f"sort must be one of: {', '.join(columns)}")
    direction = q.get("dir", "desc" if desc else "asc")
    if direction not in ("asc", "desc"):
        raise InvalidInput("dir", "dir must be asc or desc")
    page = _int(q.get("page", "1"), "page", 1, MAX_PAGE)
    per = _int(q.get("per", "25"), "per", 1, 100)
    if per not in PER_PAGE:
        raise InvalidInput("per", f"per must be one of {', '.join(map(str, PER_PAGE))}")
    return Listing(sort, direction == "desc", page, per)


def _int(value: str, field: str, low: int, high: int) -> int:
    if not (value.isascii() and value.isdigit()) or not low <= int(value) <= high:
        raise InvalidInput(field, f"{field} must be a whole number from {low} to {high}")
    return int(value)
