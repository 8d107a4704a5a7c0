from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from audit.delegation import service
from audit.delegation.schemas import DelegationCreate, DelegationOut
from audit.deps import SessionDep, UserDep
from audit.inputs import RevokeIn
from audit.models import Delegation, utcnow
from audit.openapi import error_responses

router = APIRouter(prefix="/api/v1/delegations", tags=["delegations"])


def delegation_out(d: Delegation) -> DelegationOut:
    return DelegationOut.model_validate({**d.model_dump(), "active": service.is_active(d, utcnow())})


@router.post("", response_model=DelegationOut, status_code=status.HTTP_201_CREATED)
def grant(session: SessionDep, user: UserDep, data: DelegationCreate) -> DelegationOut:
    return delegation_out(service.grant_delegation(session, user=user, data=data))


@router.post("/{delegation_id}/revoke", response_model=DelegationOut, responses=error_responses(409))
def revoke(session: SessionDep, user: UserDep, delegation_id: str, data: RevokeIn) -> DelegationOut:
    return delegation_out(
        service.revoke_delegation(session, user=user, delegation_id=delegation_id, reason=data.reason)
    )


@router.get("", response_model=list[DelegationOut])
def list_delegations(
    session: SessionDep,
    user: UserDep,
    provider_id: str | None = None,
    coder_id: str | None = None,
    active: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[DelegationOut]:
    """Delegations the user may read (compliance all; a provider or coder their own; an auditor those of
    the providers and dates of service of their live engagements), newest first."""
    rows = service.list_delegations(
        session,
        user=user,
        provider_id=provider_id,
        coder_id=coder_id,
        active=active,
        limit=limit,
        offset=offset,
    )
    return [delegation_out(d) for d in rows]
