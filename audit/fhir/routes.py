"""FHIR R4 read-only endpoints: searches and reads of AuditEvent and Provenance, and the
CapabilityStatement at `/fhir/metadata`.

Responses are `application/fhir+json`; errors are OperationOutcome (see `audit.fhir.outcome`, applied
by the application's error handlers to every path under /fhir). Unknown search parameters are ignored
(FHIR's lenient handling) and left out of the `self` link, so a client can see what was applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from audit.deps import SessionDep, UserDep
from audit.fhir import service
from audit.fhir.capability import capability_statement
from audit.fhir.outcome import fhir_status, operation_outcome

FHIR_JSON = "application/fhir+json"
PREFIX = "/fhir"


class FhirJSONResponse(JSONResponse):
    media_type = FHIR_JSON


router = APIRouter(prefix=PREFIX, tags=["fhir"], default_response_class=FhirJSONResponse)


def is_fhir_path(path: str) -> bool:
    return path == PREFIX or path.startswith(f"{PREFIX}/")


def error_response(
    status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> FhirJSONResponse:
    """Our error body as an OperationOutcome, with the status FHIR expects (bad input is 400)."""
    return FhirJSONResponse(
        operation_outcome(status, body), status_code=fhir_status(status), headers=dict(headers or {}) or None
    )


def _base(request: Request) -> str:
    return f"{str(request.base_url).rstrip('/')}{PREFIX}"


_COUNT = Query(alias="_count", description="page size, max 500")


@router.get("/metadata", summary="The server's CapabilityStatement (public)")
def metadata(request: Request) -> FhirJSONResponse:
    return FhirJSONResponse(capability_statement(_base(request)))


@router.get("/AuditEvent", summary="Search audit events (FHIR R4 AuditEvent searchset, IHE BALP)")
def search_audit_events(
    request: Request,
    session: SessionDep,
    user: UserDep,
    date: Annotated[list[str] | None, Query(description="e.g. ge2026-01-01 and le2026-12-31")] = None,
    entity: Annotated[str | None, Query(description="Encounter/<id>")] = None,
    subtype: Annotated[list[str] | None, Query(description="our event types, comma-separated")] = None,
    count: Annotated[str | None, _COUNT] = None,
    offset: Annotated[str | None, Query(alias="_offset")] = None,
) -> FhirJSONResponse:
    # The declared parameters document the search; the service parses them all from the raw query.
    bundle: dict[str, Any] = service.search_audit_events(
        session, user=user, params=request.query_params.multi_items(), base_url=_base(request)
    )
    return FhirJSONResponse(bundle)


@router.get("/AuditEvent/{seq}", summary="Read one audit event by its ledger seq")
def read_audit_event(request: Request, session: SessionDep, user: UserDep, seq: str) -> FhirJSONResponse:
    resource = service.read_audit_event(session, user=user, event_id=seq, base_url=_base(request))
    return FhirJSONResponse(resource)


@router.get("/Provenance", summary="Search attestations (FHIR R4 Provenance searchset)")
def search_provenance(
    request: Request,
    session: SessionDep,
    user: UserDep,
    target: Annotated[str | None, Query(description="Encounter/<id> (required)")] = None,
    count: Annotated[str | None, _COUNT] = None,
    offset: Annotated[str | None, Query(alias="_offset")] = None,
) -> FhirJSONResponse:
    bundle: dict[str, Any] = service.search_provenance(
        session, user=user, params=request.query_params.multi_items(), base_url=_base(request)
    )
    return FhirJSONResponse(bundle)


@router.get("/Provenance/{provenance_id}", summary="Read one attestation's Provenance by its id")
def read_provenance(
    request: Request, session: SessionDep, user: UserDep, provenance_id: str
) -> FhirJSONResponse:
    resource = service.read_provenance(
        session, user=user, provenance_id=provenance_id, base_url=_base(request)
    )
    return FhirJSONResponse(resource)
