"""The set-based path of a bulk import: the common rows (a new encounter, a new line on an open
encounter) decided with the API's own rules and written with Core inserts, one statement per table
per batch, instead of one ORM flush per row.

Every rule is the one the services apply, through the same functions: `acting_user`'s delegation of
authority, `authorize()` (memoised per distinct decision by `decision_memo`, so Cedar runs once per
distinct actor, provider, code system and encounter facts), candidate delegations, code-set checks
(`check_line`), the edit findings over the encounter's active lines (`evaluate_edits` on the lines
as `active_lines` would return them) and the event built by the grant (`Grant.event`), with the same
before/after views (`line_state`, `encounter_state`). A row the fast path would refuse, or one it does
not cover (a change, an encounter that is not `open`, a diagnosis pointer that does not resolve), is
not refused here: it raises `SlowPath` before anything of it is planned, and the batch runs it
through the services, which write the refusal event exactly as the API does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlmodel import Session

from audit.codesets.edits import EditTables, evaluate_edits
from audit.codesets.formats import CodeFormatError, normalize_system
from audit.codesets.store import edit_tables_for
from audit.codesets.validation import check_line, finding_view
from audit.delegation.lookup import candidate_delegations
from audit.encounter.codes import _require_reason, _validated
from audit.encounter.schemas import CodeLineCreate, EncounterCreate
from audit.encounter.service import encounter_res
from audit.encounter.views import encounter_state, line_state
from audit.errors import DomainError
from audit.ledger.events import ROW_TIME, EventDraft
from audit.models import CodeLine, Encounter, User, new_id, utcnow
from audit.policy.engine import EncounterRes
from audit.policy.guard import Grant, Target, authorize
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser

ENCOUNTER = Encounter.__table__  # type: ignore[attr-defined]
CODE_LINE = CodeLine.__table__  # type: ignore[attr-defined]
PROCEDURE_SYSTEMS = ("CPT", "HCPCS")


class SlowPath(Exception):
    """This row goes through the services (nothing of it was planned here)."""


@dataclass
class NewEncounter:
    """An encounter planned in this batch: the fields the checks, the policy and `encounter_state`
    read (an ORM object costs more to build than the rest of the row)."""

    id: str
    source: str
    external_id: str
    patient_ref: str
    date_of_service: date
    rendering_provider_id: str
    created_by: str
    created_at: datetime
    supervising_provider_ids: list[str] = field(default_factory=list)
    status: str = "open"


AnyEncounter = Encounter | NewEncounter


@dataclass
class LineFacts:
    """An active code line as the edit checks and `line_state` read it (a CodeLine's fields)."""

    id: str
    system: str
    code: str
    modifiers: list[str]
    units: int
    diagnosis_pointers: list[int]
    entered_at: datetime
    version: int = 1
    status: str = "active"
    void_reason: str | None = None

    @property
    def order(self) -> tuple[datetime, str]:
        """`active_lines` order: entered_at, then id."""
        return (self.entered_at, self.id)


@dataclass
class Planned:
    """Rows decided in this batch and not yet written: encounters, then lines (foreign keys)."""

    encounters: list[dict[str, Any]] = field(default_factory=list)
    lines: list[dict[str, Any]] = field(default_factory=list)

    def write(self, session: Session) -> None:
        if self.encounters:
            session.execute(insert(ENCOUNTER), self.encounters)
        if self.lines:
            session.execute(insert(CODE_LINE), self.lines)
        self.encounters, self.lines = [], []


@dataclass
class FastRows:
    """The fast path of one batch. `active` holds each touched open encounter's active lines (read
    in one query at the start of the batch, kept up to date by the lines planned here); a row that
    goes through the services drops its encounter's entry, to be read again."""

    session: Session
    submitter: CurrentUser
    pending: list[tuple[EventDraft, datetime | None]]
    planned: Planned = field(default_factory=Planned)
    active: dict[str, list[LineFacts]] = field(default_factory=dict)
    actors: dict[str, CurrentUser] = field(default_factory=dict)
    tables: dict[tuple[date, frozenset[str]], EditTables] = field(default_factory=dict)
    grants: dict[tuple[Any, ...], Grant] = field(default_factory=dict)
    checked: dict[tuple[Any, ...], list[dict[str, Any]]] = field(default_factory=dict)

    def authorize(
        self,
        actor_user: CurrentUser,
        via: CurrentUser | None,
        action: str,
        target: Target,
        resource: EncounterRes,
        context: dict[str, Any] | None = None,
    ) -> Grant:
        """`authorize()` once per distinct decision in the batch: the same user, integration account,
        action, encounter facts (not its id), context and candidate delegations, within the same
        minute, is the same decision (`decision_memo` keys Cedar's answers the same way; the candidate
        delegations are read once per batch, `batch_reads`). The grant's
        target is that of its first row: events built from it name their own subject and encounter."""
        key = (
            actor_user.id,
            via is not None,
            action,
            target.subject_type,
            target.provider_id,
            resource.rendering_provider_id,
            resource.supervising_provider_ids,
            resource.date_of_service,
            resource.status,
            tuple(sorted((context or {}).items())),
            int(time.time()) // 60,
        )
        grant = self.grants.get(key)
        if grant is None:
            delegations = candidate_delegations(self.session, actor_user, resource.rendering_provider_id)
            grant = authorize(actor_user, action, target, resource, context, via=via, delegations=delegations)
            self.grants[key] = grant
        return grant

    def load_active(self, encounters: Sequence[AnyEncounter]) -> None:
        """The active lines of the batch's existing open encounters, in one query."""
        ids = [e.id for e in encounters if e.status == "open" and e.id not in self.active]
        if not ids:
            return
        for e_id in ids:
            self.active[e_id] = []
        c = CODE_LINE.c
        rows = self.session.execute(
            select(
                c.id, c.encounter_id, c.system, c.code, c.modifiers, c.units, c.diagnosis_pointers,
                c.entered_at, c.version,
            ).where(c.encounter_id.in_(ids), c.status == "active")
        )  # fmt: skip
        for r in rows:
            self.active[r.encounter_id].append(
                LineFacts(
                    r.id, r.system, r.code, list(r.modifiers), r.units, list(r.diagnosis_pointers),
                    r.entered_at, r.version,
                )
            )  # fmt: skip
        for e_id in ids:
            self.active[e_id].sort(key=lambda ln: ln.order)

    def acting(self, entered_for: User, on_behalf_of: str | None) -> tuple[CurrentUser, CurrentUser | None]:
        """`acting_user` for a row whose user the batch already read (active, by `_prefetch`)."""
        if on_behalf_of is None:
            return self.submitter, None
        actor = self.actors.get(entered_for.id)
        if actor is None:
            actor = self.actors[entered_for.id] = CurrentUser.of(entered_for)
        return actor, self.submitter

    def create_encounter(self, data: EncounterCreate, entered_for: User) -> NewEncounter:
        """`create_encounter` for a key the batch knows to be new, its provider checked by
        `_prefetch` (an active provider with that NPI)."""
        actor_user, via = self.acting(entered_for, data.on_behalf_of)
        if data.supervising_provider_ids:
            raise SlowPath
        target = Target("encounter", None, provider_id=data.rendering_provider_id)
        resource = EncounterRes(
            id="new",
            rendering_provider_id=data.rendering_provider_id,
            supervising_provider_ids=frozenset(),
            date_of_service=data.date_of_service,
        )
        try:
            grant = self.authorize(actor_user, via, "encounter.create", target, resource)
        except DomainError as exc:
            raise SlowPath from exc
        now = utcnow()
        encounter = NewEncounter(
            id=new_id(),
            source=data.source,
            external_id=data.external_id,
            patient_ref=data.patient_ref,
            date_of_service=data.date_of_service,
            rendering_provider_id=data.rendering_provider_id,
            created_by=actor_user.id,
            created_at=now,
        )
        self.planned.encounters.append(
            {
                "id": encounter.id,
                "source": encounter.source,
                "external_id": encounter.external_id,
                "patient_ref": encounter.patient_ref,
                "date_of_service": encounter.date_of_service,
                "rendering_provider_id": encounter.rendering_provider_id,
                "supervising_provider_ids": [],
                "status": "open",
                "created_by": encounter.created_by,
                "created_at": now,
            }
        )
        self.active[encounter.id] = []
        draft = grant.event(
            subject_id=encounter.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            after=encounter_state(encounter),  # type: ignore[arg-type]
            detail=dict(ROW_TIME),
        )
        self.pending.append((draft, now))
        return encounter

    def add_code(self, encounter: AnyEncounter, data: CodeLineCreate, entered_for: User) -> str:
        """`add_code` on an open encounter; returns the new line's id."""
        lines = self.active.get(encounter.id)
        if lines is None or encounter.status != "open":
            raise SlowPath  # an amendment (or an encounter a service changed): the services decide
        try:
            system = normalize_system(data.system)
        except CodeFormatError as exc:
            raise SlowPath from exc
        actor_user, via = self.acting(entered_for, data.on_behalf_of)
        try:
            grant = self.authorize(
                actor_user,
                via,
                "code.add",
                Target("code_line", None, encounter.id, encounter.rendering_provider_id),
                encounter_res(encounter),  # type: ignore[arg-type]
                {"code_system": system},
            )
            _require_reason(encounter, data.reason)  # type: ignore[arg-type]
            code, modifiers = _validated(system, data.code, data.modifiers)
            codeset = self._check_line(system, code, modifiers, encounter.date_of_service)
        except DomainError as exc:
            raise SlowPath from exc
        if data.diagnosis_pointers and not _pointers_resolve(system, data.diagnosis_pointers, lines):
            raise SlowPath
        now = utcnow()
        line = LineFacts(
            new_id(), system, code, modifiers, data.units, list(data.diagnosis_pointers), entered_at=now
        )
        self.planned.lines.append(
            {
                "id": line.id,
                "encounter_id": encounter.id,
                "system": system,
                "code": code,
                "modifiers": modifiers,
                "units": line.units,
                "diagnosis_pointers": line.diagnosis_pointers,
                "version": 1,
                "status": "active",
                "entered_by": actor_user.id,
                "entered_role": grant.role,
                "delegation_id": grant.delegation_id,
                "entered_at": now,
                "changed_by": actor_user.id,
                "changed_at": now,
                "void_reason": None,
            }
        )
        lines.append(line)
        if len(lines) > 1 and lines[-2].order > line.order:
            lines.sort(key=lambda ln: ln.order)
        draft = grant.event(
            type="code.add",
            provider_id=encounter.rendering_provider_id,
            subject_id=line.id,
            encounter_id=encounter.id,
            detail=dict(ROW_TIME),
            reason=data.reason,
            after=line_state(line),  # type: ignore[arg-type]
        )
        findings = list(codeset) + self._edit_findings(lines, encounter.date_of_service)
        if findings:
            draft.detail = {**draft.detail, "findings": findings}
        self.pending.append((draft, now))
        return line.id

    def _check_line(self, system: str, code: str, modifiers: list[str], dos: date) -> list[dict[str, Any]]:
        """`check_line`, once per distinct code, modifiers and date of service in the batch: its
        answer depends on those and on the code-set releases, which the batch reads once
        (`batch_reads`). A refusal (InvalidInput) is not remembered: the row goes to the services."""
        mode = get_compliance().codesets.unverified
        key = (system, code, tuple(modifiers), dos, mode)
        known = self.checked.get(key)
        if known is None:
            known = check_line(
                self.session, system=system, code=code, modifiers=modifiers, dos=dos, unverified_mode=mode
            )
            self.checked[key] = known
        return [dict(f) for f in known]  # each event its own findings

    def _edit_findings(self, lines: list[LineFacts], dos: date) -> list[dict[str, Any]]:
        """`encounter_findings` over the encounter's active lines; the edit tables are read once per
        date of service and set of codes in the batch (the same two queries, not one pair per line)."""
        procedures = [ln for ln in lines if ln.system in PROCEDURE_SYSTEMS]
        if not procedures:
            return []
        codes = frozenset(ln.code for ln in procedures)
        key = (dos, codes)
        tables = self.tables.get(key)
        if tables is None:
            tables = self.tables[key] = edit_tables_for(self.session, codes=codes, date_of_service=dos)
        return [finding_view(f) for f in evaluate_edits(procedures, dos, tables)]


def _pointers_resolve(system: str, pointers: Sequence[int], lines: Sequence[LineFacts]) -> bool:
    """`_check_pointers` would accept these pointers (1-based, into the active ICD-10-CM lines)."""
    if system.startswith("ICD-10"):
        return False
    diagnoses = sum(1 for ln in lines if ln.system == "ICD-10-CM")
    return all(1 <= p <= diagnoses for p in pointers)
