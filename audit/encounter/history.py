"""An encounter's whole story from the ledger, oldest first (PIM §3.3.2.5: nothing hidden)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from audit.encounter.service import read_encounter_scoped
from audit.ledger.service import LEDGER
from audit.models import User
from audit.policy.filters import event_clause
from audit.policy.scope import ReadScope
from audit.principal import CurrentUser


def encounter_history(session: Session, *, user: CurrentUser, encounter_id: str) -> list[dict[str, Any]]:
    _, scope = read_encounter_scoped(session, user=user, encounter_id=encounter_id)
    return history_entries(session, scope)


def history_entries(session: Session, scope: ReadScope) -> list[dict[str, Any]]:
    """Every event on the scope's one encounter, oldest first, with display names."""
    assert scope.encounter_id is not None, "a history is of one encounter"
    rows = session.execute(select(LEDGER.c.payload).where(event_clause(scope)).order_by(LEDGER.c.seq)).all()
    events = [json.loads(bytes(row[0])) for row in rows]
    names = event_display_names(session, events)
    return [_entry(event, names) for event in events]


def event_display_names(session: Session, events: Sequence[dict[str, Any]]) -> dict[str, str]:
    """Display names of the actors and on-behalf-of users of ledger payloads, in one query."""
    ids = {e["actor"]["id"] for e in events if (e.get("actor") or {}).get("id")}
    ids |= {e["on_behalf_of"]["user_id"] for e in events if (e.get("on_behalf_of") or {}).get("user_id")}
    if not ids:
        return {}
    rows = session.execute(select(col(User.id), col(User.display_name)).where(col(User.id).in_(ids))).all()
    return {str(uid): str(name) for uid, name in rows}


def _entry(event: dict[str, Any], names: dict[str, str]) -> dict[str, Any]:
    actor = dict(event["actor"])
    actor["display_name"] = names.get(actor.get("id") or "")
    on_behalf = event.get("on_behalf_of")
    if on_behalf:
        on_behalf = {**on_behalf, "display_name": names.get(on_behalf.get("user_id") or "")}
    return {
        "seq": event["seq"],
        "at": event["ts"],
        "type": event["type"],
        "outcome": event["outcome"],
        "actor": actor,
        "on_behalf_of": on_behalf,
        "subject": event["subject"],
        "reason": event.get("reason"),
        "policy": event.get("policy"),
        "before": event.get("before"),
        "after": event.get("after"),
        "detail": event.get("detail"),
    }
