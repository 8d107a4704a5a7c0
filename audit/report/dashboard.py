"""The compliance dashboard: counts and sorted, paged lists of what needs a look, the ledger's state
and the key figures as charts.

Every list is SQL over the reader's `ReadScope` (`audit.policy.filters` makes the clauses, as for the
API's reports), cut to one page by the database. Viewing the dashboard is authorised as `report.view`
of the report `dashboard` and recorded as a `report.view` event, like any report.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import Integer, case, cast, exists, func, literal, select, true
from sqlalchemy.orm import aliased
from sqlmodel import Session

from audit.config import get_settings
from audit.errors import InvalidInput
from audit.ledger import checkpoints, rollups
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import EncounterNote, utcnow
from audit.policy.filters import by_provider_and_day, encounter_clause, event_clause, rollup_clause
from audit.policy.guard import Target
from audit.policy.scope import ReadScope
from audit.principal import CurrentUser
from audit.report import figures
from audit.report.charts import Chart
from audit.report.listing import Column, Group, Listing, Page, PageRequest
from audit.report.queries import AGING_BUCKETS, REPORTS, code_text, refused
from audit.report.schemas import Report, Section
from audit.report.service import authorize_report
from audit.report.sql import ATT, CAA, ENC, LED, USR, in_log, kept_changes

NOTE = EncounterNote.__table__  # type: ignore[attr-defined]
RESOLVE = "encounter.resolve_flag"
CHART_WEEKS = 12


def _day(session: Session, ts: Any) -> Any:
    return func.date(ts)


def _days_between(session: Session, later_ts: Any, earlier_day: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.date(later_ts) - earlier_day
    return cast(func.julianday(func.date(later_ts)) - func.julianday(earlier_day), Integer)


def _payload(row: dict[str, Any]) -> dict[str, Any]:
    raw = row.pop("payload", None)
    return json.loads(bytes(raw)) if raw is not None else {}


# --- changes after attestation -------------------------------------------------------------------------


def _since(column: Any, since: datetime | None) -> Any:
    return column >= since if since is not None else true()


def _changes_query(session: Session, f: ReadScope, today: date, since: datetime | None = None) -> Any:
    """The changes after attestation (audit.ledger.changes keeps their keys), each with its ledger
    event, encounter and people."""
    provider, actor = aliased(USR), aliased(USR)
    joined, in_this_log = kept_changes()
    return (
        select(
            CAA.c.seq.label("at"),
            CAA.c.ts.label("ts"),
            LED.c.type.label("type"),
            CAA.c.encounter_id.label("encounter_id"),
            ENC.c.external_id.label("external_id"),
            ENC.c.date_of_service.label("date_of_service"),
            provider.c.display_name.label("provider"),
            actor.c.display_name.label("actor"),
            LED.c.actor_role.label("actor_role"),
            LED.c.payload,
        )
        .select_from(
            joined.outerjoin(provider, provider.c.id == ENC.c.rendering_provider_id).outerjoin(
                actor, actor.c.id == LED.c.actor_id
            )
        )
        .where(in_this_log, _since(CAA.c.ts, since), encounter_clause(f))
    )


def _changes_counted(session: Session, f: ReadScope, today: date, since: datetime | None = None) -> Any:
    """The same changes as `_changes_query`, without the joins that only add columns."""
    stmt = select(CAA.c.ts).where(CAA.c.log_id == get_settings().log_id, _since(CAA.c.ts, since))
    return _in_scope(stmt, f, CAA.c.encounter_id)


def _in_scope(stmt: Any, f: ReadScope, encounter_id: Any) -> Any:
    """`stmt` cut to the scope's encounters; with no joined encounter when the scope is everything."""
    if f.unlimited:
        return stmt
    return stmt.join(ENC, ENC.c.id == encounter_id).where(encounter_clause(f))


def _changes_per_day(session: Session, f: ReadScope, since: datetime) -> Any:
    day = _day(session, CAA.c.ts)
    return (
        select(day, func.count())
        .select_from(CAA.join(ENC, ENC.c.id == CAA.c.encounter_id))
        .where(CAA.c.log_id == get_settings().log_id, CAA.c.ts >= since, encounter_clause(f))
        .group_by(day)
    )


