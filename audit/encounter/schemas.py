from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

PATIENT_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EncounterCreate(_Input):
    external_id: str = Field(min_length=1, max_length=128)
    source: str = Field(default="manual", min_length=1, max_length=64)
    patient_ref: str = Field(
        pattern=PATIENT_REF_PATTERN,
        description="An opaque patient reference (e.g. an MRN token), never a name: no spaces.",
    )
    date_of_service: date
    rendering_provider_id: str = Field(min_length=1, max_length=36)
    supervising_provider_ids: list[str] = Field(default_factory=list, max_length=10)
    on_behalf_of: str | None = Field(
        default=None, description="Integration accounts only: the user id the feed acts for."
    )


class CodeLineCreate(_Input):
    system: str
    code: str = Field(min_length=1, max_length=16)
    modifiers: list[str] = Field(default_factory=list)
    units: int = Field(default=1, ge=1, le=9999)
    diagnosis_pointers: list[int] = Field(default_factory=list, max_length=12)
    reason: str | None = Field(default=None, max_length=500)
    on_behalf_of: str | None = Field(
        default=None, description="Integration accounts only: the user id the feed acts for."
    )


class CodeLinePatch(_Input):
    code: str | None = Field(default=None, min_length=1, max_length=16)
    modifiers: list[str] | None = None
    units: int | None = Field(default=None, ge=1, le=9999)
    diagnosis_pointers: list[int] | None = Field(default=None, max_length=12)
    reason: str | None = Field(default=None, max_length=500)
    on_behalf_of: str | None = None


class ReasonIn(_Input):
    reason: str = Field(min_length=3, max_length=500)
    on_behalf_of: str | None = None


class CodeLineOut(BaseModel):
    id: str
    encounter_id: str
    system: str
    code: str
    modifiers: list[str]
    units: int
    diagnosis_pointers: list[int]
    version: int
    status: str
    entered_by: str
    entered_role: str
    delegation_id: str | None = None
    entered_at: datetime
    changed_by: str
    changed_at: datetime
    void_reason: str | None = None
    findings: list[dict[str, Any]] = Field(default_factory=list)


class EncounterOut(BaseModel):
    id: str
    source: str
    external_id: str
    patient_ref: str
    date_of_service: date
    rendering_provider_id: str
    supervising_provider_ids: list[str]
    status: str
    created_by: str
    created_at: datetime
    codes: list[CodeLineOut] = Field(default_factory=list)
    attestation: dict[str, Any] | None = None


class EncounterPage(BaseModel):
    items: list[EncounterOut]
    total: int
    limit: int
    offset: int


class HistoryEntry(BaseModel):
    seq: int
    at: str
    type: str
    outcome: str
    actor: dict[str, Any]
    on_behalf_of: dict[str, Any] | None
    subject: dict[str, Any]
    reason: str | None
    policy: dict[str, Any] | None
    before: Any
    after: Any
    detail: dict[str, Any] | None = None
