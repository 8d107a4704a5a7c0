from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class EngagementCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    auditor_id: str = Field(min_length=1, max_length=36)
    date_from: date = Field(description="First date of service in scope")
    date_to: date = Field(description="Last date of service in scope")
    provider_ids: list[str] = Field(default_factory=list, max_length=200, description="Empty: all providers")
    expires_at: datetime = Field(description="When the auditor's access ends (naive = UTC)")
    purpose: str | None = Field(default=None, max_length=500)


class RevokeIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    reason: str = Field(min_length=3, max_length=500)


class EngagementOut(BaseModel):
    id: str
    auditor_id: str
    date_from: date
    date_to: date
    provider_ids: list[str]
    expires_at: datetime
    opened_by: str
    opened_at: datetime
    purpose: str | None
    revoked_at: datetime | None
    revoked_by: str | None
    live: bool
