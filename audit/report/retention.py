"""The `retention` report: encounters whose retention period has ended.

Records are kept `retention.years` (compliance.yaml, default 7) from the date of service. Nothing is
ever deleted: this lists what an organisation may move to cold storage (`audit archive --before
DATE` writes a verifiable bundle of it), each encounter with the day its period ended and how much of
the ledger concerns it.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, select
from sqlmodel import Session

from audit.policy.filters import encounter_clause
from audit.policy.runtime import get_compliance
from audit.policy.scope import ReadScope
from audit.report.schemas import Report, Section
from audit.report.sql import ENC, LED, LINE, in_log, name_of, names


def years_before(day: date, years: int) -> date:
    """The same calendar day `years` earlier (29 February becomes 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def retention_cutoff(today: date, years: int) -> date:
    """Encounters with a date of service before this day are past retention on `today`."""
    return years_before(today, years)


def past_retention(session: Session, f: ReadScope, now: datetime) -> Report:
    years = get_compliance().retention.years
    cutoff = retention_cutoff(now.date(), years)
    lines = (
        select(LINE.c.encounter_id, func.count().label("n")).group_by(LINE.c.encounter_id).subquery("lines")
    )
    events = (
        select(LED.c.encounter_id, func.count().label("n"), func.max(LED.c.seq).label("last_seq"))
        .where(in_log(), LED.c.encounter_id.is_not(None))
        .group_by(LED.c.encounter_id)
        .subquery("events")
    )
    stmt = (
        select(
            ENC.c.id, ENC.c.external_id, ENC.c.date_of_service, ENC.c.rendering_provider_id, ENC.c.status,
            func.coalesce(lines.c.n, 0), func.coalesce(events.c.n, 0), events.c.last_seq,
        )
        .select_from(
            ENC.outerjoin(lines, lines.c.encounter_id == ENC.c.id).outerjoin(
                events, events.c.encounter_id == ENC.c.id
            )
        )
        .where(ENC.c.date_of_service < cutoff, encounter_clause(f))
        .order_by(ENC.c.date_of_service, ENC.c.id)
    )  # fmt: skip
    result = session.execute(stmt).all()
    who = names(session, [r[3] for r in result])
    rows = [
        [r[0], r[1], r[2], name_of(who, r[3]), r[4], _plus_years(r[2], years), r[5], r[6], r[7]]
        for r in result
    ]
    columns = [
        "encounter_id", "external_id", "date_of_service", "provider", "status", "retained_until",
        "code_lines", "ledger_events", "last_seq",
    ]  # fmt: skip
    title = f"Past retention ({years} years from the date of service; nothing is deleted)"
    return Report("retention", title, [Section("past_retention", "", columns, rows)])


def _plus_years(day: date, years: int) -> date:
    return years_before(day, -years)
