"""How a user appears in the ledger: the public view, and the account facts reconciliation checks.

Every event that creates or changes a user (create now; role change, password reset, deactivation
and unlock later) is built by `user_event`, so the ledger always holds what the verifier needs to
notice a row rewritten behind its back: the roles and profile in `after`, and in `detail.account`
whether the account and credential are active and the SHA-256 of the stored password hash (never
the hash: it is salted, so its digest reveals nothing, yet any rewrite of the hash changes it).
"""

from __future__ import annotations

from typing import Any

from audit.ledger.events import Actor, EventDraft, PolicyRef
from audit.ledger.reconcile import password_digest
from audit.models import User


def public_view(user: User) -> dict[str, object]:
    """What the ledger and the API show of a user: never the password hash."""
    return {
        "id": user.id,
        "username": user.username,
        "display_name": user.display_name,
        "roles": sorted(user.roles),
        "npi": user.npi,
        "credential": user.credential,
    }


def account_record(user: User) -> dict[str, Any]:
    return {
        "is_active": user.is_active,
        "credential_active": user.credential_active,
        "password_sha256": password_digest(user.password_hash),
    }


def user_event(
    event_type: str,
    *,
    user: User,
    actor: Actor,
    policy: PolicyRef | None = None,
    before: dict[str, object] | None = None,
    reason: str | None = None,
) -> EventDraft:
    """The event for a change to `user` (already flushed with its new state). `before` is the
    `public_view` taken before the change (None for a creation); the verifier checks it."""
    return EventDraft(
        type=event_type,
        actor=actor,
        subject_type="user",
        subject_id=user.id,
        policy=policy,
        reason=reason,
        before=before,
        after=public_view(user),
        detail={"account": account_record(user)},
    )
