"""Report queries: SQL aggregates over indexed columns. Only result rows are shaped in Python."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, literal_column, select
from sqlalchemy.orm import aliased
from sqlmodel import Session

from audit.ledger import rollups
from audit.ledger.models import EM_CODES, EM_FAMILIES
from audit.policy.filters import (
    by_provider_and_day,
    delegation_clause,
    encounter_clause,
    event_clause,
    rollup_clause,
)
from audit.policy.scope import ReadScope
from audit.report.codesets import codes_invalid_for_date
from audit.report.responsibility import provider_responsibility
from audit.report.retention import past_retention
from audit.report.schemas import Report, Section
from audit.report.sql import (
    ATT,
    CAA,
    CODE_EVENTS,
    DLG,
    ENC,
    LED,
    LINE,
    USR,
    count_if,
    in_log,
    kept_changes,
    name_of,
    names,
)

AGING_BUCKETS = (("0-7", 7), ("8-14", 14), ("15-30", 30), ("31-60", 60))


def code_text(state: Any) -> str:
    if not isinstance(state, dict):
        return ""
    mods = "-".join(state.get("modifiers") or [])
    text = f"{state.get('system', '')} {state.get('code', '')}{'-' + mods if mods else ''}"
    units = state.get("units")
    status = state.get("status")
    return f"{text} x{units}" + (" (voided)" if status == "voided" else "")


def changes_after_attestation(session: Session, f: ReadScope, now: datetime) -> Report:
    """Listed from `change_after_attestation`, the rows the ledger writer keeps for exactly these
    events (audit.ledger.changes: verified against the ledger by `audit verify`), instead of finding
    each encounter's first attestation among all its events."""
    return changes_report(session, _kept_changes(f))


def _kept_changes(f: ReadScope) -> Any:
    joined, in_this_log = kept_changes()
    return (
        select(*CHANGE_COLUMNS)
        .select_from(joined)
        .where(in_this_log, encounter_clause(f))
        .order_by(CAA.c.seq)
    )


CHANGE_COLUMNS = (
    LED.c.seq, LED.c.ts, LED.c.type, LED.c.encounter_id, ENC.c.external_id, ENC.c.date_of_service,
    ENC.c.rendering_provider_id, LED.c.actor_id, LED.c.actor_role, LED.c.subject_id, LED.c.payload,
)  # fmt: skip


def changes_report(session: Session, stmt: Any) -> Report:
    result = session.execute(stmt).all()
    who = names(session, [u for r in result for u in (r.rendering_provider_id, r.actor_id)])
    rows = []
    for r in result:
        event = json.loads(bytes(r.payload))
        rows.append(
            [r.seq, r.ts, r.type, r.encounter_id, r.external_id, r.date_of_service,
             name_of(who, r.rendering_provider_id), name_of(who, r.actor_id), r.actor_role, r.subject_id,
             code_text(event.get("before")), code_text(event.get("after")), event.get("reason") or ""]
        )  # fmt: skip
    columns = [
        "seq", "at", "type", "encounter_id", "external_id", "date_of_service", "provider", "actor",
        "actor_role", "line_id", "before", "after", "reason",
    ]  # fmt: skip
    return Report(
        "changes-after-attestation", "Changes after attestation", [Section("changes", "", columns, rows)]
    )


def unattested_aging(session: Session, f: ReadScope, now: datetime) -> Report:
    today = now.date()
    dos = ENC.c.date_of_service
    bucket = case(
        *[(dos >= today - timedelta(days=days), label) for label, days in AGING_BUCKETS], else_="61+"
    )
    labels = [label for label, _ in AGING_BUCKETS] + ["61+"]
    stmt = (
        select(
            ENC.c.rendering_provider_id,
            count_if(ENC.c.status == "open"),
            count_if(ENC.c.status == "amended"),
            *[count_if(bucket == label) for label in labels],
            func.count(),
        )
        .where(ENC.c.status.in_(("open", "amended")), encounter_clause(f))
        .group_by(ENC.c.rendering_provider_id)
    )
    result = session.execute(stmt).all()
    who = names(session, [r[0] for r in result])
    rows = [[r[0], name_of(who, r[0]), who.get(r[0], ("", ""))[1], *r[1:]] for r in result]
    rows.sort(key=lambda row: (row[1], row[0]))
    columns = ["provider_id", "provider", "npi", "open", "amended", *labels, "total"]
    return Report(
        "unattested-aging",
        "Unattested encounters by days since date of service",
        [Section("aging", "", columns, rows)],
    )


