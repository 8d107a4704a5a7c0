"""encounter-timeline: one encounter's every event and every signature with its manifestation."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.encounter.history import encounter_history
from audit.principal import CurrentUser
from audit.report.schemas import Report, Section
from audit.report.sql import ATT

EVENT_COLUMNS = [
    "seq", "at", "type", "outcome", "actor", "actor_role", "on_behalf_of", "subject", "reason", "before",
    "after",
]  # fmt: skip
SIGNATURE_COLUMNS = [
    "attestation_id", "printed_name", "credential", "npi", "signed_at", "meaning", "late", "status",
    "code_set_digest", "ledger_seq",
]  # fmt: skip


def _compact(value: Any) -> str:
    if value is None:
        return ""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _event_row(e: dict[str, Any]) -> list[Any]:
    actor = e["actor"]
    on_behalf = e.get("on_behalf_of") or {}
    subject = e.get("subject") or {}
    return [
        e["seq"], e["at"], e["type"], e["outcome"], actor.get("display_name") or actor.get("username") or "",
        actor.get("role") or "", on_behalf.get("display_name") or on_behalf.get("user_id") or "",
        f"{subject.get('type') or ''} {subject.get('id') or ''}".strip(), e.get("reason") or "",
        _compact(e.get("before")), _compact(e.get("after")),
    ]  # fmt: skip


def encounter_timeline(session: Session, user: CurrentUser, encounter_id: str) -> Report:
    events = encounter_history(session, user=user, encounter_id=encounter_id)
    signatures = session.execute(
        select(
            ATT.c.id, ATT.c.printed_name, ATT.c.credential, ATT.c.npi, ATT.c.signed_at, ATT.c.meaning,
            ATT.c.late, ATT.c.status, ATT.c.code_set_digest, ATT.c.ledger_seq,
        )
        .where(ATT.c.encounter_id == encounter_id)
        .order_by(ATT.c.signed_at)
    ).all()  # fmt: skip
    return Report(
        "encounter-timeline",
        f"Encounter timeline {encounter_id}",
        [
            Section("events", "Events, oldest first", list(EVENT_COLUMNS), [_event_row(e) for e in events]),
            Section("signatures", "Signatures", list(SIGNATURE_COLUMNS), [list(r) for r in signatures]),
        ],
    )
