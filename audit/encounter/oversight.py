"""Compliance oversight on an encounter: flags (something to review), annotations (notes) and the
resolution of a flag."""

from __future__ import annotations

from sqlalchemy import select
from sqlmodel import Session

from audit.encounter.service import encounter_res, load_encounter
from audit.errors import Conflict, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import ROW_TIME
from audit.models import EncounterNote, utcnow
from audit.policy.filters import LED, in_log
from audit.policy.guard import Target, authorize
from audit.principal import CurrentUser


def add_note(
    session: Session, *, user: CurrentUser, encounter_id: str, kind: str, text: str
) -> EncounterNote:
    encounter = load_encounter(session, encounter_id)
    action = "encounter.flag" if kind == "flag" else "encounter.annotate"
    target = Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id)
    grant = authorize(user, action, target, encounter_res(encounter))
    note = EncounterNote(
        encounter_id=encounter.id, kind=kind, text=text, author_id=user.id, created_at=utcnow()
    )
    session.add(note)
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            subject_type="encounter_note",
            subject_id=note.id,
            reason=text if kind == "flag" else None,
            after={"kind": kind, "text": text},
            detail=dict(ROW_TIME),
        ),
        now=note.created_at,
    )
    return note


RESOLVE = "encounter.resolve_flag"


def resolution_seq(session: Session, flag: EncounterNote) -> int | None:
    """The seq of the event that resolved `flag`, if any: the ledger is the record of a resolution
    (its event names the flag as subject; the resolution's text is kept as a `resolution` note)."""
    stmt = select(LED.c.seq).where(
        in_log(),
        LED.c.encounter_id == flag.encounter_id,
        LED.c.type == RESOLVE,
        LED.c.outcome == "allowed",
        LED.c.subject_id == flag.id,
    )
    return session.execute(stmt.limit(1)).scalar_one_or_none()


def resolve_flag(session: Session, *, user: CurrentUser, flag_id: str, reason: str) -> EncounterNote:
    """Close a flag with a reason. Refused (409) when it is already resolved; a flag is never edited."""
    flag = session.get(EncounterNote, flag_id)
    if flag is None or flag.kind != "flag":
        raise NotFound("flag not found")
    encounter = load_encounter(session, flag.encounter_id, for_update=True)  # one resolver at a time
    target = Target("encounter_note", flag.id, encounter.id, encounter.rendering_provider_id)
    grant = authorize(user, RESOLVE, target, encounter_res(encounter))
    if resolution_seq(session, flag) is not None:
        raise Conflict("this flag is already resolved")
    note = EncounterNote(
        encounter_id=encounter.id, kind="resolution", text=reason, author_id=user.id, created_at=utcnow()
    )
    session.add(note)
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            subject_type="encounter_note",
            subject_id=flag.id,
            reason=reason,
            after={"kind": "resolution", "text": reason, "note_id": note.id},
            detail=dict(ROW_TIME),
        ),
        now=note.created_at,
    )
    return note
