from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import Field

from audit.attestation import service
from audit.deps import SessionDep, UserDep
from audit.inputs import RequestModel
from audit.openapi import error_responses

router = APIRouter(prefix="/api/v1/encounters", tags=["attestation"])


class AttestIn(RequestModel):
    password: str = Field(min_length=1, max_length=256, description="Re-entered at signing (21 CFR 11.200)")


@router.post(
    "/{encounter_id}/attestations", status_code=status.HTTP_201_CREATED, responses=error_responses(409)
)
def attest(session: SessionDep, user: UserDep, encounter_id: str, data: AttestIn) -> dict[str, Any]:
    attestation = service.attest(session, user=user, encounter_id=encounter_id, password=data.password)
    return service.attestation_view(attestation)
