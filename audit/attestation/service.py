"""Attestation: only the provider of record (or a listed supervisor) signs, re-entering their password.

The signature manifests printed name, credential, NPI, time and meaning (21 CFR 11.50) and is bound to
the exact code set by its digest (11.70). Any later change supersedes it (see `supersede_on_change`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.attestation.digest import code_set_digest
from audit.codesets.validation import blocking, encounter_findings, finding_view
from audit.encounter.service import active_lines, encounter_res, load_encounter
from audit.encounter.views import line_state
from audit.errors import Conflict, NotAuthenticated
from audit.ledger import service as ledger
from audit.ledger.events import FAILED, EventDraft, PolicyRef
from audit.models import Attestation, Encounter, User, utcnow
from audit.policy.guard import Target, authorize
from audit.policy.runtime import get_compliance, get_policy_engine
from audit.principal import CurrentUser
from audit.security import verify_password
from audit.user.service import count_failure


class ReauthenticationFailed(NotAuthenticated):
    kind = "ReauthenticationFailed"


def attestation_view(a: Attestation) -> dict[str, Any]:
    return {
        "id": a.id,
        "encounter_id": a.encounter_id,
        "signer_id": a.signer_id,
        "printed_name": a.printed_name,
        "credential": a.credential,
        "npi": a.npi,
        "signed_at": a.signed_at.isoformat().replace("+00:00", "Z"),
        "meaning": a.meaning,
        "code_set_digest": a.code_set_digest,
        "policy_version": a.policy_version,
        "late": a.late,
        "status": a.status,
    }


def current_attestation(session: Session, encounter_id: str) -> Attestation | None:
    return session.exec(
        select(Attestation)
        .where(Attestation.encounter_id == encounter_id, Attestation.status == "valid")
        .order_by(col(Attestation.signed_at).desc())
    ).first()


def attest(session: Session, *, user: CurrentUser, encounter_id: str, password: str) -> Attestation:
    encounter = load_encounter(session, encounter_id, for_update=True)
    signer = session.get(User, user.id)
    assert signer is not None
    target = Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id)
    if not verify_password(password, signer.password_hash):
        raise _failed_signing(user, target, "password re-entry failed")
    now = utcnow()
    grant = authorize(user, "encounter.attest", target, encounter_res(encounter), {"reauth_at": now})
    lines = active_lines(session, encounter.id)
    if not lines:
        raise _refused_signing(user, target, grant.policy, "the encounter has no active code lines to attest")
    if encounter.status == "attested":
        raise Conflict("the encounter is already attested and unchanged since", field="encounter_id")
    compliance = get_compliance()
    findings = encounter_findings(session, lines=lines, dos=encounter.date_of_service)
    blocked = blocking(findings, ncci_mode=compliance.edits.ncci_mode, mue_mode=compliance.edits.mue_mode)
    if blocked:
        reason = "NCCI/MUE edits block attestation: " + "; ".join(f.message for f in blocked)
        raise _refused_signing(
            user, target, grant.policy, reason, findings=[finding_view(f) for f in blocked]
        )
    digest = code_set_digest(
        encounter_id=encounter.id,
        rendering_provider_id=encounter.rendering_provider_id,
        date_of_service=encounter.date_of_service,
        lines=[line_state(line) for line in lines],
    )
    attestation = Attestation(
        encounter_id=encounter.id,
        signer_id=signer.id,
        printed_name=signer.display_name,
        credential=signer.credential or "",
        npi=signer.npi or "",
        signed_at=now,
        meaning=compliance.attestation.meaning,
        code_set_digest=digest,
        policy_version=get_policy_engine().version,
        late=is_late(encounter, now, compliance.attestation.deadline_days),
    )
    before_status = encounter.status
    encounter.status = "attested"
    signer.failed_signings = 0
    session.add_all([attestation, encounter, signer])
    session.flush()
    attestation.ledger_seq = ledger.append_one(
        session,
        EventDraft(
            type="encounter.attest",
            actor=user.actor(grant.role),
            subject_type="attestation",
            subject_id=attestation.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            policy=grant.policy,
            before={"status": before_status},
            after={**attestation_view(attestation), "lines": [line_state(line) for line in lines]},
            detail={"findings": [finding_view(f) for f in findings]} if findings else {},
        ),
        now=now,
    )
    return attestation


def is_late(encounter: Encounter, signed_at: datetime, deadline_days: int) -> bool:
    return (signed_at.date() - encounter.date_of_service).days > deadline_days


def _failed_signing(user: CurrentUser, target: Target, reason: str) -> ReauthenticationFailed:
    """A wrong password at signing: a `failed` event that counts toward lockout (21 CFR 11.300(d))."""
    error = ReauthenticationFailed("the password re-entered for signing is not correct")

    def record(session: Session) -> None:
        threshold = get_compliance().lockout.max_failed_signings
        detail = count_failure(session, user.id, "failed_signings", threshold)
        ledger.append_one(session, _signing_event(user, target, reason, FAILED, None, detail))

    error.recording(record)
    return error


def _refused_signing(
    user: CurrentUser, target: Target, policy: PolicyRef, reason: str, **extra: Any
) -> Conflict:
    error = Conflict(reason, field="encounter_id", **extra)
    return ledger.refuse_with(error, _signing_event(user, target, reason, FAILED, policy, dict(extra)))


def _signing_event(
    user: CurrentUser,
    target: Target,
    reason: str,
    outcome: str,
    policy: PolicyRef | None,
    detail: dict[str, Any],
) -> EventDraft:
    return EventDraft(
        type="encounter.attest",
        actor=user.actor("provider" if user.has("provider") else None),
        outcome=outcome,
        subject_type="encounter",
        subject_id=target.subject_id,
        encounter_id=target.encounter_id,
        provider_id=target.provider_id,
        reason=reason,
        policy=policy,
        detail=detail,
    )


def supersede_on_change(
    session: Session, *, encounter: Encounter, actor: Any, policy: PolicyRef, cause_line_id: str
) -> Attestation | None:
    """A change after attestation supersedes it and marks the encounter `amended` (needs re-attestation)."""
    attestation = current_attestation(session, encounter.id)
    if attestation is None:
        return None
    before = attestation_view(attestation)
    attestation.status, attestation.superseded_at = "superseded", utcnow()
    encounter.status = "amended"
    session.add_all([attestation, encounter])
    session.flush()
    ledger.append_one(
        session,
        EventDraft(
            type="attestation.supersede",
            actor=actor,
            subject_type="attestation",
            subject_id=attestation.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            policy=policy,
            reason=f"code line {cause_line_id} changed after attestation",
            before=before,
            after=attestation_view(attestation),
        ),
    )
    return attestation
