"""FHIR R4 read-only endpoints: `GET /fhir/AuditEvent` and `GET /fhir/Provenance` (searchset Bundles).

Responses are `application/fhir+json`. Errors keep the service's JSON shape
(`{"error": "InvalidInput", "field": "date", "detail": ...}`, 401, 403 with rule ids) rather than an
OperationOutcome. Unknown search parameters are ignored (FHIR's lenient handling) and left out of the
`self` link, so a client can see what was applied.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from audit.deps import SessionDep, UserDep
from audit.fhir import service

FHIR_JSON = "application/fhir+json"


class FhirJSONResponse(JSONResponse):
    media_type = FHIR_JSON


router = APIRouter(prefix="/fhir", tags=["fhir"], default_response_class=FhirJSONResponse)


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{router.prefix}"


@router.get("/AuditEvent", summary="Search audit events (FHIR R4 AuditEvent searchset)")
def search_audit_events(
    request: Request,
    session: SessionDep,
    user: UserDep,
    date: Annotated[list[str] | None, Query(description="e.g. ge2026-01-01 and le2026-12-31")] = None,
    entity: Annotated[str | None, Query(description="Encounter/<id>")] = None,
    subtype: Annotated[list[str] | None, Query(description="our event types, comma-separated")] = None,
    count: Annotated[str | None, Query(alias="_count", description="page size, max 500")] = None,
    offset: Annotated[str | None, Query(alias="_offset")] = None,
) -> FhirJSONResponse:
    # The declared parameters document the search; the service parses them all from the raw query.
    bundle: dict[str, Any] = service.search_audit_events(
        session, user=user, params=request.query_params.multi_items(), base_url=_base(request)
    )
    return FhirJSONResponse(bundle)


@router.get("/Provenance", summary="Search attestations (FHIR R4 Provenance searchset)")
def search_provenance(
    request: Request,
    session: SessionDep,
    user: UserDep,
    target: Annotated[str | None, Query(description="Encounter/<id> (required)")] = None,
    count: Annotated[str | None, Query(alias="_count", description="page size, max 500")] = None,
    offset: Annotated[str | None, Query(alias="_offset")] = None,
) -> FhirJSONResponse:
    bundle: dict[str, Any] = service.search_provenance(
        session, user=user, params=request.query_params.multi_items(), base_url=_base(request)
    )
    return FhirJSONResponse(bundle)