def late_attestations(session: Session, f: ReadScope, now: datetime) -> Report:
    stmt = (
        select(
            ATT.c.id, ATT.c.encounter_id, ENC.c.external_id, ENC.c.date_of_service,
            ENC.c.rendering_provider_id, ATT.c.printed_name, ATT.c.credential, ATT.c.npi, ATT.c.signed_at,
            ATT.c.status,
        )
        .select_from(ATT.join(ENC, ENC.c.id == ATT.c.encounter_id))
        .where(ATT.c.late.is_(True), encounter_clause(f))
        .order_by(ENC.c.date_of_service, ATT.c.signed_at)
    )  # fmt: skip
    result = session.execute(stmt).all()
    who = names(session, [r.rendering_provider_id for r in result])
    rows = [
        [r.id, r.encounter_id, r.external_id, r.date_of_service, name_of(who, r.rendering_provider_id),
         r.printed_name, r.credential, r.npi, r.signed_at, (r.signed_at.date() - r.date_of_service).days,
         r.status]
        for r in result
    ]  # fmt: skip
    columns = [
        "attestation_id", "encounter_id", "external_id", "date_of_service", "provider", "signed_by",
        "credential", "npi", "signed_at", "days_after_service", "status",
    ]  # fmt: skip
    return Report("late-attestations", "Late attestations", [Section("late", "", columns, rows)])


def coder_activity(session: Session, f: ReadScope, now: datetime) -> Report:
    stmt = (
        select(
            LED.c.actor_id,
            count_if(LED.c.type == "code.add"),
            count_if(LED.c.type == "code.change"),
            count_if(LED.c.type == "code.void"),
            func.count(func.distinct(LED.c.encounter_id)),
            func.count(func.distinct(LED.c.provider_id)),
        )
        .select_from(LED.join(ENC, ENC.c.id == LED.c.encounter_id))
        .where(
            in_log(), LED.c.type.in_(CODE_EVENTS), LED.c.outcome == "allowed", LED.c.actor_role == "coder",
            encounter_clause(f),
        )
        .group_by(LED.c.actor_id)
    )  # fmt: skip
    result = session.execute(stmt).all()
    who = names(session, [r[0] for r in result])
    rows = sorted(([r[0], name_of(who, r[0]), *r[1:]] for r in result), key=lambda row: (row[1], row[0]))
    columns = [
        "coder_id", "coder", "lines_added", "lines_changed", "lines_voided", "encounters_touched",
        "providers_served",
    ]  # fmt: skip
    return Report("coder-activity", "Coder activity", [Section("coders", "", columns, rows)])


def delegation_register(session: Session, f: ReadScope, now: datetime) -> Report:
    provider, coder = aliased(USR), aliased(USR)
    status = case(
        (DLG.c.revoked_at.is_not(None), "revoked"),
        (DLG.c.valid_until < now, "expired"),
        (DLG.c.valid_from > now, "pending"),
        else_="active",
    )
    stmt = (
        select(
            DLG.c.id, provider.c.display_name, coder.c.display_name, DLG.c.code_systems, DLG.c.valid_from,
            DLG.c.valid_until, DLG.c.dos_from, DLG.c.dos_until, DLG.c.granted_at, status, DLG.c.revoked_at,
            DLG.c.reason,
        )
        .select_from(
            DLG.join(provider, provider.c.id == DLG.c.provider_id).join(coder, coder.c.id == DLG.c.coder_id)
        )
        .order_by(provider.c.display_name, DLG.c.granted_at)
    )  # fmt: skip
    stmt = stmt.where(delegation_clause(f))
    rows = [[*r[:3], ",".join(r[3] or []), *r[4:]] for r in session.execute(stmt)]
    columns = [
        "delegation_id", "provider", "coder", "code_systems", "valid_from", "valid_until", "dos_from",
        "dos_until", "granted_at", "status", "revoked_at", "reason",
    ]  # fmt: skip
    return Report("delegation-register", "Delegation register", [Section("delegations", "", columns, rows)])


REFUSED = ("denied", "failed")


def refused() -> Any:
    """Denied or failed. Written with the literal `outcome <> 'allowed'` so that both databases use the
    partial index of refused events (ix_ledger_event_refused_ts): a bound value cannot prove it."""
    return and_(LED.c.outcome != literal_column("'allowed'"), LED.c.outcome.in_(REFUSED))


