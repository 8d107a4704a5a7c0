from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from audit.inputs import Multiline, RequestModel, UtcDateTime


class EngagementCreate(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    auditor_id: str = Field(min_length=1, max_length=36)
    date_from: date = Field(description="First date of service in scope")
    date_to: date = Field(description="Last date of service in scope")
    provider_ids: list[Annotated[str, Field(max_length=36)]] = Field(
        default_factory=list, max_length=200, description="Empty: all providers"
    )
    expires_at: UtcDateTime = Field(description="When the auditor's access ends, with a time zone")
    purpose: Multiline | None = Field(default=None, max_length=500)


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
