from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from audit.deps import SessionDep, UserDep
from audit.errors import NotFound
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.policy.guard import Target, authorize
from audit.policy.scope import auditor_context

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/verify")
def verify(session: SessionDep, user: UserDep) -> dict[str, Any]:
    grant = authorize(user, "audit.verify", Target("ledger", None), None, auditor_context(session, user))
    result = ledger.verify(session)
    signed = checkpoints.check_against_latest(session)
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
        "ok": result.ok and signed.ok,
        "events_checked": result.events_checked,
        "head_seq": result.head_seq,
        "chain_hash": result.chain_hash.hex(),
        "first_bad_seq": result.first_bad_seq,
        "problem": result.problem or signed.problem,
        "checkpoint": {"tree_size": signed.tree_size, "ok": signed.ok, "problem": signed.problem},
    }


@router.get("/checkpoint", response_class=PlainTextResponse)
def checkpoint(session: SessionDep, user: UserDep) -> str:
    """The latest signed note (C2SP tlog-checkpoint), signing a new one if the head has moved.
    Any signed-in reader may fetch it: it discloses only the tree size, root and chain hash."""
    latest = checkpoints.create_or_latest(session)
    if latest is None:
        raise NotFound("the ledger is empty: there is nothing to checkpoint yet")
    return latest.note


@router.get("/public-key", response_class=PlainTextResponse)
def public_key() -> str:
    """The checkpoint verifier key (C2SP vkey): public, so anyone can check a note or a bundle."""
    return checkpoints.public_key()
