from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response, status
from pydantic import ConfigDict, Field
from sqlmodel import Session

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
from audit.encounter.signature import attestation_view, current_attestation, current_attestations
from audit.inputs import MAX_OFFSET, BoundedDate, Multiline, RequestModel
from audit.models import Attestation, CodeLine, Encounter
from audit.openapi import error_responses

router = APIRouter(prefix="/api/v1/encounters", tags=["encounters"])


def encounter_out(session: Session, encounter: Encounter) -> EncounterOut:
    attestation = current_attestation(session, encounter.id)
    return encounter_view(encounter, service.active_lines(session, encounter.id), attestation)


def encounter_view(
    encounter: Encounter, lines: list[CodeLine], attestation: Attestation | None
) -> EncounterOut:
    out = EncounterOut.model_validate(encounter, from_attributes=True)
    out.codes = [line_out(line) for line in lines]
    out.attestation = attestation_view(attestation) if attestation else None
    return out


def encounters_out(session: Session, encounters: list[Encounter]) -> list[EncounterOut]:
    """A page of encounters with their lines and attestations: three queries, whatever the page size."""
    ids = [e.id for e in encounters]
    lines = service.lines_by_encounter(session, ids)
    attestations = current_attestations(session, ids)
    return [encounter_view(e, lines[e.id], attestations.get(e.id)) for e in encounters]


def line_out(line: CodeLine, findings: list[dict[str, Any]] | None = None) -> CodeLineOut:
    out = CodeLineOut.model_validate(line, from_attributes=True)
    out.findings = findings or []
    return out


def with_etag(response: Response, out: CodeLineOut) -> CodeLineOut:
    """The line's version as its entity tag: what a later PATCH sends back as If-Match."""
    response.headers["ETag"] = f'"{out.version}"'
    return out


ETAG = {"ETag": {"description": 'The line\'s version, quoted (`"3"`): send it as If-Match to change the line',
                 "schema": {"type": "string"}}}  # fmt: skip


@router.post(
    "", response_model=EncounterOut, status_code=status.HTTP_201_CREATED, responses=error_responses(409)
)
def create_encounter(session: SessionDep, user: UserDep, data: EncounterCreate) -> EncounterOut:
    return encounter_out(session, service.create_encounter(session, user=user, data=data))


@router.get("", response_model=EncounterPage)
def list_encounters(
    session: SessionDep,
    user: UserDep,
    status_: Annotated[str | None, Query(alias="status", pattern="^(open|attested|amended)$")] = None,
    provider_id: Annotated[str | None, Query(max_length=36)] = None,
    from_: Annotated[BoundedDate | None, Query(alias="from")] = None,
    to: BoundedDate | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> EncounterPage:
    """Newest date of service first. Page with `cursor` (each page's `next_cursor`); `offset` still
    works. `total` counts up to 10,000 (`total_capped` when there are more)."""
    page = service.list_encounters(
        session,
        user=user,
        status=status_,
        provider_id=provider_id,
        date_from=from_,
        date_to=to,
        limit=limit,
        offset=offset,
        cursor=cursor,
    )
    return EncounterPage(
        items=encounters_out(session, page.items),
        total=page.total,
        total_capped=page.total_capped,
        limit=limit,
        offset=offset,
        next_cursor=page.next_cursor,
    )


@router.get("/{encounter_id}", response_model=EncounterOut)
def get_encounter(session: SessionDep, user: UserDep, encounter_id: str) -> EncounterOut:
    return encounter_out(session, service.read_encounter(session, user=user, encounter_id=encounter_id))


@router.post(
    "/{encounter_id}/codes",
    response_model=CodeLineOut,
    status_code=status.HTTP_201_CREATED,
    responses={201: {"headers": ETAG}},
)
def add_code(
    session: SessionDep, user: UserDep, encounter_id: str, data: CodeLineCreate, response: Response
) -> CodeLineOut:
    result = codes.add_code(session, user=user, encounter_id=encounter_id, data=data)
    return with_etag(response, line_out(result.line, result.findings))


@router.patch(
    "/{encounter_id}/codes/{line_id}",
    response_model=CodeLineOut,
    responses={**error_responses(409, 412, 428), 200: {"headers": ETAG}},
)
def change_code(
    session: SessionDep,
    user: UserDep,
    encounter_id: str,
    line_id: str,
    data: CodeLinePatch,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> CodeLineOut:
    result = codes.change_code(
        session, user=user, encounter_id=encounter_id, line_id=line_id, if_match=if_match, data=data
    )
    return with_etag(response, line_out(result.line, result.findings))


@router.post(
    "/{encounter_id}/codes/{line_id}/void",
    response_model=CodeLineOut,
    responses={**error_responses(409), 200: {"headers": ETAG}},
)
def void_code(
    session: SessionDep, user: UserDep, encounter_id: str, line_id: str, data: ReasonIn, response: Response
) -> CodeLineOut:
    voided = codes.void_code(session, user=user, encounter_id=encounter_id, line_id=line_id, data=data)
    return with_etag(response, line_out(voided.line))


@router.get("/{encounter_id}/history", response_model=list[HistoryEntry])
def history(session: SessionDep, user: UserDep, encounter_id: str) -> list[dict[str, Any]]:
    return encounter_history(session, user=user, encounter_id=encounter_id)


class NoteIn(RequestModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    text: Multiline = Field(min_length=3, max_length=2000, examples=["E/M level looks high for the note"])


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
