"""The one place the services ask "may this user do this?" (Cedar), and record a refusal.

Every allowed action's event carries the policy version and the permitting rule ids (`Grant.policy`);
every refusal raises Forbidden (403) or Locked (423) carrying its own `denied` event, which the unit
of work commits after rolling the refused work back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import Session

from audit.errors import Forbidden, Locked
from audit.ledger import service as ledger
from audit.ledger.chain import rfc3339
from audit.ledger.events import DENIED, Actor, EventDraft, PolicyRef
from audit.models import Delegation, User, utcnow
from audit.policy.engine import Decision, DelegationRes, EncounterRes, PolicyEngine, Principal, Resource
from audit.policy.explain import Explanation
from audit.policy.runtime import get_explainer, get_policy_engine
from audit.principal import CurrentUser

LOCKED_RULE = "segregation.locked_principal"
SIGNING_LOCKED_RULE = "attestation.signing_locked"
CLINICAL_ACTIONS = {"encounter.create", "code.add", "code.change", "code.void", "encounter.attest"}
ROLE_PRIORITY = ("compliance", "auditor", "admin", "provider", "coder", "integration")
MEMO_LIMIT = 10_000
_memo: ContextVar[dict[Hashable, Decision] | None] = ContextVar("audit_decision_memo", default=None)


@dataclass(frozen=True)
class Target:
    """What the action is on, as the audit event names it."""

    subject_type: str
    subject_id: str | None
    encounter_id: str | None = None
    provider_id: str | None = None


@dataclass(frozen=True)
class Grant:
    """An allowed decision: the capacity the user acted in, the permitting rules, and the delegation
    used (if any). It remembers what was decided (action, target, user, integration account) so that
    `event` can build the ledger event of the allowed work: the one place an actor line and a policy
    line are written for an allowed action."""

    role: str
    rule_ids: tuple[str, ...]
    policy_version: str
    delegation_id: str | None = None
    on_behalf_of: dict[str, Any] | None = None
    action: str = ""
    target: Target | None = field(default=None, compare=False)
    user: CurrentUser | None = field(default=None, compare=False, repr=False)
    via: CurrentUser | None = field(default=None, compare=False, repr=False)

    @property
    def policy(self) -> PolicyRef:
        return PolicyRef(self.policy_version, self.rule_ids)

    @property
    def actor(self) -> Actor:
        """Who the event names as acting: the integration account submitting, else the user in the
        capacity the decision found."""
        if self.user is None:
            raise ValueError("a Grant made outside authorize() has no actor")
        return acting_actor(self.user, self.via, self.role)

    def event_on_behalf_of(self) -> dict[str, Any] | None:
        """The event's `on_behalf_of`: the user an integration account submitted for, else the
        provider whose delegation allowed the work (else None)."""
        if self.via is not None and self.user is not None:
            return {"user_id": self.user.id, "role": self.role, "delegation_id": self.delegation_id}
        return self.on_behalf_of

    def event(self, **fields: Any) -> EventDraft:
        """The ledger event draft for the allowed work: type (the action), actor, on-behalf-of, policy
        decision, and the subject, encounter and provider of the authorised target. `fields` set the
        rest (before, after, detail, reason, outcome) and override any of those, typically the
        `subject_id` of a row created after the decision."""
        target = self.target or Target(subject_type="", subject_id=None)
        draft: dict[str, Any] = {
            "type": self.action,
            "actor": self.actor,
            "on_behalf_of": self.event_on_behalf_of(),
            "subject_type": target.subject_type or None,
            "subject_id": target.subject_id,
            "encounter_id": target.encounter_id,
            "provider_id": target.provider_id,
            "policy": self.policy,
        }
        draft.update(fields)
        return EventDraft(**draft)


def acting_actor(user: CurrentUser, via: CurrentUser | None, role: str | None) -> Actor:
    """An event's actor: the integration account when one submits for `user`, else `user` acting as
    `role` (all their roles when None)."""
    return via.actor("integration") if via is not None else user.actor(role)


def principal_of(user: CurrentUser, now: datetime) -> Principal:
    return Principal(
        id=user.id,
        roles=user.roles,
        credential_active=user.credential_active,
        locked=_until(user.locked_until, now),
        signing_locked=_until(user.signing_locked_until, now),
    )


def _until(moment: datetime | None, now: datetime) -> bool:
    return moment is not None and moment > now


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
    decision = _decide(engine, principal, action, resource, ctx, now)
    used: Delegation | None = None
    for delegation in () if decision.allowed else delegations:
        attempt = _decide(
            engine, principal, action, resource, {**ctx, "delegation": delegation_res(delegation)}, now
        )
        if attempt.allowed:
            decision, used = attempt, delegation
            break
    if not decision.allowed:
        attempts = [ctx, *({**ctx, "delegation": delegation_res(d)} for d in delegations)]
        why = _explanation(principal, action, resource, attempts, decision, now)
        raise refusal(user, action, target, decision, via=via, why=why)
    on_behalf = None
    if used is not None:
        on_behalf = {"user_id": used.provider_id, "role": "provider", "delegation_id": used.id}
    return Grant(
        role=acting_role(user, action, used),
        rule_ids=decision.rule_ids,
        policy_version=decision.policy_version,
        delegation_id=used.id if used else None,
        on_behalf_of=on_behalf,
        action=action,
        target=target,
        user=user,
        via=via,
    )


@contextmanager
def decision_memo() -> Iterator[None]:
    """Inside, `authorize` decides each distinct request once: a bulk import asks the policy once per
    (principal, action, encounter facts, context, minute), not once per line. The encounter's own id
    is left out of the key: no rule names a particular encounter, only its provider, date and status.
    The minute bounds how long a decision is reused (a delegation expiring is seen within a minute)."""
    token = _memo.set({})
    try:
        yield
    finally:
        _memo.reset(token)


def _decide(
    engine: PolicyEngine,
    principal: Principal,
    action: str,
    resource: Resource,
    ctx: Mapping[str, Any],
    now: datetime,
) -> Decision:
    memo = _memo.get()
    if memo is None:
        return engine.decide(principal, action, resource, ctx, now=now)
    facts = dataclasses.replace(resource, id="") if isinstance(resource, EncounterRes) else resource
    key = (principal, action, facts, tuple(sorted(ctx.items())), int(now.timestamp()) // 60)
    try:
        decision = memo.get(key)
    except TypeError:  # an unhashable context value: decide without the memo
        return engine.decide(principal, action, resource, ctx, now=now)
    if decision is None:
        if len(memo) >= MEMO_LIMIT:  # bounded memory whatever the feed holds
            memo.clear()
        decision = memo[key] = engine.decide(principal, action, resource, ctx, now=now)
    return decision


def check(
    user: CurrentUser, action: str, resource: Resource, context: Mapping[str, Any] | None = None
) -> Decision:
    """A silent decision, for judging the facts a list is built from (no event: nothing was attempted)."""
    now = utcnow()
    return get_policy_engine().decide(principal_of(user, now), action, resource, context, now=now)


def may(user: CurrentUser, action: str, resource: Resource, context: Mapping[str, Any] | None = None) -> bool:
    """A silent check for filtering what a user may see in a list (no event: nothing was attempted)."""
    return check(user, action, resource, context).allowed


def acting_role(user: CurrentUser, action: str, delegation: Delegation | None) -> str:
    """The capacity the user acted in, as the audit event records it."""
    if delegation is not None:
        return "coder"
    if action in CLINICAL_ACTIONS and user.has("provider"):
        return "provider"
    return next((r for r in ROLE_PRIORITY if user.has(r)), ",".join(sorted(user.roles)))


def _explanation(
    principal: Principal,
    action: str,
    resource: Resource,
    attempts: Sequence[Mapping[str, Any]],
    decision: Decision,
    now: datetime,
) -> Explanation | None:
    """Why the policy refused, asked of Cedar (`audit.policy.explain`); None if that fails, since the
    refusal stands either way."""
    try:
        return get_explainer().explain(principal, action, resource, attempts, decision, now)
    except Exception:  # an explanation is a courtesy: never let it turn a 403 into a 500
        return None


def _names(session: Session) -> Callable[[str], str]:
    def name(user_id: str) -> str:
        user = session.get(User, user_id)
        return user.display_name if user is not None else f"user {user_id}"

    return name


def refusal(
    user: CurrentUser,
    action: str,
    target: Target,
    decision: Decision,
    *,
    via: CurrentUser | None = None,
    why: Explanation | None = None,
) -> Forbidden | Locked:
    """The 403 (or 423) and its `denied` event. A 403 says which condition failed (`why`) in its
    detail, its `explanation` and the event's `detail.explanation`; users are named by id until the
    event is recorded, when their display names are read."""
    error: Forbidden | Locked
    if LOCKED_RULE in decision.rule_ids:
        error = Locked("the account is locked by an administrator", rule_ids=list(decision.rule_ids))
    elif SIGNING_LOCKED_RULE in decision.rule_ids:
        until = rfc3339(user.signing_locked_until) if user.signing_locked_until else None
        error = Locked(
            "signing is locked after repeated wrong passwords at signing; try again later",
            rule_ids=list(decision.rule_ids),
            locked_until=until,
        )
    else:
        on = f" {target.subject_type} {target.subject_id}" if target.subject_id else ""
        detail = f"{user.username} may not {action}{on}"
        error = Forbidden(detail, rule_ids=decision.rule_ids, policy_version=decision.policy_version)
        if why is not None:
            _explain(error, detail, why.text())
    draft = EventDraft(
        type=action,
        actor=acting_actor(user, via, None),
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
    if why is None or not isinstance(error, Forbidden):
        return ledger.refuse_with(error, draft)
    forbidden, explained = error, why

    def record(session: Session) -> None:
        text = explained.text(_names(session))
        _explain(forbidden, detail, text)
        draft.detail = {**draft.detail, "explanation": text}
        ledger.append_one(session, draft)

    forbidden.recording(record)
    return forbidden


def _explain(error: Forbidden, detail: str, text: str) -> None:
    error.detail = f"{detail}: {text}"
    error.extra["explanation"] = text
