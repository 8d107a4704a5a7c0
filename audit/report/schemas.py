"""What a report is, independent of how it is rendered."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from audit.inputs import RequestModel


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


class SampleIn(RequestModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    n: int = Field(ge=1, le=10000)
    seed: int = Field(ge=0, le=2**63 - 1)
    date_from: date = Field(alias="from")
    date_to: date = Field(alias="to")
    provider_id: str | None = Field(default=None, max_length=36)


class SampleOut(BaseModel):
    seed: int
    n: int
    candidates: int
    filters: dict[str, Any]
    encounter_ids: list[str]
