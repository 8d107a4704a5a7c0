"""Viewing a report: policy check in the requested scope, the SQL, a `report.view` event, a rendering."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from audit.encounter.service import load_encounter
from audit.errors import InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import utcnow
from audit.policy.engine import SystemRes
from audit.policy.guard import Grant, Target, authorize
from audit.policy.scope import auditor_context
from audit.principal import CurrentUser
from audit.report import render
from audit.report.queries import REPORTS
from audit.report.schemas import Filters, Report
from audit.report.timeline import encounter_timeline

TIMELINE = "encounter-timeline"
NAMES = (*REPORTS, TIMELINE)


@dataclass(frozen=True)
class ReportRequest:
    name: str
    date_from: date | None = None
    date_to: date | None = None
    provider_id: str | None = None
    encounter_id: str | None = None
    format: str = "json"
    section: str | None = None


@dataclass(frozen=True)
class Rendered:
    body: bytes
    media_type: str
    filename: str


def authorize_scope(
    session: Session,
    user: CurrentUser,
    action: str,
    target: Target,
    *,
    date_from: date | None,
    date_to: date | None,
    provider_ids: list[str] | None,
) -> tuple[Grant, Filters]:
    """Decide `action` over a scope; returns the grant and the effective filters (an auditor's
    engagement fills in dates and providers the request leaves out)."""
    if date_from and date_to and date_to < date_from:
        raise InvalidInput("to", "to must not be before from")
    ctx = auditor_context(
        session, user, scope_from=date_from, scope_to=date_to, provider_ids=provider_ids or None
    )
    grant = authorize(user, action, target, SystemRes(), ctx)
    providers = ctx.get("scope_provider_ids") or (frozenset(provider_ids) if provider_ids else None)
    return grant, Filters(ctx.get("scope_from", date_from), ctx.get("scope_to", date_to), providers)


def _timeline(session: Session, user: CurrentUser, req: ReportRequest) -> tuple[Grant, Filters, Report]:
    if not req.encounter_id:
        raise InvalidInput("encounter_id", "encounter-timeline needs encounter_id")
    encounter = load_encounter(session, req.encounter_id)
    dos, pid = encounter.date_of_service, encounter.rendering_provider_id
    grant, _ = authorize_scope(
        session,
        user,
        "report.view",
        Target("report", TIMELINE),
        date_from=dos,
        date_to=dos,
        provider_ids=[pid],
    )
    filters = Filters(dos, dos, frozenset([pid]), encounter.id)
    return grant, filters, encounter_timeline(session, user, encounter.id)


def build(
    session: Session, user: CurrentUser, req: ReportRequest, now: datetime
) -> tuple[Grant, Filters, Report]:
    if req.name not in NAMES:
        raise NotFound(f"no report named {req.name!r}; reports: {', '.join(NAMES)}")
    if req.name == TIMELINE:
        return _timeline(session, user, req)
    grant, filters = authorize_scope(
        session,
        user,
        "report.view",
        Target("report", req.name),
        date_from=req.date_from,
        date_to=req.date_to,
        provider_ids=[req.provider_id] if req.provider_id else None,
    )
    return grant, filters, REPORTS[req.name](session, filters, now)


def view_report(session: Session, *, user: CurrentUser, req: ReportRequest) -> Rendered:
    now = utcnow()
    grant, filters, report = build(session, user, req, now)
    shown = filters.as_dict()
    ledger.append_one(
        session,
        EventDraft(
            type="report.view",
            actor=user.actor(grant.role),
            subject_type="report",
            subject_id=report.name,
            policy=grant.policy,
            detail={
                "name": report.name,
                "filters": shown,
                "format": req.format,
                "row_count": len(report.main.rows),
            },
        ),
    )
    return _render(report, req, shown, now)


def _render(report: Report, req: ReportRequest, shown: dict[str, Any], now: datetime) -> Rendered:
    stem = f"{report.name}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    if req.format == "csv":
        section = next((s for s in report.sections if s.key == req.section), None) if req.section else None
        if req.section and section is None:
            raise InvalidInput("section", f"{report.name} has sections {[s.key for s in report.sections]}")
        body = render.to_csv(section or report.main).encode()
        return Rendered(body, render.MEDIA_TYPES["csv"], f"{stem}.csv")
    if req.format == "pdf":
        return Rendered(render.to_pdf(report, shown, now), render.MEDIA_TYPES["pdf"], f"{stem}.pdf")
    body = json.dumps(render.to_json(report, shown, now), ensure_ascii=False).encode()
    return Rendered(body, render.MEDIA_TYPES["json"], f"{stem}.json")
