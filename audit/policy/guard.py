"""The one place the services ask "may this user do this?" (Cedar), and record a refusal.

Every allowed action's event carries the policy version and the permitting rule ids (`Grant.policy`);
every refusal raises Forbidden (403) or Locked (423) carrying its own `denied` event, which the unit
of work commits after rolling the refused work back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from audit.errors import Forbidden, Locked
from audit.ledger import service as ledger
from audit.ledger.events import DENIED, EventDraft, PolicyRef
from audit.models import Delegation, utcnow
from audit.policy.engine import Decision, DelegationRes, Principal, Resource
from audit.policy.runtime import get_policy_engine
from audit.principal import CurrentUser

LOCKED_RULE = "segregation.locked_principal"
CLINICAL_ACTIONS = {"encounter.create", "code.add", "code.change", "code.void", "encounter.attest"}
ROLE_PRIORITY = ("compliance", "auditor", "admin", "provider", "coder", "integration")


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


def principal_of(user: CurrentUser, now: datetime) -> Principal:
    locked = user.locked_until is not None and user.locked_until > now
    return Principal(id=user.id, roles=user.roles, credential_active=user.credential_active, locked=locked)


def delegation_res(d: Delegation) -> DelegationRes:
    return DelegationRes(
        id=d.id,
        provider_id=d.provider_id,
        coder_id=d.coder_id,
        code_systems=frozenset(d.code_systems),
        valid_from=d.valid_from,
        valid_until=d.valid_until,
        dos_from=d.dos_from,
        dos_until=d.dos_until,
        revoked=d.revoked_at is not None,
    )


def authorize(
    user: CurrentUser,
    action: str,
    target: Target,
    resource: Resource = None,
    context: Mapping[str, Any] | None = None,
    *,
    via: CurrentUser | None = None,
    delegations: Sequence[Delegation] = (),
) -> Grant:
    """Allow with a Grant, or raise the refusal. Delegations are tried in order until one allows."""
    engine = get_policy_engine()
    now = utcnow()
    principal = principal_of(user, now)
    ctx: dict[str, Any] = dict(context or {})
    if via is not None:
        ctx.update(via_integration=True, integration=principal_of(via, now))
    decision = engine.decide(principal, action, resource, ctx, now=now)
    used: Delegation | None = None
    for delegation in () if decision.allowed else delegations:
        attempt = engine.decide(
            principal, action, resource, {**ctx, "delegation": delegation_res(delegation)}, now=now
        )
        if attempt.allowed:
            decision, used = attempt, delegation
            break
    if not decision.allowed:
        raise refusal(user, action, target, decision, via=via)
    on_behalf = None
    if used is not None:
        on_behalf = {"user_id": used.provider_id, "role": "provider", "delegation_id": used.id}
    return Grant(
        role=acting_role(user, action, used),
        rule_ids=decision.rule_ids,
        policy_version=decision.policy_version,
        delegation_id=used.id if used else None,
        on_behalf_of=on_behalf,
    )


def may(user: CurrentUser, action: str, resource: Resource, context: Mapping[str, Any] | None = None) -> bool:
    """A silent check for filtering what a user may see in a list (no event: nothing was attempted)."""
    now = utcnow()
    return get_policy_engine().decide(principal_of(user, now), action, resource, context, now=now).allowed


def acting_role(user: CurrentUser, action: str, delegation: Delegation | None) -> str:
    """The capacity the user acted in, as the audit event records it."""
    if delegation is not None:
        return "coder"
    if action in CLINICAL_ACTIONS and user.has("provider"):
        return "provider"
    return next((r for r in ROLE_PRIORITY if user.has(r)), ",".join(sorted(user.roles)))


def refusal(
    user: CurrentUser, action: str, target: Target, decision: Decision, *, via: CurrentUser | None = None
) -> Forbidden | Locked:
    error: Forbidden | Locked
    if LOCKED_RULE in decision.rule_ids:
        error = Locked("the account is locked after repeated failures", rule_ids=list(decision.rule_ids))
    else:
        on = f" {target.subject_type} {target.subject_id}" if target.subject_id else ""
        detail = f"{user.username} may not {action}{on}"
        error = Forbidden(detail, rule_ids=decision.rule_ids, policy_version=decision.policy_version)
    draft = EventDraft(
        type=action,
        actor=via.actor("integration") if via else user.actor(),
        outcome=DENIED,
        subject_type=target.subject_type,
        subject_id=target.subject_id,
        encounter_id=target.encounter_id,
        provider_id=target.provider_id,
        on_behalf_of={"user_id": user.id, "role": None, "delegation_id": None} if via else None,
        reason="locked" if isinstance(error, Locked) else "denied by policy",
        policy=PolicyRef(decision.policy_version, decision.rule_ids),
        detail={"errors": list(decision.errors)} if decision.errors else {},
    )
    return ledger.refuse_with(error, draft)