def _changes_shape(row: dict[str, Any]) -> dict[str, Any]:
    event = _payload(row)
    row["change"] = f"{code_text(event.get('before'))} -> {code_text(event.get('after'))}".strip(" ->")
    row["reason"] = event.get("reason") or ""
    return row


CHANGES = Listing(
    "changes",
    "Changes after attestation",
    (
        Column("at", "When"),
        Column("type", "Change"),
        Column("external_id", "Encounter"),
        Column("date_of_service", "Date of service"),
        Column("provider", "Provider"),
        Column("actor", "Changed by"),
        Column("actor_role", "Role"),
        Column("change", "Before -> after", False),
        Column("reason", "Reason", False),
    ),
    _changes_query,
    "at",
    shape=_changes_shape,
    counter=_changes_counted,
)


# --- late attestations and unattested aging ------------------------------------------------------------


def _late_query(session: Session, f: ReadScope, today: date, since: datetime | None = None) -> Any:
    provider = aliased(USR)
    return (
        select(
            ATT.c.id.label("attestation_id"),
            ATT.c.encounter_id.label("encounter_id"),
            ENC.c.external_id.label("external_id"),
            ENC.c.date_of_service.label("date_of_service"),
            provider.c.display_name.label("provider"),
            ATT.c.printed_name.label("signed_by"),
            ATT.c.credential.label("credential"),
            ATT.c.npi.label("npi"),
            ATT.c.signed_at.label("signed_at"),
            _days_between(session, ATT.c.signed_at, ENC.c.date_of_service).label("days_after"),
            ATT.c.status.label("status"),
        )
        .select_from(
            ATT.join(ENC, ENC.c.id == ATT.c.encounter_id).outerjoin(
                provider, provider.c.id == ENC.c.rendering_provider_id
            )
        )
        .where(ATT.c.late.is_(True), encounter_clause(f), _since(ATT.c.signed_at, since))
    )


def _late_counted(session: Session, f: ReadScope, today: date, since: datetime | None = None) -> Any:
    """The same late attestations as `_late_query`, without the joins that only add columns (with the
    whole scope, a count of the (late, signed_at) index alone)."""
    stmt = select(ATT.c.signed_at).where(ATT.c.late.is_(True), _since(ATT.c.signed_at, since))
    return _in_scope(stmt, f, ATT.c.encounter_id)


LATE = Listing(
    "late",
    "Late attestations",
    (
        Column("external_id", "Encounter"),
        Column("date_of_service", "Date of service"),
        Column("provider", "Provider"),
        Column("signed_by", "Signed by"),
        Column("credential", "Credential"),
        Column("npi", "NPI"),
        Column("signed_at", "Signed at"),
        Column("days_after", "Days after service"),
        Column("status", "Status"),
    ),
    _late_query,
    "signed_at",
    tiebreak="attestation_id",
    counter=_late_counted,
)


def _aging_query(session: Session, f: ReadScope, today: date) -> Any:
    provider = aliased(USR)
    return (
        select(
            ENC.c.id.label("encounter_id"),
            ENC.c.external_id.label("external_id"),
            ENC.c.patient_ref.label("patient_ref"),
            ENC.c.date_of_service.label("date_of_service"),
            provider.c.display_name.label("provider"),
            provider.c.npi.label("npi"),
            ENC.c.status.label("status"),
        )
        .select_from(ENC.outerjoin(provider, provider.c.id == ENC.c.rendering_provider_id))
        .where(ENC.c.status.in_(("open", "amended")), encounter_clause(f))
    )


def _aging_shape(today: date) -> Any:
    def shape(row: dict[str, Any]) -> dict[str, Any]:
        row["days"] = (today - row["date_of_service"]).days
        return row

    return shape


