from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from audit.deps import SessionDep, UserDep
from audit.engagement import service
from audit.engagement.schemas import EngagementCreate, EngagementOut
from audit.inputs import RevokeIn
from audit.models import Engagement, utcnow
from audit.openapi import error_responses

router = APIRouter(prefix="/api/v1/engagements", tags=["engagements"])


def engagement_out(e: Engagement) -> EngagementOut:
    return EngagementOut.model_validate({**e.model_dump(), "live": service.is_live(e, utcnow())})


@router.post("", response_model=EngagementOut, status_code=status.HTTP_201_CREATED)
def open_engagement(session: SessionDep, user: UserDep, data: EngagementCreate) -> EngagementOut:
    return engagement_out(service.open_engagement(session, user=user, data=data))


@router.post("/{engagement_id}/revoke", response_model=EngagementOut, responses=error_responses(409))
def revoke(session: SessionDep, user: UserDep, engagement_id: str, data: RevokeIn) -> EngagementOut:
    return engagement_out(
        service.revoke_engagement(session, user=user, engagement_id=engagement_id, reason=data.reason)
    )


@router.get("", response_model=list[EngagementOut])
def list_engagements(
    session: SessionDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[EngagementOut]:
    """Compliance: every engagement; an auditor: those opened for them. Newest first."""
    rows = service.list_engagements(session, user=user, limit=limit, offset=offset)
    return [engagement_out(e) for e in rows]
