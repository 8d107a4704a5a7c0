"""Code lines: add, change (optimistic concurrency on the line version), void with a reason.

Nothing is updated without the ledger recording the before and after in the same transaction,
and nothing is deleted: a removal voids the line.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, select

from audit.codesets.formats import (
    CodeFormatError,
    modifiers_allowed,
    normalize_code,
    normalize_modifiers,
    normalize_system,
)
from audit.codesets.validation import check_line, encounter_findings, finding_view
from audit.delegation.lookup import candidate_delegations
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, ReasonIn
from audit.encounter.service import acting_user, active_lines, encounter_res, load_encounter
from audit.encounter.signature import supersede_on_change
from audit.encounter.views import line_state
from audit.errors import Conflict, InvalidInput, NotFound, PreconditionFailed, PreconditionRequired
from audit.inputs import is_ascii_digits
from audit.ledger import service as ledger
from audit.ledger.events import FAILED, ROW_TIME, EventDraft, PolicyRef
from audit.models import CodeLine, Encounter, utcnow
from audit.policy.guard import Grant, Target, authorize
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser

MAX_VERSION_DIGITS = 18  # a line version fits a signed 64-bit integer


def parse_if_match(value: str | None) -> int:
    """`If-Match: "3"` (quotes and a weak prefix tolerated) -> 3; 428 when absent."""
    if value is None or not value.strip():
        raise PreconditionRequired(
            'If-Match header with the line version is required, e.g. If-Match: "1"', field="If-Match"
        )
    text = value.strip().removeprefix("W/").strip('"')
    if not is_ascii_digits(text) or len(text) > MAX_VERSION_DIGITS:
        shown = value if len(value) <= 40 else value[:40] + "..."
        raise InvalidInput(
            "If-Match", f'If-Match must be a line version number in quotes (e.g. "3"), got {shown!r}'
        )
    return int(text)


def _validated(system: str, code: str, modifiers: list[str]) -> tuple[str, list[str]]:
    try:
        modifiers_allowed(system, modifiers)
        return normalize_code(system, code), normalize_modifiers(modifiers)
    except CodeFormatError as exc:
        raise InvalidInput(exc.field, exc.message) from exc


def _system(user: CurrentUser, action: str, encounter: Encounter, system: str) -> str:
    """The canonical code system, or a 422 whose `failed` event names the field (the request is
    refused before any policy decision, so the event carries none)."""
    try:
        return normalize_system(system)
    except CodeFormatError as exc:
        error = InvalidInput(exc.field, exc.message)
        draft = EventDraft(
            type=action,
            actor=user.actor(),
            outcome=FAILED,
            subject_type="encounter",
            subject_id=encounter.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            reason=exc.message[:500],
            detail={"field": exc.field, "message": exc.message[:500]},
        )
        raise ledger.refuse_with(error, draft) from exc


@dataclass(frozen=True)
class Writer:
    """Who writes a line: the user whose authority is used, the grant that allowed it, and the
    integration account submitting for them (if any)."""

    user: CurrentUser
    grant: Grant
    via: CurrentUser | None

    def event(self, action: str, encounter: Encounter, line: CodeLine, **kw: Any) -> EventDraft:
        return self.grant.event(type=action, subject_id=line.id, detail=dict(ROW_TIME), **kw)

    @contextmanager
    def refusals(self, action: str, encounter: Encounter, line_id: str | None, system: str) -> Iterator[None]:
        """A 422 raised inside (format, code set, reason, pointers) leaves a `failed` event naming
        the field and the message: evidence of the refused entry, never the patient reference."""
        try:
            yield
        except InvalidInput as error:
            if error.record is None:
                message = error.detail[:500]
                detail: dict[str, Any] = {"field": error.field, "message": message, "system": system}
                if error.extra.get("release"):
                    detail["release"] = error.extra["release"]
                draft = self.grant.event(type=action, outcome=FAILED, reason=message, detail=detail)
                ledger.refuse_with(error, draft)
            raise


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


def _check(session: Session, encounter: Encounter, system: str, code: str, modifiers: list[str]) -> list[Any]:
    """The line's code-set findings on the encounter's date of service (422 when it is refused)."""
    return check_line(
        session,
        system=system,
        code=code,
        modifiers=modifiers,
        dos=encounter.date_of_service,
        unverified_mode=get_compliance().codesets.unverified,
    )


def _record(
    session: Session, draft: EventDraft, encounter: Encounter, line: CodeLine, codeset: list[dict[str, Any]]
) -> LineResult:
    """Append the change's event with the line's code-set findings (fallback, unverified, not
    loaded) and the encounter's NCCI/MUE findings (a bypass is recorded with its modifier; the
    event's actor applied it). A change to attested codes is marked as an amendment and supersedes
    the attestation in the same transaction."""
    findings = list(codeset)
    lines = active_lines(session, encounter.id)
    findings += [
        finding_view(f) for f in encounter_findings(session, lines=lines, dos=encounter.date_of_service)
    ]
    if findings:
        draft.detail = {**draft.detail, "findings": findings}
    if encounter.status in ("attested", "amended"):
        draft.detail = {**draft.detail, "amendment": True}
    ledger.append_one(session, draft, now=line.changed_at)  # the line's time is its event's ts
    if encounter.status == "attested":
        supersede_on_change(
            session,
            encounter=encounter,
            actor=draft.actor,
            policy=draft.policy or PolicyRef(""),
            cause_line_id=line.id,
        )
    return LineResult(line, findings)


def add_code(
    session: Session,
    *,
    user: CurrentUser,
    encounter_id: str,
    data: CodeLineCreate,
    locked: Encounter | None = None,
) -> LineResult:
    """`locked`: the encounter, when the caller already holds it locked in this transaction (a bulk
    import locks a batch's encounters at once); otherwise it is loaded and locked here."""
    if locked is not None and locked.id == encounter_id:
        encounter = locked
    else:
        encounter = load_encounter(session, encounter_id, for_update=True)
    system = _system(user, "code.add", encounter, data.system)
    writer = _authorize_write(session, user, "code.add", encounter, (None, system), data.on_behalf_of)
    with writer.refusals("code.add", encounter, None, system):
        _require_reason(encounter, data.reason)
        code, modifiers = _validated(system, data.code, data.modifiers)
        findings = _check(session, encounter, system, code, modifiers)
        line = _new_line(encounter, writer, system, code, modifiers, data)
        _check_pointers(session, encounter, line)
    session.add(line)
    session.flush()
    draft = writer.event("code.add", encounter, line, reason=data.reason, after=line_state(line))
    return _record(session, draft, encounter, line, findings)


def _new_line(
    encounter: Encounter, writer: Writer, system: str, code: str, modifiers: list[str], data: CodeLineCreate
) -> CodeLine:
    now = utcnow()
    return CodeLine(
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
    with writer.refusals("code.change", encounter, line.id, line.system):
        _require_reason(encounter, data.reason)
        if line.status != "active":
            raise Conflict(f"code line {line.id} is voided and cannot change", field="line_id")
        if expected != line.version:
            raise PreconditionFailed(
                f"code line {line.id} is at version {line.version}, not {expected}; reload and retry",
                current_version=line.version,
            )
        before = line_state(line)
        code, modifiers = _validated(
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
        findings = _check(session, encounter, line.system, line.code, line.modifiers)
    return _save_version(session, "code.change", writer, encounter, line, before, data.reason, findings)


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
    findings: list[dict[str, Any]],
) -> LineResult:
    """A changed or voided line becomes its next version; the ledger keeps the before and after."""
    line.version += 1
    line.changed_by, line.changed_at = writer.user.id, utcnow()
    session.add(line)
    session.flush()
    draft = writer.event(action, encounter, line, reason=reason, before=before, after=line_state(line))
    return _record(session, draft, encounter, line, findings)


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