def _aging_groups(session: Session, f: ReadScope, sort: str, desc: bool) -> list[Group] | None:
    """Unattested encounters grouped by what the page sorts on (the provider's name or NPI, or the
    status), counted from the roll-ups, in the database's own order of the sort values."""
    if sort not in ("provider", "npi", "status") or not by_provider_and_day(f):
        return None
    per = rollups.PER_DAY
    where = rollup_clause(f, per.c.provider_id, per.c.day)
    if sort == "status":
        open_, amended = session.execute(
            select(func.sum(per.c.unattested), func.sum(per.c.amended)).where(where)
        ).one()
        groups = [(ENC.c.status == "amended", int(amended or 0)), (ENC.c.status == "open", int(open_ or 0))]
        return groups[::-1] if desc else groups
    waiting = per.c.unattested + per.c.amended
    counts = {p: int(n) for p, n in session.execute(
        select(per.c.provider_id, func.sum(waiting)).where(where, waiting > 0).group_by(per.c.provider_id)
    )}  # fmt: skip
    value = USR.c.display_name if sort == "provider" else USR.c.npi
    ordered = session.execute(
        select(USR.c.id, value).where(USR.c.id.in_(counts)).order_by(value.desc() if desc else value.asc())
    ).all()
    if len(ordered) != len(counts):
        return None  # a provider of record with no user row: the plain ORDER BY places it
    same: list[tuple[Any, list[str]]] = []  # providers with equal values share one group
    for uid, v in ordered:
        if same and same[-1][0] == v:
            same[-1][1].append(uid)
        else:
            same.append((v, [uid]))
    return [(ENC.c.rendering_provider_id.in_(ids), sum(counts[i] for i in ids)) for _, ids in same]


def aging_listing(today: date) -> Listing:
    return Listing(
        "aging",
        "Unattested encounters (oldest first)",
        (
            Column("external_id", "Encounter"),
            Column("patient_ref", "Patient ref"),
            Column("date_of_service", "Date of service"),
            Column("days", "Days waiting"),
            Column("provider", "Provider"),
            Column("npi", "NPI"),
            Column("status", "Status"),
        ),
        _aging_query,
        "date_of_service",
        default_desc=False,
        tiebreak="encounter_id",
        shape=_aging_shape(today),
        sort_alias={"days": ("date_of_service", True)},
        groups=_aging_groups,
    )


# --- denied and failed attempts -------------------------------------------------------------------------


def _attempts_query(session: Session, f: ReadScope, today: date, since: datetime | None = None) -> Any:
    actor = aliased(USR)
    return (
        select(
            LED.c.seq.label("at"),
            LED.c.ts.label("ts"),
            actor.c.display_name.label("actor"),
            LED.c.actor_role.label("actor_role"),
            LED.c.type.label("action"),
            LED.c.outcome.label("outcome"),
            LED.c.encounter_id.label("encounter_id"),
            ENC.c.external_id.label("external_id"),
            LED.c.payload,
        )
        .select_from(
            LED.outerjoin(actor, actor.c.id == LED.c.actor_id).outerjoin(ENC, ENC.c.id == LED.c.encounter_id)
        )
        .where(in_log(), refused(), _since(LED.c.ts, since), event_clause(f))
    )


def _attempts_shape(row: dict[str, Any]) -> dict[str, Any]:
    event = _payload(row)
    row["actor"] = row["actor"] or (event.get("actor") or {}).get("username") or ""
    row["reason"] = event.get("reason") or ""
    row["attempts"] = (event.get("detail") or {}).get("attempts") or 1
    return row


ATTEMPTS = Listing(
    "attempts",
    "Denied and failed attempts",
    (
        Column("at", "When"),
        Column("actor", "Who"),
        Column("actor_role", "Role"),
        Column("action", "Action"),
        Column("outcome", "Outcome"),
        Column("external_id", "Encounter"),
        Column("reason", "Reason", False),
        Column("attempts", "Attempts", False),
    ),
    _attempts_query,
    "at",
    shape=_attempts_shape,
)


# --- flags ----------------------------------------------------------------------------------------------


