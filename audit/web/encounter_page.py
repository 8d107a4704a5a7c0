"""What an encounter page shows, built from the same services the API uses: the lines with who
entered them and under which delegation, code-set and edit findings, the attestation, and, for an
amended encounter, what changed since the last attestation (from the ledger, as the history shows it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlmodel import Session, col, select

from audit.codesets.validation import encounter_findings, finding_view, line_blockers
from audit.encounter.history import history_entries
from audit.encounter.views import line_state
from audit.ledger.digest import code_set_digest
from audit.ledger.models import CODE_EVENTS
from audit.models import Attestation, CodeLine, Delegation, Encounter, User, utcnow
from audit.policy.runtime import get_compliance
from audit.policy.scope import ReadScope
from audit.web.deps import Listing

LINE_FIELDS = ("system", "code", "modifiers", "units", "diagnosis_pointers", "status", "void_reason")


@dataclass
class Person:
    id: str
    name: str
    npi: str | None = None
    credential: str | None = None

    @property
    def label(self) -> str:
        text = self.name + (f", {self.credential}" if self.credential else "")
        return text + (f" (NPI {self.npi})" if self.npi else "")


@dataclass
class Change:
    """One code change since the last attestation: added, removed (voided) or changed fields."""

    kind: str  # added | removed | changed
    line_id: str
    at: str
    author: str
    reason: str | None
    line: dict[str, Any]
    fields: list[tuple[str, Any, Any]] = field(default_factory=list)  # (field, before, after)


def people(session: Session, ids: set[str]) -> dict[str, Person]:
    """Names, NPIs and credentials of users, in one query."""
    ids.discard("")
    if not ids:
        return {}
    rows = session.exec(select(User).where(col(User.id).in_(sorted(ids)))).all()
    return {u.id: Person(u.id, u.display_name, u.npi, u.credential) for u in rows}


def deadline(encounter: Encounter) -> tuple[int, date, bool]:
    """(days since the date of service, the late deadline, whether it has passed)."""
    days = get_compliance().attestation.deadline_days
    today = utcnow().date()
    due = encounter.date_of_service + timedelta(days=days)
    return (today - encounter.date_of_service).days, due, today > due


def lines_of(session: Session, encounter_id: str) -> list[CodeLine]:
    """Every line of the encounter, active and voided (an encounter has a handful)."""
    stmt = select(CodeLine).where(CodeLine.encounter_id == encounter_id)
    return list(session.exec(stmt.order_by(col(CodeLine.entered_at), col(CodeLine.id))).all())


def last_attestation(session: Session, encounter_id: str) -> Attestation | None:
    stmt = select(Attestation).where(Attestation.encounter_id == encounter_id)
    return session.exec(stmt.order_by(col(Attestation.signed_at).desc())).first()


def changes_since(session: Session, scope: ReadScope, attestation: Attestation | None) -> list[Change]:
    """The code events after the last attestation (its ledger seq), as added/removed/changed."""
    if attestation is None or attestation.status == "valid":
        return []
    after_seq = attestation.ledger_seq or 0
    entries = [
        e
        for e in history_entries(session, scope)
        if e["seq"] > after_seq and e["type"] in CODE_EVENTS and e["outcome"] == "allowed"
    ]
    changes = []
    for e in entries:
        author = e["actor"].get("display_name") or e["actor"].get("username") or "?"
        before, after = e.get("before") or {}, e.get("after") or {}
        line_id = (e.get("subject") or {}).get("id") or ""
        if e["type"] == "code.add":
            changes.append(Change("added", line_id, e["at"], author, e.get("reason"), after))
        elif e["type"] == "code.void":
            changes.append(Change("removed", line_id, e["at"], author, e.get("reason"), before))
        else:
            diff = [(f, before.get(f), after.get(f)) for f in LINE_FIELDS if before.get(f) != after.get(f)]
            changes.append(Change("changed", line_id, e["at"], author, e.get("reason"), after, diff))
    return changes


def code_descriptions(session: Session, lines: list[CodeLine]) -> dict[tuple[str, str], str]:
    """(system, code) -> description, where a loaded release carries one. None do yet: the built-in
    releases and the imported CMS files keep codes, validity and billability only (CPT descriptors
    are AMA-licensed), so the page leaves the column out until a release stores descriptions."""
    return {}


LINE_SORTS: dict[str, Any] = {
    "entered": lambda line, names: (line.entered_at, line.id),
    "system": lambda line, names: (line.system, line.code),
    "code": lambda line, names: line.code,
    "modifiers": lambda line, names: list(line.modifiers),
    "units": lambda line, names: line.units,
    "pointers": lambda line, names: list(line.diagnosis_pointers),
    "version": lambda line, names: line.version,
    "status": lambda line, names: line.status,
    "entered_by": lambda line, names: names[line.entered_by].name.lower() if line.entered_by in names else "",
    "changed": lambda line, names: (line.changed_at, line.id),
}


def encounter_context(
    session: Session, encounter: Encounter, scope: ReadScope, lst: Listing | None = None
) -> dict[str, Any]:
    lines = lines_of(session, encounter.id)
    active = [line for line in lines if line.status == "active"]
    delegation_ids = {line.delegation_id for line in lines if line.delegation_id}
    delegations = (
        {
            d.id: d
            for d in session.exec(select(Delegation).where(col(Delegation.id).in_(sorted(delegation_ids))))
        }
        if delegation_ids
        else {}
    )
    ids = {encounter.rendering_provider_id, *encounter.supervising_provider_ids}
    ids |= {line.entered_by for line in lines} | {line.changed_by for line in lines}
    ids |= {d.provider_id for d in delegations.values()}
    names = people(session, ids)
    if lst is not None:  # an encounter has a handful of lines: sorted here, shown whole
        lines.sort(key=lambda line: LINE_SORTS[lst.sort](line, names), reverse=lst.desc)
    compliance = get_compliance()
    blockers, codeset_findings = line_blockers(
        session, lines=active, dos=encounter.date_of_service, unverified_mode=compliance.codesets.unverified
    )
    edits = [
        finding_view(f) for f in encounter_findings(session, lines=active, dos=encounter.date_of_service)
    ]
    attestation = last_attestation(session, encounter.id)
    since, due, late = deadline(encounter)
    digest = code_set_digest(
        encounter_id=encounter.id,
        rendering_provider_id=encounter.rendering_provider_id,
        date_of_service=encounter.date_of_service,
        lines=[line_state(line) for line in active],
    )
    return {
        "encounter": encounter,
        "provider": names.get(encounter.rendering_provider_id),
        "supervisors": [names[s] for s in encounter.supervising_provider_ids if s in names],
        "lines": lines,
        "lst": lst,
        "descriptions": code_descriptions(session, lines),
        "line_by_id": {line.id: line for line in lines},
        "active_count": len(active),
        "names": names,
        "delegations": delegations,
        "blockers": blockers,
        "codeset_findings": codeset_findings,
        "edits": edits,
        "attestation": attestation,
        "changes": changes_since(session, scope, attestation),
        "days_since": since,
        "due": due,
        "late": late,
        "meaning": compliance.attestation.meaning,
        "digest": digest,
        "reason_required": encounter.status in ("attested", "amended")
        and compliance.amendments.reason_required_after_attestation,
    }
