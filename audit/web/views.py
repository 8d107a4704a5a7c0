"""The audit events of page views: every page that shows encounter data records what it showed,
with the policy grant and the ReadScope of the read (as the API's reads are decided)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from audit.delegation.lookup import candidate_delegations
from audit.encounter.service import encounter_res, load_encounter
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import Encounter
from audit.policy.guard import Target
from audit.policy.scope import ReadScope, authorize_encounter_read
from audit.principal import CurrentUser


def encounter_viewed(
    session: Session, *, user: CurrentUser, encounter_id: str, page: str
) -> tuple[Encounter, ReadScope]:
    """Decide the read of one encounter exactly as the API does (`encounter.read`, refusals
    recorded by the guard), then record the allowed page view as an `encounter.read` event."""
    encounter = load_encounter(session, encounter_id)
    grant, scope = authorize_encounter_read(
        session,
        user,
        encounter_res(encounter),
        Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id),
        delegations=candidate_delegations(session, user, encounter.rendering_provider_id),
    )
    ledger.append_one(
        session,
        EventDraft(
            type="encounter.read",
            actor=user.actor(grant.role),
            on_behalf_of=None,
            subject_type="encounter",
            subject_id=encounter.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            policy=grant.policy,
            detail={"page": page, **scope.evidence()},
        ),
    )
    return encounter, scope


def list_viewed(
    session: Session, *, user: CurrentUser, scope: ReadScope, page: str, filters: dict[str, Any], rows: int
) -> None:
    """Record a page listing encounters: the scope it was built from, the filters and how many rows."""
    ledger.append_one(
        session,
        EventDraft(
            type="encounter.list",
            actor=user.actor(),
            subject_type="page",
            subject_id=page,
            detail={
                "page": page,
                "filters": {k: v for k, v in filters.items() if v not in (None, "")},
                "scope": scope.as_dict(),
                "basis": list(scope.basis),
                "row_count": rows,
            },
        ),
    )