def _resolved() -> Any:
    return exists().where(
        in_log(),
        LED.c.encounter_id == NOTE.c.encounter_id,
        LED.c.type == RESOLVE,
        LED.c.outcome == "allowed",
        LED.c.subject_id == NOTE.c.id,
    )


def _flags_query(session: Session, f: ReadScope, today: date) -> Any:
    author, provider = aliased(USR), aliased(USR)
    status = case((_resolved(), literal("resolved")), else_=literal("open"))
    return (
        select(
            NOTE.c.id.label("flag_id"),
            NOTE.c.created_at.label("created_at"),
            NOTE.c.encounter_id.label("encounter_id"),
            ENC.c.external_id.label("external_id"),
            provider.c.display_name.label("provider"),
            author.c.display_name.label("author"),
            NOTE.c.text.label("text"),
            status.label("status"),
        )
        .select_from(
            NOTE.join(ENC, ENC.c.id == NOTE.c.encounter_id)
            .outerjoin(author, author.c.id == NOTE.c.author_id)
            .outerjoin(provider, provider.c.id == ENC.c.rendering_provider_id)
        )
        .where(NOTE.c.kind == "flag", encounter_clause(f))
    )


FLAGS = Listing(
    "flags",
    "Flags",
    (
        Column("created_at", "Flagged at"),
        Column("status", "Status"),
        Column("external_id", "Encounter"),
        Column("provider", "Provider"),
        Column("author", "Flagged by"),
        Column("text", "Flag"),
    ),
    _flags_query,
    "created_at",
    tiebreak="flag_id",
)


def listings(today: date, since: datetime | None = None) -> dict[str, Listing]:
    """The lists; `since` limits changes, late attestations and attempts to events from then on."""
    windowed = [
        replace(x, query=partial(q, since=since), counter=partial(c, since=since) if c else None)
        for x, q, c in ((CHANGES, _changes_query, _changes_counted), (LATE, _late_query, _late_counted),
                        (ATTEMPTS, _attempts_query, None))
    ]  # fmt: skip
    return {x.key: x for x in (*windowed, aging_listing(today), FLAGS)}


LIST_KEYS = ("changes", "late", "aging", "attempts", "flags", "codes")


# --- codes re-checked as invalid or unverified ------------------------------------------------------------

CODE_COLUMNS = (
    Column("status", "Status"),
    Column("date_of_service", "Date of service"),
    Column("external_id", "Encounter"),
    Column("provider", "Provider"),
    Column("code", "Code"),
    Column("release", "Release"),
    Column("message", "Finding"),
    Column("checked_at", "Re-checked at"),
)


def codes_page(session: Session, scope: ReadScope, now: datetime, req: PageRequest) -> Page:
    """The `codes-invalid-for-date` report (a few rows: the lines an import changed its mind about),
    sorted and paged here."""
    req = req.checked([c.key for c in CODE_COLUMNS])
    report = REPORTS["codes-invalid-for-date"](session, scope, now)
    cols = report.main.columns
    rows = []
    for r in report.main.rows:
        row = dict(zip(cols, r, strict=True))
        row["code"] = f"{row['system']} {row['code']}" + (f"-{row['modifiers']}" if row["modifiers"] else "")
        rows.append(row)
    sort = req.sort or "status"
    desc = bool(req.desc)
    rows.sort(
        key=lambda row: (row[sort] is None, str(row[sort]) if row[sort] is not None else ""), reverse=desc
    )
    start = (req.page - 1) * req.size
    title = "Codes invalid or unverified for their date of service"
    return Page(
        "codes",
        title,
        list(CODE_COLUMNS),
        rows[start : start + req.size],
        len(rows),
        req.page,
        req.size,
        sort,
        desc,
    )


# --- ledger state ---------------------------------------------------------------------------------------


@dataclass
class LedgerState:
    head_seq: int | None
    last_verified_at: datetime | None
    last_verified_ok: bool | None
    last_verified_events: int | None
    last_verified_problems: int | None
    checkpoint_size: int | None
    checkpoint_at: datetime | None
    checkpoint_root: str | None


