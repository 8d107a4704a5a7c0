"""encounter-timeline: one encounter's every event and every signature with its manifestation."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.encounter.history import history_entries
from audit.policy.filters import attestation_clause
from audit.policy.scope import ReadScope
from audit.report.queries import code_text
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


def _state_text(subject_type: str | None, value: Any) -> str:
    """An original or changed value as a person reads it; nothing is left out."""
    if value is None:
        return ""
    if not isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False)
    if subject_type == "code_line" and "code" in value:
        pointers = value.get("diagnosis_pointers") or []
        text = f"{code_text(value)} (v{value.get('version')})"
        text += f", dx {','.join(map(str, pointers))}" if pointers else ""
        return text + (f", void reason: {value['void_reason']}" if value.get("void_reason") else "")
    if "printed_name" in value:
        return (
            f"{value['printed_name']} {value.get('credential', '')}, {value.get('status', '')}"
            f"{', late' if value.get('late') else ''}, digest {str(value.get('code_set_digest', ''))[:16]}"
        )
    shown = sorted((k, v) for k, v in value.items() if v not in (None, [], {}, ""))
    return "; ".join(f"{k.replace('_', ' ')}: {_compact(v)}" for k, v in shown)


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _event_row(e: dict[str, Any]) -> list[Any]:
    actor = e["actor"]
    on_behalf = e.get("on_behalf_of") or {}
    subject = e.get("subject") or {}
    return [
        e["seq"], e["at"], e["type"], e["outcome"], actor.get("display_name") or actor.get("username") or "",
        actor.get("role") or "", on_behalf.get("display_name") or on_behalf.get("user_id") or "",
        f"{subject.get('type') or ''} {subject.get('id') or ''}".strip(), e.get("reason") or "",
        _state_text(subject.get("type"), e.get("before")), _state_text(subject.get("type"), e.get("after")),
    ]  # fmt: skip


def encounter_timeline(session: Session, scope: ReadScope) -> Report:
    """The scope's one encounter: its events and signatures (the scope was authorised by the caller)."""
    encounter_id = scope.encounter_id
    events = history_entries(session, scope)
    signatures = session.execute(
        select(
            ATT.c.id, ATT.c.printed_name, ATT.c.credential, ATT.c.npi, ATT.c.signed_at, ATT.c.meaning,
            ATT.c.late, ATT.c.status, ATT.c.code_set_digest, ATT.c.ledger_seq,
        )
        .where(attestation_clause(scope))
        .order_by(ATT.c.signed_at, ATT.c.id)
    ).all()  # fmt: skip
    return Report(
        "encounter-timeline",
        f"Encounter timeline {encounter_id}",
        [
            Section("events", "Events, oldest first", list(EVENT_COLUMNS), [_event_row(e) for e in events]),
            Section("signatures", "Signatures", list(SIGNATURE_COLUMNS), [list(r) for r in signatures]),
        ],
    )
