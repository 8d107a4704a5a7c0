"""The audit trail as its readers use it: verification and consistency proofs on request, each
authorised by the policy (compliance, or an auditor in an engagement) and recorded as an event.

The ledger package below stays policy-free (it records and checks); deciding who may ask lives here.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from audit.errors import Conflict, InvalidInput
from audit.ledger import checkpoints, proofs
from audit.ledger import service as ledger
from audit.ledger.checkpoint import CheckpointError
from audit.ledger.verification import Verification, verify_ledger
from audit.policy.guard import Target, authorize
from audit.policy.scope import engagement_context
from audit.principal import CurrentUser


def verify_as(session: Session, *, user: CurrentUser) -> Verification:
    """The API's verification: authorised (compliance, or an auditor in an engagement), run, and
    recorded as an `audit.verify` event whatever it found."""
    context = engagement_context(session, user)
    grant = authorize(user, "audit.verify", Target("ledger", None), None, context)
    result = verify_ledger(session)
    ledger.append_one(
        session,
        grant.event(
            detail={
                "ok": result.ok,
                "checks": result.checks,
                "events_checked": result.events_checked,
                "first_bad_seq": result.first_bad_seq,
                "problem_count": result.problem_count,
            },
        ),
    )
    return result


def consistency_as(session: Session, *, user: CurrentUser, first: int, second: int) -> dict[str, Any]:
    """The API's consistency proof between two tree sizes: authorised (`audit.consistency`: compliance,
    or an auditor in an engagement), bounded by the latest checkpoint, computed, and recorded as an
    `audit.consistency` event. Hashes are lowercase hex; the signed notes at both sizes when any."""
    grant = authorize(
        user, "audit.consistency", Target("ledger", None), None, engagement_context(session, user)
    )
    newest = checkpoints.latest(session)
    size = newest.tree_size if newest is not None else 0
    if second > size:
        raise InvalidInput("second", f"second must be at most the latest checkpoint's tree size {size}")
    if first > second:
        raise InvalidInput("first", f"first ({first}) must not exceed second ({second})")
    try:
        proof = proofs.consistency(session, first=first, second=second)
    except CheckpointError as exc:
        raise Conflict(f"{exc}: run audit verify") from exc
    ledger.append_one(session, grant.event(detail={"first": first, "second": second}))
    notes = {n: getattr(checkpoints.at_size(session, n), "note", None) for n in {first, second}}
    return {
        "first": first,
        "second": second,
        "encoding": "hex",
        "first_root": proof.first_root.hex(),
        "second_root": proof.second_root.hex(),
        "proof": [h.hex() for h in proof.proof],
        "first_checkpoint": notes[first],
        "second_checkpoint": notes[second],
    }
