"""Viewing a report: policy check in the requested scope, the SQL, a `report.view` event, a rendering."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlmodel import Session

from audit.encounter.service import encounter_res, load_encounter
from audit.errors import InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.models import utcnow
from audit.policy.guard import Grant, Target
from audit.policy.scope import Area, ReadScope, authorize_read, encounter_area
from audit.principal import CurrentUser
from audit.report import render
from audit.report.queries import REPORTS
from audit.report.schemas import Report
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


def authorize_report(
    session: Session,
    user: CurrentUser,
    action: str,
    target: Target,
    *,
    date_from: date | None,
    date_to: date | None,
    provider_ids: Sequence[str] = (),
) -> tuple[Grant, ReadScope]:
    """Decide `action` over the requested dates of service and providers; returns the grant and the
    scope it covers (an auditor's engagement fills in what the request leaves out; a provider who names
    no provider gets their own)."""
    if date_from and date_to and date_to < date_from:
        raise InvalidInput("to", "to must not be before from")
    return authorize_read(session, user, action, target, Area.of(date_from, date_to, provider_ids))


def _timeline(session: Session, user: CurrentUser, req: ReportRequest) -> tuple[Grant, ReadScope, Report]:
    if not req.encounter_id:
        raise InvalidInput("encounter_id", "encounter-timeline needs encounter_id")
    encounter = load_encounter(session, req.encounter_id)
    area = encounter_area(encounter_res(encounter))
    target = Target("report", TIMELINE)
    grant, scope = authorize_read(session, user, "report.view", target, area, encounter_id=encounter.id)
    return grant, scope, encounter_timeline(session, scope)


def build(
    session: Session, user: CurrentUser, req: ReportRequest, now: datetime
) -> tuple[Grant, ReadScope, Report]:
    if req.name not in NAMES:
        raise NotFound(f"no report named {req.name!r}; reports: {', '.join(NAMES)}")
    if req.name == TIMELINE:
        return _timeline(session, user, req)
    grant, scope = authorize_report(
        session,
        user,
        "report.view",
        Target("report", req.name),
        date_from=req.date_from,
        date_to=req.date_to,
        provider_ids=[req.provider_id] if req.provider_id else (),
    )
    return grant, scope, REPORTS[req.name](session, scope, now)


def view_report(session: Session, *, user: CurrentUser, req: ReportRequest) -> Rendered:
    report, shown, now = view_report_data(session, user=user, req=req)
    return render_report(report, req.format, req.section, shown, now)


def view_report_data(
    session: Session, *, user: CurrentUser, req: ReportRequest
) -> tuple[Report, dict[str, Any], datetime]:
    """The report, its effective filters and time, with its `report.view` event (a web page shows the
    rows itself: `req.format` is then `html`)."""
    now = utcnow()
    grant, scope, report = build(session, user, req, now)
    shown = scope.as_dict()
    ledger.append_one(
        session,
        grant.event(
            subject_id=report.name,
            detail={
                "name": report.name,
                "filters": shown,
                "format": req.format,
                "row_count": len(report.main.rows),
                **scope.evidence(),
            },
        ),
    )
    return report, shown, now


def render_report(
    report: Report, format: str, section_key: str | None, shown: dict[str, Any], now: datetime
) -> Rendered:
    """A report as a JSON, CSV (one section: `section_key`, else the main one) or PDF download."""
    stem = f"{report.name}-{now.strftime('%Y%m%dT%H%M%SZ')}"
    if format == "csv":
        section = next((s for s in report.sections if s.key == section_key), None) if section_key else None
        if section_key and section is None:
            raise InvalidInput("section", f"{report.name} has sections {[s.key for s in report.sections]}")
        body = render.to_csv(section or report.main).encode()
        return Rendered(body, render.MEDIA_TYPES["csv"], f"{stem}.csv")
    if format == "pdf":
        return Rendered(render.to_pdf(report, shown, now), render.MEDIA_TYPES["pdf"], f"{stem}.pdf")
    body = json.dumps(render.to_json(report, shown, now), ensure_ascii=False).encode()
    return Rendered(body, render.MEDIA_TYPES["json"], f"{stem}.json")
