"""Code lines: add, change (optimistic concurrency on the line version), void with a reason.

Nothing is updated without the ledger recording the before and after in the same transaction,
and nothing is deleted: a removal voids the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from audit.attestation.service import supersede_on_change
from audit.codesets.formats import CodeFormatError, normalize_code, normalize_modifiers, normalize_system
from audit.codesets.validation import check_line, encounter_findings, finding_view
from audit.delegation.lookup import candidate_delegations
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, ReasonIn
from audit.encounter.service import _on_behalf, acting_user, active_lines, encounter_res, load_encounter
from audit.encounter.views import line_state
from audit.errors import Conflict, InvalidInput, NotFound, PreconditionFailed, PreconditionRequired
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft, PolicyRef
from audit.models import CodeLine, Encounter, utcnow
from audit.policy.guard import Grant, Target, authorize
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser


def parse_if_match(value: str | None) -> int:
    """`If-Match: "3"` (quotes and a weak prefix tolerated) -> 3; 428 when absent."""
    if value is None or not value.strip():
        raise PreconditionRequired('If-Match header with the line version is required, e.g. If-Match: "1"')
    text = value.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise InvalidInput("If-Match", f"If-Match must be a line version number in quotes, got {value!r}")
    return int(text)


def _validated(system: str, code: str, modifiers: list[str]) -> tuple[str, str, list[str]]:
    try:
        canonical = normalize_system(system)
        return canonical, normalize_code(canonical, code), normalize_modifiers(modifiers)
    except CodeFormatError as exc:
        raise InvalidInput(exc.field, exc.message) from exc


@dataclass(frozen=True)
class Writer:
    """Who writes a line: the user whose authority is used, the grant that allowed it, and the
    integration account submitting for them (if any)."""

    user: CurrentUser
    grant: Grant
    via: CurrentUser | None

    def event(self, action: str, encounter: Encounter, line: CodeLine, **kw: Any) -> EventDraft:
        return EventDraft(
            type=action,
            actor=self.via.actor("integration") if self.via else self.user.actor(self.grant.role),
            on_behalf_of=_on_behalf(self.grant, self.user, self.via),
            subject_type="code_line",
            subject_id=line.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            policy=self.grant.policy,
            **kw,
        )


def _authorize_write(
    session: Session,
    user: CurrentUser,
    action: str,
    encounter: Encounter,
    line: tuple[str | None, str],
    on_behalf_of: str | None,
) -> Writer:
    """Decide a code write; `line` is (line id, or None for a new line; its code system)."""
    actor_user, via = acting_user(session, user, on_behalf_of)
    line_id, system = line
    grant = authorize(
        actor_user,
        action,
        Target("code_line", line_id, encounter.id, encounter.rendering_provider_id),
        encounter_res(encounter),
        {"code_system": system},
        via=via,
        delegations=candidate_delegations(session, actor_user, encounter.rendering_provider_id),
    )
    return Writer(actor_user, grant, via)


def _require_reason(encounter: Encounter, reason: str | None) -> None:
    """PIM 3.3.2.5: an amendment after attestation says why (when compliance.yaml requires it)."""
    rules = get_compliance().amendments
    after_attestation = encounter.status in ("attested", "amended")
    if not (reason and reason.strip()) and (
        rules.reason_required_always or (after_attestation and rules.reason_required_after_attestation)
    ):
        raise InvalidInput("reason", "a reason is required for a change after attestation")


@dataclass
class LineResult:
    line: CodeLine
    findings: list[dict[str, Any]]


def _record(
    session: Session, draft: EventDraft, encounter: Encounter, line: CodeLine, warnings: list[str]
) -> LineResult:
    """Append the change's event with the code-set warnings and the encounter's NCCI/MUE findings
    (a bypass is recorded with its modifier; the event's actor applied it). A change to attested codes
    is marked as an amendment and supersedes the attestation in the same transaction."""
    findings = [{"kind": "codeset", "severity": "warning", "message": w} for w in warnings]
    lines = active_lines(session, encounter.id)
    findings += [
        finding_view(f) for f in encounter_findings(session, lines=lines, dos=encounter.date_of_service)
    ]
    if findings:
        draft.detail = {**draft.detail, "findings": findings}
    if encounter.status in ("attested", "amended"):
        draft.detail = {**draft.detail, "amendment": True}
    ledger.append_one(session, draft)
    if encounter.status == "attested":
        supersede_on_change(
            session,
            encounter=encounter,
            actor=draft.actor,
            policy=draft.policy or PolicyRef(""),
            cause_line_id=line.id,
        )
    return LineResult(line, findings)


def add_code(session: Session, *, user: CurrentUser, encounter_id: str, data: CodeLineCreate) -> LineResult:
    encounter = load_encounter(session, encounter_id, for_update=True)
    system, code, modifiers = _validated(data.system, data.code, data.modifiers)
    writer = _authorize_write(session, user, "code.add", encounter, (None, system), data.on_behalf_of)
    _require_reason(encounter, data.reason)
    warnings = check_line(
        session, system=system, code=code, modifiers=modifiers, dos=encounter.date_of_service
    )
    now = utcnow()
    line = CodeLine(
        encounter_id=encounter.id,
        system=system,
        code=code,
        modifiers=modifiers,
        units=data.units,
        diagnosis_pointers=list(data.diagnosis_pointers),
        entered_by=writer.user.id,
        entered_role=writer.grant.role,
        delegation_id=writer.grant.delegation_id,
        entered_at=now,
        changed_by=writer.user.id,
        changed_at=now,
    )
    _check_pointers(session, encounter, line)
    session.add(line)
    session.flush()
    draft = writer.event("code.add", encounter, line, reason=data.reason, after=line_state(line))
    return _record(session, draft, encounter, line, warnings)


def _load_line(session: Session, encounter: Encounter, line_id: str) -> CodeLine:
    line = session.exec(
        select(CodeLine).where(CodeLine.id == line_id, CodeLine.encounter_id == encounter.id)
    ).first()
    if line is None:
        raise NotFound(f"code line {line_id} not found on encounter {encounter.id}")
    return line


def change_code(
    session: Session,
    *,
    user: CurrentUser,
    encounter_id: str,
    line_id: str,
    if_match: str | None,
    data: CodeLinePatch,
) -> LineResult:
    encounter = load_encounter(session, encounter_id, for_update=True)
    line = _load_line(session, encounter, line_id)
    expected = parse_if_match(if_match)
    writer = _authorize_write(
        session, user, "code.change", encounter, (line.id, line.system), data.on_behalf_of
    )
    _require_reason(encounter, data.reason)
    if line.status != "active":
        raise Conflict(f"code line {line.id} is voided and cannot change", field="line_id")
    if expected != line.version:
        raise PreconditionFailed(
            f"code line {line.id} is at version {line.version}, not {expected}; reload and retry",
            current_version=line.version,
        )
    before = line_state(line)
    _, code, modifiers = _validated(
        line.system,
        data.code if data.code is not None else line.code,
        data.modifiers if data.modifiers is not None else list(line.modifiers),
    )
    line.code, line.modifiers = code, modifiers
    if data.units is not None:
        line.units = data.units
    if data.diagnosis_pointers is not None:
        line.diagnosis_pointers = list(data.diagnosis_pointers)
    if line_state(line) == before:
        raise InvalidInput("body", "the change leaves the line as it is; send at least one changed field")
    _check_pointers(session, encounter, line)
    warnings = check_line(
        session, system=line.system, code=line.code, modifiers=line.modifiers, dos=encounter.date_of_service
    )
    return _save_version(session, "code.change", writer, encounter, line, before, data.reason, warnings)


def void_code(
    session: Session, *, user: CurrentUser, encounter_id: str, line_id: str, data: ReasonIn
) -> LineResult:
    encounter = load_encounter(session, encounter_id, for_update=True)
    line = _load_line(session, encounter, line_id)
    writer = _authorize_write(
        session, user, "code.void", encounter, (line.id, line.system), data.on_behalf_of
    )
    if line.status != "active":
        raise Conflict(f"code line {line.id} is already voided", field="line_id")
    before = line_state(line)
    line.status, line.void_reason = "voided", data.reason
    return _save_version(session, "code.void", writer, encounter, line, before, data.reason, [])


def _save_version(
    session: Session,
    action: str,
    writer: Writer,
    encounter: Encounter,
    line: CodeLine,
    before: dict[str, Any],
    reason: str | None,
    warnings: list[str],
) -> LineResult:
    """A changed or voided line becomes its next version; the ledger keeps the before and after."""
    line.version += 1
    line.changed_by, line.changed_at = writer.user.id, utcnow()
    session.add(line)
    session.flush()
    draft = writer.event(action, encounter, line, reason=reason, before=before, after=line_state(line))
    return _record(session, draft, encounter, line, warnings)


def _check_pointers(session: Session, encounter: Encounter, line: CodeLine) -> None:
    """Diagnosis pointers are 1-based positions in the encounter's active ICD-10-CM lines."""
    if not line.diagnosis_pointers:
        return
    if line.system.startswith("ICD-10"):
        raise InvalidInput(
            "diagnosis_pointers", "diagnosis pointers belong on procedure lines, not diagnoses"
        )
    diagnoses = session.exec(
        select(CodeLine.id).where(
            CodeLine.encounter_id == encounter.id, CodeLine.status == "active", CodeLine.system == "ICD-10-CM"
        )
    ).all()
    for i, pointer in enumerate(line.diagnosis_pointers):
        if pointer < 1 or pointer > len(diagnoses):
            raise InvalidInput(
                f"diagnosis_pointers[{i}]",
                f"pointer {pointer} does not name one of the encounter's {len(diagnoses)} active diagnoses",
            )
