"""What a report is, independent of how it is rendered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class Filters:
    """The effective scope of a report: dates of service, providers, one encounter."""

    date_from: date | None = None
    date_to: date | None = None
    provider_ids: frozenset[str] | None = None
    encounter_id: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "provider_ids": sorted(self.provider_ids) if self.provider_ids else None,
            "encounter_id": self.encounter_id,
        }


@dataclass
class Section:
    key: str
    heading: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)


@dataclass
class Report:
    name: str
    title: str
    sections: list[Section]

    @property
    def main(self) -> Section:
        return self.sections[0]


class SampleIn(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    n: int = Field(ge=1, le=10000)
    seed: int
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    provider_id: str | None = None


class SampleOut(BaseModel):
    seed: int
    n: int
    candidates: int
    filters: dict[str, Any]
    encounter_ids: list[str]
