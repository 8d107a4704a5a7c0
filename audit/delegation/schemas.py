from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit.codesets.formats import SYSTEMS
from audit.inputs import RequestModel, UtcDateTime


class DelegationCreate(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    coder_id: str = Field(min_length=1, max_length=36)
    code_systems: list[Annotated[str, Field(max_length=32)]] = Field(
        min_length=1,
        max_length=10,
        description=f"Some of {', '.join(SYSTEMS)}",
        examples=[["CPT", "ICD-10-CM"]],
    )
    valid_until: UtcDateTime
    valid_from: UtcDateTime | None = None
    dos_from: date | None = None
    dos_until: date | None = None
    provider_id: str | None = Field(
        default=None, max_length=36, description="Defaults to the signed-in provider"
    )

    @model_validator(mode="after")
    def _consistent(self) -> DelegationCreate:
        unknown = sorted(set(self.code_systems) - set(SYSTEMS))
        if unknown:
            raise ValueError(f"code_systems: unknown {unknown}; expected some of {list(SYSTEMS)}")
        if self.valid_from and self.valid_from >= self.valid_until:
            raise ValueError("valid_until must be after valid_from")
        if self.dos_from and self.dos_until and self.dos_from > self.dos_until:
            raise ValueError("dos_until must not be before dos_from")
        return self


class DelegationOut(BaseModel):
    id: str
    provider_id: str
    coder_id: str
    code_systems: list[str]
    valid_from: datetime
    valid_until: datetime
    dos_from: date | None
    dos_until: date | None
    granted_by: str
    granted_at: datetime
    revoked_at: datetime | None
    revoked_by: str | None
    reason: str | None
    active: bool
