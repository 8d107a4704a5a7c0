"""What an audit event says, before it has a place in the chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# In an event's `detail`: the rows this event wrote carry its `ts` as their time (created_at,
# entered_at, changed_at ...), so verification can hold them to it. Older events lack it.
ROW_TIME = {"row_time": "ts"}

ALLOWED = "allowed"
DENIED = "denied"
FAILED = "failed"


@dataclass(frozen=True)
class Actor:
    id: str | None
    role: str | None
    username: str | None = None

    def as_payload(self) -> dict[str, Any]:
        return {"id": self.id, "role": self.role, "username": self.username}


ANONYMOUS = Actor(id=None, role=None)


@dataclass(frozen=True)
class PolicyRef:
    version: str
    rule_ids: tuple[str, ...] = ()

    def as_payload(self) -> dict[str, Any]:
        return {"version": self.version, "rule_ids": list(self.rule_ids)}


@dataclass
class EventDraft:
    """An event to append. `provider_id` (the provider of record) is indexed for reports."""

    type: str
    actor: Actor
    outcome: str = ALLOWED
    subject_type: str | None = None
    subject_id: str | None = None
    encounter_id: str | None = None
    provider_id: str | None = None
    on_behalf_of: dict[str, Any] | None = None
    reason: str | None = None
    policy: PolicyRef | None = None
    before: Any = None
    after: Any = None
    detail: dict[str, Any] = field(default_factory=dict)

    def payload(self, *, log_id: str, seq: int, ts: str, event_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {
            "log_id": log_id,
            "seq": seq,
            "ts": ts,
            "event_id": event_id,
            "type": self.type,
            "actor": self.actor.as_payload(),
            "on_behalf_of": self.on_behalf_of,
            "subject": {"type": self.subject_type, "id": self.subject_id},
            "encounter_id": self.encounter_id,
            "provider_id": self.provider_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "policy": self.policy.as_payload() if self.policy else None,
            "before": self.before,
            "after": self.after,
        }
        if self.detail:
            body["detail"] = self.detail
        return body
