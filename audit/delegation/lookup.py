"""Finding the delegations a coder might be acting under (the policy decides which, if any, applies)."""

from __future__ import annotations

from sqlmodel import Session, col, select

from audit.batchreads import remembered
from audit.models import Delegation
from audit.principal import CurrentUser

MAX_CANDIDATES = 20


def candidate_delegations(session: Session, user: CurrentUser, provider_id: str) -> list[Delegation]:
    """Unrevoked delegations from `provider_id` to `user`, newest first (none unless a coder)."""
    if not user.has("coder"):
        return []
    return remembered(("delegations", user.id, provider_id), lambda: _unrevoked(session, user, provider_id))


def _unrevoked(session: Session, user: CurrentUser, provider_id: str) -> list[Delegation]:
    return list(
        session.exec(
            select(Delegation)
            .where(
                Delegation.coder_id == user.id,
                Delegation.provider_id == provider_id,
                col(Delegation.revoked_at).is_(None),
            )
            .order_by(col(Delegation.granted_at).desc())
            .limit(MAX_CANDIDATES)
        ).all()
    )
