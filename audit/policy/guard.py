"""The one place the services ask "may this user do this?" and record a refusal.

Placeholder for the ledger-core issue: a plain role check. The responsibility-rules issue replaces
the body of `_decide` with the Cedar engine; the callers do not change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from audit.errors import Forbidden
from audit.ledger import service as ledger
from audit.ledger.events import DENIED, EventDraft, PolicyRef
from audit.principal import CurrentUser

PLACEHOLDER_VERSION = "placeholder-0"


@dataclass(frozen=True)
class Target:
    """What the action is on, as the audit event names it."""

    subject_type: str
    subject_id: str | None
    encounter_id: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class Grant:
    role: str
    rule_ids: tuple[str, ...]
    policy_version: str
    delegation_id: str | None = None
    on_behalf_of: dict[str, Any] | None = None

    @property
    def policy(self) -> PolicyRef:
        return PolicyRef(self.policy_version, self.rule_ids)


def authorize(
    user: CurrentUser,
    action: str,
    target: Target,
    *,
    rendering_provider_id: str | None = None,
    via: CurrentUser | None = None,
) -> Grant:
    """Allow with a Grant or raise Forbidden carrying the denied event to record after rollback."""
    role, rule_ids = _decide(user, action, rendering_provider_id)
    if role is None:
        raise refusal(user, action, target, rule_ids, PLACEHOLDER_VERSION, via=via)
    return Grant(role=role, rule_ids=rule_ids, policy_version=PLACEHOLDER_VERSION)


_CODE_WRITES = {"encounter.create", "code.add", "code.change", "code.void"}


def _decide(
    user: CurrentUser, action: str, rendering_provider_id: str | None
) -> tuple[str | None, tuple[str, ...]]:
    if action in _CODE_WRITES:
        if user.has("provider") and user.id == rendering_provider_id:
            return "provider", ("placeholder.provider_of_record",)
        if user.has("coder"):
            return "coder", ("placeholder.any_coder",)
        return None, ("placeholder.default_deny",)
    if action == "encounter.read":
        return ",".join(sorted(user.roles)), ("placeholder.any_user_reads",)
    if action in {"user.create", "user.read"}:
        return (
            ("admin", ("placeholder.admin",)) if user.has("admin") else (None, ("placeholder.default_deny",))
        )
    if action in {"audit.verify", "audit.read_events"}:
        if user.roles & {"compliance", "auditor"}:
            return ",".join(sorted(user.roles & {"compliance", "auditor"})), ("placeholder.oversight",)
        return None, ("placeholder.default_deny",)
    return None, ("placeholder.default_deny",)


def refusal(
    user: CurrentUser,
    action: str,
    target: Target,
    rule_ids: tuple[str, ...],
    policy_version: str,
    *,
    via: CurrentUser | None = None,
    errors: tuple[str, ...] = (),
) -> Forbidden:
    detail = f"{user.username} may not {action} on {target.subject_type} {target.subject_id or ''}".rstrip()
    error = Forbidden(detail, rule_ids=rule_ids, policy_version=policy_version)
    actor = via.actor("integration") if via else user.actor()
    on_behalf = {"user_id": user.id, "role": None, "delegation_id": None} if via else None
    draft = EventDraft(
        type=action,
        actor=actor,
        outcome=DENIED,
        subject_type=target.subject_type,
        subject_id=target.subject_id,
        encounter_id=target.encounter_id,
        provider_id=target.provider_id,
        on_behalf_of=on_behalf,
        reason="denied by policy",
        policy=PolicyRef(policy_version, rule_ids),
        detail={"errors": list(errors)} if errors else {},
    )

    def record(session: Session) -> None:
        ledger.append_one(session, draft)

    error.recording(record)
    return error
