"""The signature on an encounter as the encounter sees it: the current valid attestation, its public
view, and its supersession when the codes it covers change (DESIGN: any later change supersedes it).

It lives with the encounter, below `audit.attestation` (which signs): code writes need to supersede
a signature without importing the signing service, so the two packages import one way only.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from audit.ledger import service as ledger
from audit.ledger.chain import rfc3339
from audit.ledger.events import ROW_TIME, Actor, EventDraft, PolicyRef
from audit.models import Attestation, Encounter, utcnow


def attestation_view(a: Attestation) -> dict[str, Any]:
    return {
        "id": a.id,
        "encounter_id": a.encounter_id,
        "signer_id": a.signer_id,
        "printed_name": a.printed_name,
        "credential": a.credential,
        "npi": a.npi,
        "signed_at": rfc3339(a.signed_at),
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


def current_attestations(session: Session, encounter_ids: list[str]) -> dict[str, Attestation]:
    """`current_attestation` of several encounters in one query."""
    found: dict[str, Attestation] = {}
    if not encounter_ids:
        return found
    stmt = (
        select(Attestation)
        .where(col(Attestation.encounter_id).in_(encounter_ids), Attestation.status == "valid")
        .order_by(col(Attestation.signed_at))
    )
    for attestation in session.exec(stmt).all():
        found[attestation.encounter_id] = attestation  # the newest signed wins
    return found


def supersede_on_change(
    session: Session, *, encounter: Encounter, actor: Actor, policy: PolicyRef, cause_line_id: str
) -> Attestation | None:
    """A change after attestation supersedes it and marks the encounter `amended` (needs re-attestation)."""
    attestation = current_attestation(session, encounter.id)
    if attestation is None:
        return None
    before = attestation_view(attestation)
    now = utcnow()
    attestation.status, attestation.superseded_at = "superseded", now
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
            detail=dict(ROW_TIME),
        ),
        now=now,
    )
    return attestation
