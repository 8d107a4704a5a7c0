"""Request bodies of the coding-audit API (issue 13); the names are the issue's, kept as published."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, model_validator

from audit.inputs import Multiline, RequestModel

CATEGORIES = (
    "upcoded",
    "downcoded",
    "unsupported by documentation",
    "wrong provider of record",
    "missing or wrong modifier",
    "unbundled",
    "wrong diagnosis",
    "other",
)
Category = Literal[
    "upcoded",
    "downcoded",
    "unsupported by documentation",
    "wrong provider of record",
    "missing or wrong modifier",
    "unbundled",
    "wrong diagnosis",
    "other",
]
CodeSystem = Literal["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]
Id = Annotated[str, Field(min_length=1, max_length=36)]


class ScopeIn(RequestModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    date_from: date = Field(alias="from", description="First date of service")
    date_to: date = Field(alias="to", description="Last date of service")
    provider_ids: list[Id] | None = Field(default=None, max_length=200, description="None: every provider")
    code_systems: list[CodeSystem] | None = Field(
        default=None, max_length=4, description="Only encounters with a line in these systems"
    )
    em_only: bool = Field(default=False, description="Only encounters with an E/M line")


class SamplingIn(RequestModel):
    method: Literal["random", "stratified", "probe"]
    n: int = Field(ge=1, le=10_000, description="random/stratified: sample size; probe: per provider")
    strata: Literal["provider", "em_level"] | None = Field(default=None, description="stratified only")

    @model_validator(mode="after")
    def _strata_only_when_stratified(self) -> SamplingIn:
        if self.method == "stratified" and self.strata is None:
            raise ValueError("strata: a stratified sample needs strata (provider or em_level)")
        if self.method != "stratified" and self.strata is not None:
            raise ValueError("strata: only a stratified sample has strata")
        return self


class AuditCreate(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=200)
    scope: ScopeIn
    sampling: SamplingIn
    seed: int = Field(ge=0, le=2**63 - 1)


class RevisedIn(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    code: str = Field(min_length=1, max_length=16, pattern=r"^[A-Za-z0-9.]+$")
    modifiers: list[Annotated[str, Field(min_length=2, max_length=2, pattern=r"^[A-Za-z0-9]{2}$")]] = Field(
        default_factory=list, max_length=4
    )
    units: int = Field(default=1, ge=1, le=9999)
    system: CodeSystem | None = Field(default=None, description="An added line's code system (default CPT)")


class FindingCreate(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    encounter_id: Id
    line_id: Id | None = None
    verdict: Literal["agree", "disagree", "added"]
    revised: RevisedIn | None = None
    category: Category | None = None
    rationale: Multiline = Field(min_length=1, max_length=4000)


class ResponseCreate(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    response: Literal["accept", "dispute"]
    comment: Multiline = Field(min_length=1, max_length=4000)


class DecisionCreate(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    decision: Literal["upheld", "reversed"]
    comment: Multiline = Field(min_length=1, max_length=4000)


class SignatureCreate(RequestModel):
    password: str = Field(min_length=1, max_length=256, description="Re-entered at signing (21 CFR 11.200)")
