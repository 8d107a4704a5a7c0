"""provider-responsibility: per provider of record, what they own and who touched it.

When the reader's scope is a set of (provider, date of service), as for compliance and auditors, the
counts are sums of the per-provider, per-day roll-ups (audit.ledger.rollups), which hold exactly what
the GROUP BYs below would count; otherwise (a provider's own report, which adds the encounters they
supervise) seven GROUP BY queries keyed by provider id, each over indexed columns. Either way only
small results are merged in Python (one row per provider).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlmodel import Session

from audit.ledger import rollups
from audit.policy.filters import (
    by_provider_and_day,
    delegation_clause,
    encounter_clause,
    event_clause,
    rollup_clause,
    unattached_rollup_clause,
)
from audit.policy.scope import ReadScope
from audit.report.schemas import Report, Section
from audit.report.sql import (
    ATT,
    CODE_EVENTS,
    DLG,
    ENC,
    LED,
    LINE,
    count_if,
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


def _encounter_counts(session: Session, f: ReadScope, counts: Counts) -> None:
    status = ENC.c.status
    stmt = select(
        ENC.c.rendering_provider_id,
        func.count(),
        count_if(status == "attested"),
        count_if(status == "open"),
        count_if(status == "amended"),
    ).where(encounter_clause(f))
    for pid, total, attested, open_, amended in session.execute(stmt.group_by(ENC.c.rendering_provider_id)):
        counts[pid].update(encounters=total, attested=attested, unattested=open_)
        counts[pid]["amended_not_reattested"] = amended


def _late(session: Session, f: ReadScope, counts: Counts) -> None:
    stmt = (
        select(ENC.c.rendering_provider_id, func.count(func.distinct(ATT.c.encounter_id)))
        .select_from(ATT.join(ENC, ENC.c.id == ATT.c.encounter_id))
        .where(ATT.c.late.is_(True), ATT.c.status == "valid", encounter_clause(f))
        .group_by(ENC.c.rendering_provider_id)
    )
    for pid, late in session.execute(stmt):
        counts[pid]["attested_late"] = late


def _lines(session: Session, f: ReadScope, counts: Counts) -> list[tuple[str, str, int]]:
    stmt = (
        select(ENC.c.rendering_provider_id, LINE.c.entered_by, func.count())
        .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
        .where(encounter_clause(f))
        .group_by(ENC.c.rendering_provider_id, LINE.c.entered_by)
    )
    delegates = []
    for pid, author, n in session.execute(stmt):
        key = "lines_by_provider" if author == pid else "lines_by_delegates"
        counts[pid][key] += n
        if author != pid:
            delegates.append((pid, author, n))
    return delegates


def first_attestations(f: ReadScope) -> Any:
    """Per encounter in scope: its provider and the seq of its first allowed `encounter.attest` event."""
    return (
        select(
            LED.c.encounter_id,
            ENC.c.rendering_provider_id.label("provider_id"),
            func.min(LED.c.seq).label("first_seq"),
        )
        .select_from(ENC.join(LED, ENC.c.id == LED.c.encounter_id))
        .where(in_log(), LED.c.type == "encounter.attest", LED.c.outcome == "allowed", encounter_clause(f))
        .group_by(LED.c.encounter_id, ENC.c.rendering_provider_id)
        .subquery("first_attest")
    )


def _changes_after(session: Session, f: ReadScope, counts: Counts) -> None:
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


def _denied(session: Session, f: ReadScope, counts: Counts) -> None:
    stmt = (
        select(LED.c.provider_id, func.count())
        .where(LED.c.outcome == "denied", LED.c.provider_id.is_not(None), event_clause(f))
        .group_by(LED.c.provider_id)
    )
    for pid, n in session.execute(stmt):
        counts[pid]["denied_attempts"] = n


def _delegations(session: Session, f: ReadScope, counts: Counts, now: datetime) -> None:
    where = [
        DLG.c.revoked_at.is_(None),
        DLG.c.valid_from <= now,
        DLG.c.valid_until >= now,
        delegation_clause(f),
    ]
    stmt = select(DLG.c.provider_id, func.count()).where(*where).group_by(DLG.c.provider_id)
    for pid, n in session.execute(stmt):
        counts[pid]["active_delegations"] = n


def _summed(session: Session, f: ReadScope, counts: Counts) -> list[tuple[str, str, int]]:
    """The counts the GROUP BYs above give, as sums of the roll-up rows in the scope."""
    day = rollups.PER_DAY
    names = ("encounters", "attested", "unattested", "amended_not_reattested", "attested_late",
             "changes_after_attestation")  # fmt: skip
    sums = [func.sum(day.c[c]) for c in ("encounters", "attested", "unattested", "amended", "attested_late",
                                          "changes_after_attestation")]  # fmt: skip
    stmt = select(day.c.provider_id, *sums).where(rollup_clause(f, day.c.provider_id, day.c.day))
    for pid, *values in session.execute(stmt.group_by(day.c.provider_id)):
        counts[pid].update({k: int(v) for k, v in zip(names, values, strict=True) if v})
    by = rollups.PER_AUTHOR
    lines = (
        select(by.c.provider_id, by.c.entered_by, func.sum(by.c.lines))
        .where(rollup_clause(f, by.c.provider_id, by.c.day))
        .group_by(by.c.provider_id, by.c.entered_by)
    )
    delegates = []
    for pid, author, n in session.execute(lines):
        counts[pid]["lines_by_provider" if author == pid else "lines_by_delegates"] += int(n)
        if author != pid:
            delegates.append((pid, author, int(n)))
    _summed_denied(session, f, counts)
    return delegates


def _summed_denied(session: Session, f: ReadScope, counts: Counts) -> None:
    d = rollups.DENIED
    kinds = [
        and_(d.c.kind == rollups.ON_ENCOUNTER, rollup_clause(f, d.c.encounter_provider_id, d.c.day)),
        and_(d.c.kind == rollups.UNATTACHED, unattached_rollup_clause(f, d.c.provider_id, d.c.day)),
    ]
    if f.unlimited:
        kinds.append(d.c.kind == rollups.ORPHAN)
    stmt = select(d.c.provider_id, func.sum(d.c.attempts)).where(or_(*kinds)).group_by(d.c.provider_id)
    for pid, n in session.execute(stmt):
        counts[pid]["denied_attempts"] = int(n)


def provider_responsibility(session: Session, f: ReadScope, now: datetime) -> Report:
    counts: Counts = defaultdict(lambda: defaultdict(int))
    if by_provider_and_day(f):
        delegates = _summed(session, f, counts)
    else:
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
