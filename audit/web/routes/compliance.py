"""Compliance pages: the dashboard, an encounter's timeline with its flags and notes, engagements."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlmodel import col, select

from audit.coding_audit.reports import follow_up_for_dashboard
from audit.deps import SessionDep
from audit.encounter import oversight
from audit.encounter.routes import NoteIn
from audit.engagement.schemas import EngagementCreate
from audit.engagement.service import is_live, list_engagements, open_engagement, revoke_engagement
from audit.errors import InvalidInput
from audit.inputs import BoundedDate, RevokeIn
from audit.models import Encounter, EncounterNote, User, utcnow
from audit.principal import CurrentUser
from audit.report.charts import bar_chart
from audit.report.dashboard import LIST_KEYS, DashboardRequest, build_dashboard, listings
from audit.report.service import ReportRequest, view_report_data
from audit.trail.service import verify_as
from audit.web.deps import PageUser, check_csrf, require_role
from audit.web.forms import model
from audit.web.tables import page_request, section_page
from audit.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
Text = Annotated[str, Form(min_length=1, max_length=2000)]
DEFAULT_DAYS = 30  # the dashboard's default: changes, late signatures, refusals of the last 30 days


def parse_date(value: str | None, field: str) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(field, f"{field} must be a date (YYYY-MM-DD)") from exc


def parse_id(value: str | None, field: str) -> str | None:
    if not value:
        return None
    if len(value) > 36:
        raise InvalidInput(field, f"{field} is not an id")
    return value


def users_with_role(session: SessionDep, role: str) -> list[User]:
    """People to choose by name (providers in a filter, auditors for an engagement); few hundred at most."""
    rows = session.exec(select(User).where(col(User.is_active)).order_by(col(User.display_name)).limit(2000))
    return [u for u in rows if role in (u.roles or [])]


@router.get("/compliance")
def dashboard(request: Request, session: SessionDep, user: PageUser) -> Response:
    require_role(user, "compliance", "compliance dashboard")
    q = request.query_params
    today = utcnow().date()
    sortable = {k: listing.sortable for k, listing in listings(today).items()}
    pages = {key: page_request(q, f"{key}_", per=10, sortable=sortable.get(key)) for key in LIST_KEYS}
    date_from, date_to = parse_date(q.get("from"), "from"), parse_date(q.get("to"), "to")
    recent = date_from is None and date_to is None  # the default view: what happened lately
    req = DashboardRequest(
        date_from=date_from,
        date_to=date_to,
        recent_days=DEFAULT_DAYS if recent else None,
        provider_id=parse_id(q.get("provider_id"), "provider_id"),
        em_provider_id=parse_id(q.get("em_provider_id"), "em_provider_id"),
        pages=pages,
    )
    board = build_dashboard(session, user=user, req=req)
    follow_up = follow_up_for_dashboard(
        session, user=user, date_from=date_from, date_to=date_to, provider_id=req.provider_id
    )
    return render(
        request,
        "compliance_dashboard.html",
        {
            "board": board,
            "follow_up": follow_up.main,
            "charts": [bar_chart(c) for c in board.charts],
            "providers": users_with_role(session, "provider"),
            "q": q,
            "recent": recent,
            "default_days": DEFAULT_DAYS,
        },
    )


@router.post("/compliance/verify")
def verify(session: SessionDep, user: PageUser) -> Response:
    require_role(user, "compliance", "ledger verification")
    verify_as(session, user=user)
    return RedirectResponse("/compliance#ledger", status_code=303)


def _flags(session: SessionDep, encounter_id: str) -> list[dict[str, object]]:
    notes = session.exec(
        select(EncounterNote, User.display_name)
        .join(User, col(User.id) == col(EncounterNote.author_id))
        .where(EncounterNote.encounter_id == encounter_id)
        .order_by(col(EncounterNote.created_at))
    ).all()
    return [
        {
            "note": note,
            "author": author,
            "resolved": note.kind == "flag" and oversight.resolution_seq(session, note) is not None,
        }
        for note, author in notes
    ]


@router.get("/compliance/encounters/{encounter_id}")
def timeline(request: Request, session: SessionDep, user: PageUser, encounter_id: str) -> Response:
    require_role(user, "compliance", "encounter timeline")
    report, _, _ = view_report_data(
        session, user=user, req=ReportRequest("encounter-timeline", encounter_id=encounter_id, format="html")
    )
    encounter = session.get(Encounter, encounter_id)
    provider = session.get(User, encounter.rendering_provider_id) if encounter else None
    tables = [section_page(s, request.query_params, f"{s.key}_") for s in report.sections]
    return render(
        request,
        "timeline.html",
        {
            "encounter": encounter,
            "provider": provider,
            "tables": tables,
            "notes": _flags(session, encounter_id),
        },
    )


def _back(encounter_id: str) -> RedirectResponse:
    return RedirectResponse(f"/compliance/encounters/{encounter_id}#notes", status_code=303)


@router.post("/compliance/encounters/{encounter_id}/flags")
def add_flag(session: SessionDep, user: PageUser, encounter_id: str, text: Text) -> Response:
    text = model(NoteIn, {"text": text}).text
    oversight.add_note(session, user=user, encounter_id=encounter_id[:36], kind="flag", text=text)
    return _back(encounter_id)


@router.post("/compliance/encounters/{encounter_id}/annotations")
def annotate(session: SessionDep, user: PageUser, encounter_id: str, text: Text) -> Response:
    text = model(NoteIn, {"text": text}).text
    oversight.add_note(session, user=user, encounter_id=encounter_id[:36], kind="annotation", text=text)
    return _back(encounter_id)


@router.post("/compliance/flags/{flag_id}/resolve")
def resolve(session: SessionDep, user: PageUser, flag_id: str, reason: Text) -> Response:
    reason = model(RevokeIn, {"reason": reason}).reason
    note = oversight.resolve_flag(session, user=user, flag_id=flag_id[:36], reason=reason)
    return _back(note.encounter_id)


# --- engagements ---------------------------------------------------------------------------------------


def engagement_rows(session: SessionDep, user: CurrentUser) -> list[dict[str, object]]:
    now = utcnow()
    names = {u.id: u.display_name for u in session.exec(select(User).limit(5000))}
    return [
        {
            "e": e,
            "auditor": names.get(e.auditor_id, ""),
            "providers": ", ".join(sorted(names.get(p, p) for p in e.provider_ids)) or "All providers",
            "live": is_live(e, now),
        }
        for e in list_engagements(session, user=user)
    ]


@router.get("/compliance/engagements")
def engagements(request: Request, session: SessionDep, user: PageUser) -> Response:
    require_role(user, "compliance", "engagements")
    return render(
        request,
        "engagements.html",
        {
            "rows": engagement_rows(session, user),
            "auditors": users_with_role(session, "auditor"),
            "providers": users_with_role(session, "provider"),
        },
    )


@router.post("/compliance/engagements")
def open_one(
    session: SessionDep,
    user: PageUser,
    auditor_id: Annotated[str, Form(max_length=36)],
    date_from: Annotated[BoundedDate, Form()],
    date_to: Annotated[BoundedDate, Form()],
    expires_on: Annotated[BoundedDate, Form()],
    purpose: Annotated[str, Form(max_length=500)] = "",
    provider_ids: Annotated[list[str] | None, Form(max_length=200)] = None,
) -> Response:
    fields = {
        "auditor_id": auditor_id,
        "date_from": date_from,
        "date_to": date_to,
        "provider_ids": list(provider_ids or []),
        "expires_at": datetime.combine(expires_on, time.max, tzinfo=UTC),
        "purpose": purpose or None,
    }
    data = model(EngagementCreate, fields)
    open_engagement(session, user=user, data=data)
    return RedirectResponse("/compliance/engagements", status_code=303)


@router.post("/compliance/engagements/{engagement_id}/revoke")
def revoke(session: SessionDep, user: PageUser, engagement_id: str, reason: Text) -> Response:
    reason = model(RevokeIn, {"reason": reason}).reason
    revoke_engagement(session, user=user, engagement_id=engagement_id[:36], reason=reason)
    return RedirectResponse("/compliance/engagements", status_code=303)