def denied_attempts(session: Session, f: ReadScope, now: datetime) -> Report:
    """Every refused attempt: denied by policy, or failed (wrong password at sign-in or signing,
    blocking edits); a sign-in burst summary counts its attempts."""
    stmt = (
        select(
            LED.c.seq, LED.c.ts, LED.c.actor_id, LED.c.actor_role, LED.c.type, LED.c.subject_type,
            LED.c.subject_id, LED.c.encounter_id, LED.c.provider_id, LED.c.payload,
        )
        .where(refused(), event_clause(f))
        .order_by(LED.c.seq)
    )  # fmt: skip
    result = session.execute(stmt).all()
    who = names(session, [u for r in result for u in (r.actor_id, r.provider_id)])
    rows = []
    for r in result:
        event = json.loads(bytes(r.payload))
        rule_ids = (event.get("policy") or {}).get("rule_ids") or []
        target = f"{r.subject_type or ''} {r.subject_id or ''}".strip()
        attempts = (event.get("detail") or {}).get("attempts") or 1  # a burst summary counts several
        rows.append(
            [r.seq, r.ts, name_of(who, r.actor_id) or (event["actor"].get("username") or ""), r.actor_role,
             r.type, target, r.encounter_id or "", name_of(who, r.provider_id), " ".join(rule_ids),
             event.get("reason") or "", event["outcome"], attempts]
        )  # fmt: skip
    columns = [
        "seq", "at", "actor", "actor_role", "action", "target", "encounter_id", "provider", "rule_ids",
        "reason", "outcome", "attempts",
    ]  # fmt: skip
    return Report("denied-attempts", "Denied attempts", [Section("denied", "", columns, rows)])


def _em_counts(session: Session, f: ReadScope) -> list[Any]:
    """(provider, code, lines) of active E/M lines in scope: summed from the roll-up when the scope is
    a set of (provider, date of service), else grouped from the lines."""
    if by_provider_and_day(f):
        per = rollups.PER_CODE
        summed = (
            select(per.c.provider_id, per.c.code, func.sum(per.c.lines))
            .where(rollup_clause(f, per.c.provider_id, per.c.day))
            .group_by(per.c.provider_id, per.c.code)
        )
        return [(p, code, int(n)) for p, code, n in session.execute(summed)]
    codes = EM_CODES
    stmt = (
        select(ENC.c.rendering_provider_id, LINE.c.code, func.count())
        .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
        .where(LINE.c.status == "active", LINE.c.system == "CPT", LINE.c.code.in_(codes), encounter_clause(f))
        .group_by(ENC.c.rendering_provider_id, LINE.c.code)
    )
    return list(session.execute(stmt).all())


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}" if whole else "0.0"


def em_distribution(session: Session, f: ReadScope, now: datetime) -> Report:
    """Each provider's share of each E/M level within its family, beside the group's share (same
    dates, every provider the reader may see: the whole organisation for compliance): a provider far
    above the group on the top levels is the signal."""
    family_of = {code: fam for fam, codes in EM_FAMILIES.items() for code in codes}
    mine: dict[tuple[str, str], int] = defaultdict(int)
    group: dict[str, int] = defaultdict(int)
    counted = _em_counts(session, f)
    wide = f.without_provider_narrowing()
    for pid, code, n in counted:
        mine[(pid, code)] += n
    for _, code, n in counted if wide == f else _em_counts(session, wide):  # no narrowing: the same rows
        group[code] += n
    mine_total: dict[tuple[str, str], int] = defaultdict(int)
    for (pid, code), n in mine.items():
        mine_total[(pid, family_of[code])] += n
    group_total = {fam: sum(group[c] for c in codes) for fam, codes in EM_FAMILIES.items()}
    who = names(session, [pid for pid, _ in mine_total])
    rows = []
    for pid, fam in sorted(mine_total, key=lambda k: (name_of(who, k[0]), k[0], k[1])):
        for code in EM_FAMILIES[fam]:
            n, g = mine[(pid, code)], group[code]
            rows.append(
                [pid, name_of(who, pid), who.get(pid, ("", ""))[1], fam, code, n,
                 _pct(n, mine_total[(pid, fam)]), g, _pct(g, group_total[fam])]
            )  # fmt: skip
    columns = [
        "provider_id", "provider", "npi", "family", "code", "lines", "provider_share_pct", "group_lines",
        "group_share_pct",
    ]  # fmt: skip
    return Report("em-distribution", "E/M level distribution", [Section("em", "", columns, rows)])


ReportFn = Callable[[Session, ReadScope, datetime], Report]
REPORTS: dict[str, ReportFn] = {
    "provider-responsibility": provider_responsibility,
    "changes-after-attestation": changes_after_attestation,
    "unattested-aging": unattested_aging,
    "late-attestations": late_attestations,
    "coder-activity": coder_activity,
    "delegation-register": delegation_register,
    "denied-attempts": denied_attempts,
    "em-distribution": em_distribution,
    "codes-invalid-for-date": codes_invalid_for_date,
    "retention": past_retention,
}