def ledger_state(session: Session) -> LedgerState:
    """The ledger's head, the latest recorded verification (an `audit.verify` event: a full pass is
    too slow to run on every page view; the page offers to run one) and the latest checkpoint."""
    head = session.execute(select(func.max(LED.c.seq)).where(in_log())).scalar_one_or_none()
    last = session.execute(
        select(LED.c.ts, LED.c.payload)
        .where(in_log(), LED.c.type == "audit.verify", LED.c.outcome == "allowed")
        .order_by(LED.c.ts.desc())
        .limit(1)
    ).first()
    detail = (json.loads(bytes(last.payload)).get("detail") or {}) if last else {}
    cp = checkpoints.latest(session)
    return LedgerState(
        head_seq=head,
        last_verified_at=last.ts if last else None,
        last_verified_ok=detail.get("ok") if last else None,
        last_verified_events=detail.get("events_checked"),
        last_verified_problems=detail.get("problem_count"),
        checkpoint_size=cp.tree_size if cp else None,
        checkpoint_at=cp.created_at if cp else None,
        checkpoint_root=cp.root_hash.hex() if cp else None,
    )


# --- charts ---------------------------------------------------------------------------------------------


def _per_day(session: Session, stmt: Any) -> dict[date, float]:
    out: dict[date, float] = defaultdict(float)
    for day, n in session.execute(stmt):
        out[day if isinstance(day, date) else date.fromisoformat(str(day))] += n
    return out


def dashboard_charts(
    session: Session, f: ReadScope, now: datetime, em: Report, buckets: dict[str, float]
) -> list[Chart]:
    since = now - timedelta(weeks=CHART_WEEKS)
    today = now.date()
    per_day = _per_day(session, _changes_per_day(session, f, since))
    day = _day(session, LED.c.ts)
    refused_per_day = (
        select(day, LED.c.outcome, func.count())
        .where(in_log(), refused(), LED.c.ts >= since, event_clause(f))
        .group_by(day, LED.c.outcome)
    )
    denied: dict[date, float] = defaultdict(float)
    failed: dict[date, float] = defaultdict(float)
    for d, outcome, n in session.execute(refused_per_day):
        (failed if outcome == "failed" else denied)[
            d if isinstance(d, date) else date.fromisoformat(str(d))
        ] += n
    return [
        figures.changes_per_week(per_day, until=today),
        figures.aging_chart(buckets),
        *figures.charts_for(em)[:2],
        figures.attempts_per_week(denied, failed, until=today),
    ]


def aging_buckets(session: Session, f: ReadScope, now: datetime) -> dict[str, float]:
    """Unattested (open or amended) encounters per aging bucket: from the roll-ups when the scope is a
    set of (provider, date of service), else from the `unattested-aging` report (the same figures)."""
    if not by_provider_and_day(f):
        aging = REPORTS["unattested-aging"](session, f, now)
        cols = aging.main.columns
        return {b: float(sum(r[cols.index(b)] for r in aging.main.rows)) for b in figures.AGING_LABELS}
    per, today = rollups.PER_DAY, now.date()
    waiting = func.sum(per.c.unattested + per.c.amended)
    where = rollup_clause(f, per.c.provider_id, per.c.day)
    # The recent days one by one (a range of a few thousand rows), then everything older as the
    # rest of the total: one comparison per row instead of a CASE over the whole table.
    first_day = today - timedelta(days=AGING_BUCKETS[-1][1])
    recent = select(per.c.day, waiting).where(where, per.c.day >= first_day).group_by(per.c.day)
    out = dict.fromkeys(figures.AGING_LABELS, 0.0)
    for day, n in session.execute(recent):
        out[aging_bucket(today, rollups.as_day(day))] += float(n or 0)
    total = float(session.execute(select(waiting).where(where)).scalar_one() or 0)
    out["61+"] = total - sum(out.values())
    return out


def aging_bucket(today: date, date_of_service: date) -> str:
    """The bucket of unattested-aging's CASE (report.queries) a date of service falls in."""
    for label, days in AGING_BUCKETS:
        if date_of_service >= today - timedelta(days=days):
            return label
    return "61+"


