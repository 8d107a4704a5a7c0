from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, status
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from audit.attestation.service import attestation_view, current_attestation
from audit.deps import SessionDep, UserDep
from audit.encounter import codes, oversight, service
from audit.encounter.history import encounter_history
from audit.encounter.schemas import (
    CodeLineCreate,
    CodeLineOut,
    CodeLinePatch,
    EncounterCreate,
    EncounterOut,
    EncounterPage,
    HistoryEntry,
    ReasonIn,
)
from audit.models import CodeLine, Encounter

router = APIRouter(prefix="/api/v1/encounters", tags=["encounters"])


def encounter_out(session: Session, encounter: Encounter) -> EncounterOut:
    out = EncounterOut.model_validate(encounter, from_attributes=True)
    out.codes = [line_out(line) for line in service.active_lines(session, encounter.id)]
    attestation = current_attestation(session, encounter.id)
    out.attestation = attestation_view(attestation) if attestation else None
    return out


def line_out(line: CodeLine, findings: list[dict[str, Any]] | None = None) -> CodeLineOut:
    out = CodeLineOut.model_validate(line, from_attributes=True)
    out.findings = findings or []
    return out


@router.post("", response_model=EncounterOut, status_code=status.HTTP_201_CREATED)
def create_encounter(session: SessionDep, user: UserDep, data: EncounterCreate) -> EncounterOut:
    return encounter_out(session, service.create_encounter(session, user=user, data=data))


@router.get("", response_model=EncounterPage)
def list_encounters(
    session: SessionDep,
    user: UserDep,
    status_: Annotated[str | None, Query(alias="status", pattern="^(open|attested|amended)$")] = None,
    provider_id: str | None = None,
    from_: Annotated[date | None, Query(alias="from")] = None,
    to: date | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> EncounterPage:
    items, total = service.list_encounters(
        session,
        user=user,
        status=status_,
        provider_id=provider_id,
        date_from=from_,
        date_to=to,
        limit=limit,
        offset=offset,
    )
    return EncounterPage(
        items=[encounter_out(session, e) for e in items], total=total, limit=limit, offset=offset
    )


@router.get("/{encounter_id}", response_model=EncounterOut)
def get_encounter(session: SessionDep, user: UserDep, encounter_id: str) -> EncounterOut:
    return encounter_out(session, service.read_encounter(session, user=user, encounter_id=encounter_id))


@router.post("/{encounter_id}/codes", response_model=CodeLineOut, status_code=status.HTTP_201_CREATED)
def add_code(session: SessionDep, user: UserDep, encounter_id: str, data: CodeLineCreate) -> CodeLineOut:
    result = codes.add_code(session, user=user, encounter_id=encounter_id, data=data)
    return line_out(result.line, result.findings)


@router.patch("/{encounter_id}/codes/{line_id}", response_model=CodeLineOut)
def change_code(
    session: SessionDep,
    user: UserDep,
    encounter_id: str,
    line_id: str,
    data: CodeLinePatch,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> CodeLineOut:
    result = codes.change_code(
        session, user=user, encounter_id=encounter_id, line_id=line_id, if_match=if_match, data=data
    )
    return line_out(result.line, result.findings)


@router.post("/{encounter_id}/codes/{line_id}/void", response_model=CodeLineOut)
def void_code(
    session: SessionDep, user: UserDep, encounter_id: str, line_id: str, data: ReasonIn
) -> CodeLineOut:
    return line_out(
        codes.void_code(session, user=user, encounter_id=encounter_id, line_id=line_id, data=data).line
    )


@router.get("/{encounter_id}/history", response_model=list[HistoryEntry])
def history(session: SessionDep, user: UserDep, encounter_id: str) -> list[dict[str, Any]]:
    return encounter_history(session, user=user, encounter_id=encounter_id)


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: str = Field(min_length=3, max_length=2000)


@router.post("/{encounter_id}/flags", status_code=status.HTTP_201_CREATED)
def flag(session: SessionDep, user: UserDep, encounter_id: str, data: NoteIn) -> dict[str, str]:
    note = oversight.add_note(session, user=user, encounter_id=encounter_id, kind="flag", text=data.text)
    return {"id": note.id, "kind": note.kind, "text": note.text}


@router.post("/{encounter_id}/annotations", status_code=status.HTTP_201_CREATED)
def annotate(session: SessionDep, user: UserDep, encounter_id: str, data: NoteIn) -> dict[str, str]:
    note = oversight.add_note(
        session, user=user, encounter_id=encounter_id, kind="annotation", text=data.text
    )
    return {"id": note.id, "kind": note.kind, "text": note.text}
