from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from audit.codesets.formats import SYSTEMS


class DelegationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    coder_id: str = Field(min_length=1, max_length=36)
    code_systems: list[str] = Field(min_length=1, description=f"Some of {', '.join(SYSTEMS)}")
    valid_until: datetime
    valid_from: datetime | None = None
    dos_from: date | None = None
    dos_until: date | None = None
    provider_id: str | None = Field(default=None, description="Defaults to the signed-in provider")

    @field_validator("valid_until", "valid_from")
    @classmethod
    def _aware(cls, moment: datetime | None) -> datetime | None:
        if moment is not None and moment.tzinfo is None:
            raise ValueError("needs a time zone, e.g. 2026-12-31T23:59:59Z")
        return moment

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


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=3, max_length=500)


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
