from __future__ import annotations

from fastapi import APIRouter, status

from audit.delegation import service
from audit.delegation.schemas import DelegationCreate, DelegationOut, RevokeIn
from audit.deps import SessionDep, UserDep
from audit.models import Delegation, utcnow

router = APIRouter(prefix="/api/v1/delegations", tags=["delegations"])


def delegation_out(d: Delegation) -> DelegationOut:
    return DelegationOut.model_validate({**d.model_dump(), "active": service.is_active(d, utcnow())})


@router.post("", response_model=DelegationOut, status_code=status.HTTP_201_CREATED)
def grant(session: SessionDep, user: UserDep, data: DelegationCreate) -> DelegationOut:
    return delegation_out(service.grant_delegation(session, user=user, data=data))


@router.post("/{delegation_id}/revoke", response_model=DelegationOut)
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
) -> list[DelegationOut]:
    rows = service.list_delegations(
        session, user=user, provider_id=provider_id, coder_id=coder_id, active=active
    )
    return [delegation_out(d) for d in rows]
