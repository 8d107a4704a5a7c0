"""``POST /api/v1/codesets/check``: the decision a code line would get, for inline validation in forms.

It records nothing, on purpose: it writes no state, and what it reveals (whether a code exists in a
public CMS release, which release, its dates) is public code-set data, the same for every caller and
unrelated to any patient or encounter. It still requires a signed-in user, so it is not an open
oracle, and its input is bounded (a malformed request is a 422 naming the field).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from audit.codesets.service import check_code
from audit.deps import SessionDep, UserDep
from audit.inputs import DATE_MAX, DATE_MIN, RequestModel

router = APIRouter(prefix="/api/v1/codesets", tags=["codesets"])

EARLIEST, LATEST = DATE_MIN, DATE_MAX


class CheckIn(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    system: str = Field(min_length=1, max_length=32, description="CPT, HCPCS, ICD-10-CM or ICD-10-PCS")
    code: str = Field(min_length=1, max_length=16)
    modifiers: list[Annotated[str, Field(max_length=8)]] = Field(default_factory=list, max_length=4)
    date_of_service: date = Field(ge=EARLIEST, le=LATEST)


class CheckOut(BaseModel):
    system: str
    code: str
    modifiers: list[str]
    date_of_service: date
    decision: str = Field(description="accepted | refused")
    status: str = Field(description="valid | fallback | unverified | unchecked | invalid")
    field: str | None = Field(default=None, description="the refused input (code or modifiers[i])")
    message: str
    release: dict[str, Any] | None = Field(description="the release the code was judged against")
    findings: list[dict[str, Any]]
    blocks_attestation: bool


@router.post("/check", response_model=CheckOut)
def check(session: SessionDep, user: UserDep, data: CheckIn) -> dict[str, Any]:
    return check_code(
        session, system=data.system, code=data.code, modifiers=data.modifiers, dos=data.date_of_service
    )
