"""provider-responsibility: per provider of record, what they own and who touched it.

Seven GROUP BY queries keyed by provider id, each over indexed columns; only their small results are
merged in Python (one row per provider).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlmodel import Session

from audit.report.schemas import Filters, Report, Section
from audit.report.sql import (
    ATT,
    CODE_EVENTS,
    DLG,
    ENC,
    LED,
    LINE,
    count_if,
    encounter_scope,
    event_scope,
    in_log,
    name_of,
    names,
)

COLUMNS = [
    "provider_id", "provider", "npi", "encounters", "attested", "unattested", "attested_late",
    "amended_not_reattested", "lines_by_provider", "lines_by_delegates", "changes_after_attestation",
    "denied_attempts", "active_delegations", "delegate_lines",
]  # fmt: skip
Counts = dict[str, dict[str, int]]


def _encounter_counts(session: Session, f: Filters, counts: Counts) -> None:
    status = ENC.c.status
    stmt = select(
        ENC.c.rendering_provider_id,
        func.count(),
        count_if(status == "attested"),
        count_if(status == "open"),
        count_if(status == "amended"),
    ).where(*encounter_scope(f))
    for pid, total, attested, open_, amended in session.execute(stmt.group_by(ENC.c.rendering_provider_id)):
        counts[pid].update(encounters=total, attested=attested, unattested=open_)
        counts[pid]["amended_not_reattested"] = amended


def _late(session: Session, f: Filters, counts: Counts) -> None:
    stmt = (
        select(ENC.c.rendering_provider_id, func.count(func.distinct(ATT.c.encounter_id)))
        .select_from(ATT.join(ENC, ENC.c.id == ATT.c.encounter_id))
        .where(ATT.c.late.is_(True), ATT.c.status == "valid", *encounter_scope(f))
        .group_by(ENC.c.rendering_provider_id)
    )
    for pid, late in session.execute(stmt):
        counts[pid]["attested_late"] = late


def _lines(session: Session, f: Filters, counts: Counts) -> list[tuple[str, str, int]]:
    stmt = (
        select(ENC.c.rendering_provider_id, LINE.c.entered_by, func.count())
        .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
        .where(*encounter_scope(f))
        .group_by(ENC.c.rendering_provider_id, LINE.c.entered_by)
    )
    delegates = []
    for pid, author, n in session.execute(stmt):
        key = "lines_by_provider" if author == pid else "lines_by_delegates"
        counts[pid][key] += n
        if author != pid:
            delegates.append((pid, author, n))
    return delegates


def first_attestations(f: Filters) -> Any:
    """Per encounter in scope: its provider and the seq of its first allowed `encounter.attest` event."""
    return (
        select(
            LED.c.encounter_id,
            ENC.c.rendering_provider_id.label("provider_id"),
            func.min(LED.c.seq).label("first_seq"),
        )
        .select_from(ENC.join(LED, ENC.c.id == LED.c.encounter_id))
        .where(in_log(), LED.c.type == "encounter.attest", LED.c.outcome == "allowed", *encounter_scope(f))
        .group_by(LED.c.encounter_id, ENC.c.rendering_provider_id)
        .subquery("first_attest")
    )


def _changes_after(session: Session, f: Filters, counts: Counts) -> None:
    first = first_attestations(f)
    joined = first.join(LED, and_(LED.c.encounter_id == first.c.encounter_id, LED.c.seq > first.c.first_seq))
    stmt = (
        select(first.c.provider_id, func.count())
        .select_from(joined)
        .where(in_log(), LED.c.type.in_(CODE_EVENTS), LED.c.outcome == "allowed")
        .group_by(first.c.provider_id)
    )
    for pid, n in session.execute(stmt):
        counts[pid]["changes_after_attestation"] = n


def _denied(session: Session, f: Filters, counts: Counts) -> None:
    stmt = (
        select(LED.c.provider_id, func.count())
        .select_from(LED.outerjoin(ENC, ENC.c.id == LED.c.encounter_id))
        .where(LED.c.outcome == "denied", LED.c.provider_id.is_not(None), *event_scope(f))
        .group_by(LED.c.provider_id)
    )
    for pid, n in session.execute(stmt):
        counts[pid]["denied_attempts"] = n


def _delegations(session: Session, f: Filters, counts: Counts, now: datetime) -> None:
    where = [DLG.c.revoked_at.is_(None), DLG.c.valid_from <= now, DLG.c.valid_until >= now]
    if f.provider_ids:
        where.append(DLG.c.provider_id.in_(sorted(f.provider_ids)))
    stmt = select(DLG.c.provider_id, func.count()).where(*where).group_by(DLG.c.provider_id)
    for pid, n in session.execute(stmt):
        counts[pid]["active_delegations"] = n


def provider_responsibility(session: Session, f: Filters, now: datetime) -> Report:
    counts: Counts = defaultdict(lambda: defaultdict(int))
    _encounter_counts(session, f, counts)
    _late(session, f, counts)
    delegates = _lines(session, f, counts)
    _changes_after(session, f, counts)
    _denied(session, f, counts)
    _delegations(session, f, counts, now)
    who = names(session, [*counts, *(d for _, d, _ in delegates)])
    per_provider: dict[str, list[str]] = defaultdict(list)
    detail = []
    for pid, author, n in sorted(delegates, key=lambda r: (name_of(who, r[0]), name_of(who, r[1]))):
        per_provider[pid].append(f"{name_of(who, author)}: {n}")
        detail.append([pid, name_of(who, pid), author, name_of(who, author), n])
    rows = []
    for pid in sorted(counts, key=lambda p: (name_of(who, p), p)):
        c = counts[pid]
        head = [pid, name_of(who, pid), who.get(pid, ("", ""))[1]]
        rows.append(head + [c[k] for k in COLUMNS[3:-1]] + ["; ".join(per_provider[pid])])
    return Report(
        "provider-responsibility",
        "Provider responsibility",
        [
            Section("providers", "Per provider of record", list(COLUMNS), rows),
            Section(
                "delegate_lines",
                "Code lines entered by others, per provider",
                ["provider_id", "provider", "entered_by_id", "entered_by", "lines"],
                detail,
            ),
        ],
    )
