"""Attestation: only the provider of record (or a listed supervisor) signs, re-entering their password.

The signature manifests printed name, credential, NPI, time and meaning (21 CFR 11.50) and is bound to
the exact code set by its digest (11.70). Any later change supersedes it (`supersede_on_change`, in
`audit.encounter.signature`; re-exported here with the view for callers that speak of attestations).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session

from audit.codesets.validation import blocking, encounter_findings, finding_view, line_blockers
from audit.encounter.service import active_lines, encounter_res, load_encounter
from audit.encounter.signature import attestation_view, current_attestation, supersede_on_change
from audit.encounter.views import line_state
from audit.errors import Conflict, InvalidInput, NotAuthenticated
from audit.ledger import service as ledger
from audit.ledger.chain import rfc3339
from audit.ledger.digest import code_set_digest
from audit.ledger.events import FAILED
from audit.models import Attestation, Encounter, User, utcnow
from audit.policy.guard import Grant, Target, authorize
from audit.policy.runtime import get_compliance, get_policy_engine
from audit.principal import CurrentUser
from audit.security import verify_password


class ReauthenticationFailed(NotAuthenticated):
    kind = "ReauthenticationFailed"


def attest(session: Session, *, user: CurrentUser, encounter_id: str, password: str) -> Attestation:
    encounter = load_encounter(session, encounter_id, for_update=True)
    signer = session.get(User, user.id)
    assert signer is not None
    target = Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id)
    now = utcnow()
    # Policy first: someone who may not sign (a coder, a locked signer) is refused without a password
    # check, so their attempts never count toward the signing lock. The password re-entered now is
    # the re-authentication the policy requires (reauth_at).
    grant = authorize(user, "encounter.attest", target, encounter_res(encounter), {"reauth_at": now})
    if not (signer.npi or "").strip():
        raise _without_npi(grant)
    if not verify_password(password, signer.password_hash):
        raise failed_signing(grant, "password re-entry failed")
    lines = active_lines(session, encounter.id)
    if not lines:
        raise _refused_signing(grant, "the encounter has no active code lines to attest")
    if encounter.status == "attested":
        raise Conflict("the encounter is already attested and unchanged since", field="encounter_id")
    compliance = get_compliance()
    stopped, codeset = line_blockers(
        session, lines=lines, dos=encounter.date_of_service, unverified_mode=compliance.codesets.unverified
    )
    if stopped:
        reason = "code-set checks block attestation: " + "; ".join(
            f"line {b['line_id']} {b['system']} {b['code']}: {b['status']}" for b in stopped
        )
        raise _refused_signing(grant, reason, lines=stopped)
    findings = encounter_findings(session, lines=lines, dos=encounter.date_of_service)
    blocked = blocking(findings, ncci_mode=compliance.edits.ncci_mode, mue_mode=compliance.edits.mue_mode)
    if blocked:
        reason = "NCCI/MUE edits block attestation: " + "; ".join(f.message for f in blocked)
        raise _refused_signing(grant, reason, findings=[finding_view(f) for f in blocked])
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
    attestation.ledger_seq = ledger.append_now(
        session,
        grant.event(
            subject_type="attestation",
            subject_id=attestation.id,
            before={"status": before_status},
            after={**attestation_view(attestation), "lines": [line_state(line) for line in lines]},
            detail={"findings": codeset + [finding_view(f) for f in findings]} if findings or codeset else {},
        ),
        now=now,
    )
    return attestation


def is_late(encounter: Encounter, signed_at: datetime, deadline_days: int) -> bool:
    return (signed_at.date() - encounter.date_of_service).days > deadline_days


def failed_signing(grant: Grant, reason: str) -> ReauthenticationFailed:
    """A wrong password at signing (an attestation, an audit report): a `failed` event that counts
    toward the signing lock (21 CFR 11.300(d)); the lock stops signing only, never the account."""
    error = ReauthenticationFailed("the password re-entered for signing is not correct")

    def record(session: Session) -> None:
        assert grant.user is not None
        detail = count_signing_failure(session, grant.user.id, utcnow())
        ledger.append_one(session, grant.event(outcome=FAILED, reason=reason, detail=detail))

    error.recording(record)
    return error


def count_signing_failure(session: Session, user_id: str, now: datetime) -> dict[str, object]:
    """Count a wrong password at signing; at the policy's threshold, lock signing for a while."""
    rule = get_compliance().signing_lock
    signer = session.get(User, user_id, with_for_update=True)
    assert signer is not None
    signer.failed_signings += 1
    count = signer.failed_signings
    if count >= rule.max_failed_signings:
        signer.signing_locked_until = now + timedelta(minutes=rule.lock_minutes)
        signer.failed_signings = 0
    session.add(signer)
    session.flush()
    until = signer.signing_locked_until
    return {
        "failed_signings": count,
        "signing_locked_until": rfc3339(until) if until and until > now else None,
    }


def _without_npi(grant: Grant) -> InvalidInput:
    """A signature manifests the signer's NPI (21 CFR 11.50, CMS PIM 3.3.2.4): a provider account
    without one is refused before the password is checked, so the attempt never counts toward the
    signing lock. Recorded as a `failed` attempt naming the field."""
    reason = "the signer has no NPI on record; an administrator must add it before they can attest"
    error = InvalidInput("npi", reason)
    detail = {"field": "npi", "message": reason}
    return ledger.refuse_with(error, grant.event(outcome=FAILED, reason=reason, detail=detail))


def _refused_signing(grant: Grant, reason: str, **extra: Any) -> Conflict:
    """A signing the checks refuse after the policy allowed it: a `failed` event saying why."""
    error = Conflict(reason, field="encounter_id", **extra)
    return ledger.refuse_with(error, grant.event(outcome=FAILED, reason=reason, detail=dict(extra)))


__all__ = [
    "ReauthenticationFailed",
    "attest",
    "attestation_view",
    "count_signing_failure",
    "current_attestation",
    "is_late",
    "supersede_on_change",
]
