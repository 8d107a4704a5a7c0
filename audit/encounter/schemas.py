from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from audit.inputs import Multiline, RequestModel

PATIENT_REF_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$"
# Bounded so that what a refusal's event quotes is small; the service says "at most 4 modifiers".
Modifiers = list[Annotated[str, Field(max_length=8)]]


Modifier = Annotated[str, Field(max_length=8)]
Pointer = Annotated[int, Field(ge=1, le=12, description="1-based index of a diagnosis line")]


class _Input(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class EncounterCreate(_Input):
    external_id: str = Field(min_length=1, max_length=128, examples=["V-2026-0001"])
    source: str = Field(default="manual", min_length=1, max_length=64, examples=["manual"])
    patient_ref: str = Field(
        pattern=PATIENT_REF_PATTERN,
        description="An opaque patient reference (e.g. an MRN token), never a name: no spaces.",
        examples=["MRN-000123"],
    )
    date_of_service: date = Field(description="1900-01-01 .. 2100-12-31", examples=["2026-01-05"])
    rendering_provider_id: str = Field(min_length=1, max_length=36)
    supervising_provider_ids: list[Annotated[str, Field(max_length=36)]] = Field(
        default_factory=list, max_length=10
    )
    on_behalf_of: str | None = Field(
        default=None, max_length=36, description="Integration accounts only: the user id the feed acts for."
    )


class CodeLineCreate(_Input):
    system: str = Field(min_length=1, max_length=32, examples=["CPT", "ICD-10-CM"])
    code: str = Field(min_length=1, max_length=16, examples=["99213", "E11.9"])
    modifiers: Modifiers = Field(default_factory=list, max_length=8, examples=[["25"]])
    units: int = Field(default=1, ge=1, le=9999)
    diagnosis_pointers: list[Pointer] = Field(default_factory=list, max_length=12)
    reason: Multiline | None = Field(
        default=None, max_length=500, examples=["late entry from the visit note"]
    )
    on_behalf_of: str | None = Field(
        default=None, max_length=36, description="Integration accounts only: the user id the feed acts for."
    )


class CodeLinePatch(_Input):
    code: str | None = Field(default=None, min_length=1, max_length=16, examples=["99214"])
    modifiers: Modifiers | None = Field(default=None, max_length=8)
    units: int | None = Field(default=None, ge=1, le=9999)
    diagnosis_pointers: list[Pointer] | None = Field(default=None, max_length=12)
    reason: Multiline | None = Field(
        default=None, max_length=500, examples=["documentation supports a higher level"]
    )
    on_behalf_of: str | None = Field(default=None, max_length=36)


class ReasonIn(_Input):
    reason: Multiline = Field(min_length=3, max_length=500, examples=["entered on the wrong encounter"])
    on_behalf_of: str | None = Field(default=None, max_length=36)


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
    total: int = Field(description="rows in scope, counted up to 10,000")
    total_capped: bool = Field(default=False, description="there are more than `total` (show 10,000+)")
    limit: int
    offset: int
    next_cursor: str | None = Field(default=None, description="send as `cursor` for the next page")


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
