"""Compliance oversight on an encounter: flags (something to review) and annotations (notes)."""

from __future__ import annotations

from sqlmodel import Session

from audit.encounter.service import encounter_res, load_encounter
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import EncounterNote
from audit.policy.guard import Target, authorize
from audit.principal import CurrentUser


def add_note(
    session: Session, *, user: CurrentUser, encounter_id: str, kind: str, text: str
) -> EncounterNote:
    encounter = load_encounter(session, encounter_id)
    action = "encounter.flag" if kind == "flag" else "encounter.annotate"
    target = Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id)
    grant = authorize(user, action, target, encounter_res(encounter))
    note = EncounterNote(encounter_id=encounter.id, kind=kind, text=text, author_id=user.id)
    session.add(note)
    session.flush()
    ledger.append_one(
        session,
        EventDraft(
            type=action,
            actor=user.actor(grant.role),
            subject_type="encounter_note",
            subject_id=note.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            policy=grant.policy,
            reason=text if kind == "flag" else None,
            after={"kind": kind, "text": text},
        ),
    )
    return note
