from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from audit.deps import SessionDep, UserDep
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.policy.guard import Target, authorize
from audit.policy.scope import auditor_context

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/verify")
def verify(session: SessionDep, user: UserDep) -> dict[str, Any]:
    grant = authorize(user, "audit.verify", Target("ledger", None), None, auditor_context(session, user))
    result = ledger.verify(session)
    ledger.append_one(
        session,
        EventDraft(
            type="audit.verify",
            actor=user.actor(grant.role),
            subject_type="ledger",
            policy=grant.policy,
            detail={
                "ok": result.ok,
                "events_checked": result.events_checked,
                "first_bad_seq": result.first_bad_seq,
            },
        ),
    )
    return {
        "ok": result.ok,
        "events_checked": result.events_checked,
        "head_seq": result.head_seq,
        "chain_hash": result.chain_hash.hex(),
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem,
    }
