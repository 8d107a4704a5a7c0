from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import PlainTextResponse

from audit.deps import SessionDep, UserDep
from audit.errors import InvalidInput, NotFound
from audit.inputs import IsoDate
from audit.ledger import checkpoints
from audit.openapi import error_responses
from audit.trail import service as trail
from audit.trail.reading import EventQuery, parse_moment, read_events

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("/verify")
def verify(session: SessionDep, user: UserDep) -> dict[str, Any]:
    """Chain, latest checkpoint, indexed columns and state reconciliation; problems named by seq, or
    by table, id and field (the first 100, with the full count)."""
    return trail.verify_as(session, user=user).as_dict(limit=100)


@router.get("/checkpoint", response_class=PlainTextResponse, responses=error_responses(404))
def checkpoint(session: SessionDep, user: UserDep) -> str:
    """The latest signed note (C2SP tlog-checkpoint), signing a new one if the head has moved.
    Any signed-in reader may fetch it: it discloses only the tree size, root and chain hash."""
    latest = checkpoints.create_or_latest(session)
    if latest is None:
        raise NotFound("the ledger is empty: there is nothing to checkpoint yet")
    return latest.note


TreeSize = Annotated[int, Query(ge=0, le=2**63 - 1)]


@router.get("/checkpoints", response_class=PlainTextResponse, responses=error_responses(404))
def checkpoint_at(session: SessionDep, user: UserDep, tree_size: TreeSize) -> str:
    """The signed note at exactly `tree_size` (text/plain), e.g. to fetch the signed root a
    consistency proof ends at. Like /checkpoint, any signed-in reader may fetch notes: they disclose
    only sizes and hashes, and reading them records no event (signed notes are meant to be passed on)."""
    found = checkpoints.at_size(session, tree_size)
    if found is None:
        raise NotFound(f"no signed checkpoint at tree size {tree_size}", field="tree_size")
    return found.note


@router.get("/consistency", responses=error_responses(409))
def consistency(session: SessionDep, user: UserDep, first: TreeSize, second: TreeSize) -> dict[str, Any]:
    """RFC 9162 section 2.1.4 (RFC 6962 section 2.1.2) consistency proof that the tree of size
    `first` is a prefix of the tree of size `second` (first <= second <= the latest checkpoint's
    tree size). Hashes are lowercase hex: `proof` (oldest-level first, as the RFC orders it),
    `first_root`, `second_root`. `first_checkpoint`/`second_checkpoint` are the signed notes at those
    sizes when there are any. Verify with `merkle.verify_consistency(first, second, proof, root1,
    root2)` using the root from the note you hold."""
    return trail.consistency_as(session, user=user, first=first, second=second)


@router.get("/public-key", response_class=PlainTextResponse)
def public_key() -> str:
    """The checkpoint verifier key (C2SP vkey): public, so anyone can check a note or a bundle."""
    return checkpoints.public_key()


EVENT_TYPE = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")
MAX_SEQ = 2**63 - 1


def _id(description: str) -> Any:
    return Query(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description=description)


def _moment(description: str, alias: str | None = None) -> Any:
    return Query(
        alias=alias, max_length=40, description=f"{description}: YYYY-MM-DD (that UTC day) or RFC 3339"
    )


@router.get("/events")
def list_events(
    session: SessionDep,
    user: UserDep,
    type_: Annotated[list[str] | None, Query(alias="type", max_length=20, description="event types")] = None,
    outcome: Annotated[str | None, Query(pattern="^(allowed|denied|failed)$")] = None,
    actor: Annotated[str | None, _id("the acting user's id")] = None,
    encounter: Annotated[str | None, _id("events on this encounter")] = None,
    provider: Annotated[str | None, _id("events on encounters of this provider of record")] = None,
    from_: Annotated[str | None, _moment("recorded at or after", alias="from")] = None,
    to: Annotated[str | None, _moment("recorded at or before")] = None,
    dos_from: Annotated[IsoDate | None, Query(description="first date of service of the encounters")] = None,
    dos_to: Annotated[IsoDate | None, Query(description="last date of service of the encounters")] = None,
    after: Annotated[int, Query(ge=-1, le=MAX_SEQ, description="events after this seq")] = -1,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Ledger events in the reader's scope, oldest first, a keyset page at a time: compliance sees every
    event, an auditor the events on encounters in their engagement and the grants and revokes of its
    providers' delegations. Each item is the decoded payload with its seq and leaf hash; pass
    `next_after` back as `after` for the next page. The read is recorded as `audit.read_events`."""
    types = tuple(type_ or ())
    for t in types:
        if len(t) > 64 or not EVENT_TYPE.match(t):
            raise InvalidInput("type", f"type: {t[:64]!r} is not an event type such as code.change")
    query = EventQuery(
        types=types,
        outcome=outcome,
        actor=actor,
        encounter=encounter,
        provider=provider,
        recorded_from=parse_moment(from_, "from"),
        recorded_to=parse_moment(to, "to"),
        dos_from=dos_from,
        dos_to=dos_to,
        after=after,
        limit=limit,
    )
    return read_events(session, user=user, query=query)