def _em_for(report: Report, provider_id: str | None) -> Report:
    """The E/M report cut to one provider (beside every provider the reader may see): the one asked
    for, else the provider whose share of the top level is furthest above the group's."""
    report = Report(report.name, report.title, [Section(**vars(report.main))])
    cols = report.main.columns
    rows = [dict(zip(cols, r, strict=True)) for r in report.main.rows]
    if provider_id is None:
        top = [r for r in rows if r["code"] in ("99215", "99205")]
        gap = max(
            top, key=lambda r: float(r["provider_share_pct"]) - float(r["group_share_pct"]), default=None
        )
        provider_id = gap["provider_id"] if gap else None
    report.main.rows = [r for r in report.main.rows if r[cols.index("provider_id")] == provider_id]
    return report


# --- the dashboard --------------------------------------------------------------------------------------


@dataclass
class DashboardRequest:
    date_from: date | None = None
    date_to: date | None = None
    provider_id: str | None = None
    em_provider_id: str | None = None
    # The web page's default view: changes, late attestations and refused attempts of the last days
    # (by when they happened); flags, unattested encounters and codes whatever their age.
    recent_days: int | None = None
    pages: dict[str, PageRequest] = field(default_factory=dict)


@dataclass
class Dashboard:
    counts: dict[str, int]
    lists: dict[str, Page]
    ledger: LedgerState
    charts: list[Chart]
    filters: dict[str, Any]
    em_providers: list[tuple[str, str]]


def _open_flags(session: Session, f: ReadScope, today: date) -> int:
    q = _flags_query(session, f, today).subquery()
    return int(session.execute(select(func.count()).where(q.c.status == "open")).scalar_one())


def _em_providers(report: Report) -> list[tuple[str, str]]:
    cols = report.main.columns
    seen = {r[cols.index("provider_id")]: r[cols.index("provider")] for r in report.main.rows}
    return sorted(seen.items(), key=lambda kv: (kv[1], kv[0]))


def build_dashboard(session: Session, *, user: CurrentUser, req: DashboardRequest) -> Dashboard:
    for key in req.pages:
        if key not in LIST_KEYS:
            raise InvalidInput("list", f"no list named {key!r}; lists: {', '.join(LIST_KEYS)}")
    grant, scope = authorize_report(
        session,
        user,
        "report.view",
        Target("report", "dashboard"),
        date_from=req.date_from,
        date_to=req.date_to,
        provider_ids=[req.provider_id] if req.provider_id else (),
    )
    now = utcnow()
    today = now.date()
    since = now - timedelta(days=req.recent_days) if req.recent_days else None
    buckets = aging_buckets(session, scope, now)
    known = {"aging": int(sum(buckets.values()))}  # every unattested encounter is in one bucket
    lists: dict[str, Page] = {
        key: listing.page(session, scope, today, req.pages.get(key, PageRequest()), total=known.get(key))
        for key, listing in listings(today, since).items()
    }
    lists["codes"] = codes_page(session, scope, now, req.pages.get("codes", PageRequest()))
    counts = {key: page.total for key, page in lists.items()}
    counts["flags_open"] = _open_flags(session, scope, today)
    counts["flags_resolved"] = counts["flags"] - counts["flags_open"]
    em = REPORTS["em-distribution"](session, scope, now)
    dashboard = Dashboard(
        counts=counts,
        lists=lists,
        ledger=ledger_state(session),
        charts=dashboard_charts(session, scope, now, _em_for(em, req.em_provider_id), buckets),
        filters=scope.as_dict(),
        em_providers=_em_providers(em),
    )
    ledger.append_one(
        session,
        EventDraft(
            type="report.view",
            actor=user.actor(grant.role),
            subject_type="report",
            subject_id="dashboard",
            policy=grant.policy,
            detail={
                "name": "dashboard",
                "filters": dashboard.filters,
                "format": "html",
                "counts": counts,
                **scope.evidence(),
            },
        ),
    )
    return dashboard
