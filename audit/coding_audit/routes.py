"""Coding audits under /api/v1 (issue 13): the paths and bodies the issue publishes."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from audit.coding_audit import closure, findings, service
from audit.coding_audit.reports import NAMES, AuditReportRequest, view_audit_report
from audit.coding_audit.sample_size import MIN_PRECISION, sample_size
from audit.coding_audit.schemas import (
    AuditCreate,
    DecisionCreate,
    FindingCreate,
    ResponseCreate,
    SignatureCreate,
)
from audit.coding_audit.scores import read_scores
from audit.coding_audit.views import audit_state, finding_state, response_state, signature_state
from audit.deps import SessionDep, UserDep
from audit.inputs import BoundedDate
from audit.openapi import REPORT_OK, error_responses

router = APIRouter(prefix="/api/v1", tags=["coding audits"])


@router.post("/audits", status_code=status.HTTP_201_CREATED)
def open_audit(session: SessionDep, user: UserDep, data: AuditCreate) -> dict[str, Any]:
    return audit_state(service.open_audit(session, user=user, data=data))


@router.get("/audits/sample-size")
def get_sample_size(
    user: UserDep,
    confidence: Annotated[float, Query(gt=0.5, lt=1)] = 0.95,
    precision: Annotated[float, Query(ge=MIN_PRECISION, lt=0.5, description="margin of error")] = 0.05,
    expected_error_rate: Annotated[float, Query(gt=0, lt=1)] = 0.2,
    population: Annotated[int | None, Query(ge=1, le=100_000_000)] = None,
) -> dict[str, Any]:
    """The n for a confidence, precision and expected error rate, and the formula used (pure arithmetic:
    no data is read, so nothing is recorded)."""
    return sample_size(confidence, precision, expected_error_rate, population)


@router.post("/audits/{audit_id}/sample", responses=error_responses(409))
def draw_sample(session: SessionDep, user: UserDep, audit_id: str) -> dict[str, Any]:
    audit = service.draw_sample(session, user=user, audit_id=audit_id)
    return service.sample_view(session, audit)


@router.get("/audits/{audit_id}")
def get_audit(session: SessionDep, user: UserDep, audit_id: str) -> dict[str, Any]:
    return service.read_audit(session, user=user, audit_id=audit_id)


@router.post("/audits/{audit_id}/findings", status_code=status.HTTP_201_CREATED)
def record_finding(session: SessionDep, user: UserDep, audit_id: str, data: FindingCreate) -> dict[str, Any]:
    return finding_state(findings.record_finding(session, user=user, audit_id=audit_id, data=data))


@router.get("/audits/{audit_id}/scores")
def get_scores(session: SessionDep, user: UserDep, audit_id: str) -> dict[str, Any]:
    return read_scores(session, user=user, audit_id=audit_id)


@router.post(
    "/findings/{finding_id}/responses", status_code=status.HTTP_201_CREATED, responses=error_responses(409)
)
def respond(session: SessionDep, user: UserDep, finding_id: str, data: ResponseCreate) -> dict[str, Any]:
    answer = closure.respond(
        session, user=user, finding_id=finding_id, response=data.response, comment=data.comment
    )
    return response_state(answer)


@router.post("/findings/{finding_id}/decision", responses=error_responses(409))
def decide(session: SessionDep, user: UserDep, finding_id: str, data: DecisionCreate) -> dict[str, Any]:
    decided = closure.decide(
        session, user=user, finding_id=finding_id, decision=data.decision, comment=data.comment
    )
    return finding_state(decided)


@router.post(
    "/audits/{audit_id}/signature", status_code=status.HTTP_201_CREATED, responses=error_responses(409)
)
def sign(session: SessionDep, user: UserDep, audit_id: str, data: SignatureCreate) -> dict[str, Any]:
    return signature_state(closure.sign(session, user=user, audit_id=audit_id, password=data.password))


reports_router = APIRouter(prefix="/api/v1/reports", tags=["coding audits"])


def _report(
    session: SessionDep,
    user: UserDep,
    name: str,
    audit_id: str | None,
    from_: date | None,
    to: date | None,
    provider_id: str | None,
    format_: str,
    section: str | None,
) -> Response:
    req = AuditReportRequest(name, audit_id, from_, to, provider_id, format_, section)
    body, media_type, filename = view_audit_report(session, user=user, req=req)
    headers = {} if format_ == "json" else {"Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(body, media_type=media_type, headers=headers)


def _route(name: str) -> None:
    def get_report(
        session: SessionDep,
        user: UserDep,
        audit_id: Annotated[str | None, Query(max_length=36)] = None,
        from_: Annotated[BoundedDate | None, Query(alias="from", description="First date of service")] = None,
        to: Annotated[BoundedDate | None, Query(description="Last date of service")] = None,
        provider_id: Annotated[str | None, Query(max_length=36)] = None,
        format_: Annotated[str, Query(alias="format", pattern="^(json|csv|pdf)$")] = "json",
        section: Annotated[str | None, Query(description="CSV: which table of a multi-table report")] = None,
    ) -> Response:
        return _report(session, user, name, audit_id, from_, to, provider_id, format_, section)

    get_report.__name__ = f"get_{name.replace('-', '_')}_report"
    # audit-summary names an audit, which may not exist (404)
    responses = {**REPORT_OK, **error_responses(404)}
    reports_router.add_api_route(f"/{name}", get_report, methods=["GET"], responses=responses)


for _name in NAMES:
    _route(_name)
