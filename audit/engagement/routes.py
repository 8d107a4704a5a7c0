from __future__ import annotations

from fastapi import APIRouter, status

from audit.deps import SessionDep, UserDep
from audit.engagement import service
from audit.engagement.schemas import EngagementCreate, EngagementOut, RevokeIn
from audit.models import Engagement, utcnow

router = APIRouter(prefix="/api/v1/engagements", tags=["engagements"])


def engagement_out(e: Engagement) -> EngagementOut:
    return EngagementOut.model_validate({**e.model_dump(), "live": service.is_live(e, utcnow())})


@router.post("", response_model=EngagementOut, status_code=status.HTTP_201_CREATED)
def open_engagement(session: SessionDep, user: UserDep, data: EngagementCreate) -> EngagementOut:
    return engagement_out(service.open_engagement(session, user=user, data=data))


@router.post("/{engagement_id}/revoke", response_model=EngagementOut)
def revoke(session: SessionDep, user: UserDep, engagement_id: str, data: RevokeIn) -> EngagementOut:
    return engagement_out(
        service.revoke_engagement(session, user=user, engagement_id=engagement_id, reason=data.reason)
    )


@router.get("", response_model=list[EngagementOut])
def list_engagements(session: SessionDep, user: UserDep) -> list[EngagementOut]:
    return [engagement_out(e) for e in service.list_engagements(session, user=user)]
