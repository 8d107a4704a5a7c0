"""The provider's pages: the sign-off queue and the delegations to coders."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from audit.delegation.schemas import DelegationCreate
from audit.delegation.service import grant_delegation, is_active, list_delegations, revoke_delegation
from audit.deps import BindDep, SessionDep
from audit.errors import DomainError
from audit.inputs import RevokeIn
from audit.models import User, utcnow
from audit.policy.runtime import get_compliance
from audit.uow import unit_of_work
from audit.web.deps import PageUser, check_csrf, listing, require_role
from audit.web.encounter_page import people
from audit.web.forms import model
from audit.web.queries import Filters, encounter_page
from audit.web.templating import render
from audit.web.views import list_viewed

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
QUEUE_COLUMNS = ("dos", "external_id", "patient_ref", "status", "created")
SYSTEMS = ("CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS")


@router.get("/provider/queue")
def queue(request: Request, session: SessionDep, user: PageUser) -> Response:
    """Encounters awaiting this provider's attestation (open or amended), oldest first."""
    require_role(user, "provider", "sign-off queue")
    lst = listing(request, QUEUE_COLUMNS, default="dos")
    page = encounter_page(session, user, Filters(), lst, statuses=("open", "amended"), own=True)
    rows = page.rows
    list_viewed(session, user=user, scope=page.scope, page="provider.queue", filters={}, rows=len(rows))
    today = utcnow().date()
    days = get_compliance().attestation.deadline_days
    items = [
        {"e": e, "since": (today - e.date_of_service).days, "due": e.date_of_service + timedelta(days=days)}
        for e, _ in rows
    ]
    context = {"items": items, "total": page.total, "capped": page.capped, "lst": lst, "today": today}
    return render(request, "queue.html", context)


def _coders(session: SessionDep) -> list[User]:
    """Active coders by name, to choose from (names and credentials only: no data of theirs)."""
    stmt = select(User).where(col(User.is_active).is_(True)).order_by(col(User.display_name)).limit(500)
    return [u for u in session.exec(stmt).all() if "coder" in u.roles]


def _delegations_page(
    request: Request, session: SessionDep, user: PageUser, error: DomainError | None = None, status: int = 200
) -> Response:
    require_role(user, "provider", "delegations")
    lst = listing(request, ("coder", "granted", "until", "state"), default="granted", desc=True)
    rows = list_delegations(session, user=user, provider_id=user.id, limit=500)
    names = people(session, {d.coder_id for d in rows})
    now = utcnow()
    keys = {
        "coder": lambda d: names[d.coder_id].name.lower() if d.coder_id in names else "",
        "granted": lambda d: d.granted_at,
        "until": lambda d: d.valid_until,
        "state": lambda d: is_active(d, now),
    }
    rows.sort(key=keys[lst.sort], reverse=lst.desc)
    total = len(rows)
    shown = rows[lst.offset : lst.offset + lst.per]
    context = {
        "rows": [{"d": d, "coder": names.get(d.coder_id), "active": is_active(d, now)} for d in shown],
        "total": total,
        "lst": lst,
        "coders": _coders(session),
        "systems": SYSTEMS,
        "error": error,
        "default_until": (now + timedelta(days=90)).date().isoformat(),
    }
    return render(request, "delegations.html", context, status=status)


@router.get("/provider/delegations")
def delegations(request: Request, session: SessionDep, user: PageUser) -> Response:
    return _delegations_page(request, session, user)


@router.post("/provider/delegations")
def grant(
    request: Request,
    bind: BindDep,
    session: SessionDep,
    user: PageUser,
    coder_id: Annotated[str, Form(max_length=36)],
    valid_until: Annotated[str, Form(max_length=10)],
    code_systems: Annotated[list[str], Form(max_length=4)] = [],  # noqa: B006
) -> Response:
    require_role(user, "provider", "delegations")
    try:
        with unit_of_work(bind) as s:
            until = _end_of_day(valid_until)
            data = model(
                DelegationCreate, {"coder_id": coder_id, "code_systems": code_systems, "valid_until": until}
            )
            grant_delegation(s, user=user, data=data)
    except DomainError as exc:
        return _delegations_page(request, session, user, exc, exc.status_code)
    return RedirectResponse("/provider/delegations", status_code=303)


def _end_of_day(text: str) -> str:
    from audit.errors import InvalidInput

    try:
        day = datetime.strptime(text, "%Y-%m-%d")
    except ValueError as exc:
        raise InvalidInput("valid_until", "valid_until must be a date, YYYY-MM-DD") from exc
    return day.replace(hour=23, minute=59, second=59).isoformat() + "Z"


@router.post("/provider/delegations/{delegation_id}/revoke")
def revoke(
    request: Request,
    bind: BindDep,
    session: SessionDep,
    user: PageUser,
    delegation_id: str,
    reason: Annotated[str, Form(max_length=500)] = "",
) -> Response:
    require_role(user, "provider", "delegations")
    try:
        with unit_of_work(bind) as s:
            revoke_delegation(
                s, user=user, delegation_id=delegation_id, reason=model(RevokeIn, {"reason": reason}).reason
            )
    except DomainError as exc:
        return _delegations_page(request, session, user, exc, exc.status_code)
    return RedirectResponse("/provider/delegations", status_code=303)
