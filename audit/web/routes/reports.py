"""Report pages for compliance and auditors (and providers over their own encounters): every report as
a sortable, paged table with CSV and PDF downloads. The report service decides the scope (Cedar) and
records a `report.view` event for each view and each download, as for the API."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from audit.deps import SessionDep
from audit.errors import InvalidInput, NotFound
from audit.report.queries import REPORTS
from audit.report.service import TIMELINE, ReportRequest, view_report, view_report_data
from audit.web.deps import PageUser, check_csrf
from audit.web.routes.compliance import parse_date, parse_id
from audit.web.tables import section_page
from audit.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])

DESCRIPTIONS = {
    "provider-responsibility": "Per provider: encounters, attestations, lines entered by delegates.",
    "changes-after-attestation": "Every code change made after an encounter was attested.",
    "unattested-aging": "Encounters waiting for attestation, by days since the date of service.",
    "late-attestations": "Attestations signed after the policy's deadline.",
    "coder-activity": "Lines added, changed and voided by each coder.",
    "delegation-register": "Every delegation: who, what, when, revoked.",
    "denied-attempts": "Refused actions: denied by policy or failed (sign-in, signing).",
    "em-distribution": "Each provider's E/M levels beside their peers'.",
    "codes-invalid-for-date": "Lines a code-set import re-checked as invalid or unverified.",
    "retention": "Records past their retention period.",
}


def report_request(request: Request, name: str, fmt: str) -> ReportRequest:
    if name not in REPORTS and name != TIMELINE:
        raise NotFound(f"no report named {name!r}")
    q = request.query_params
    section = q.get("section")
    if section is not None and len(section) > 64:
        raise InvalidInput("section", "section is not a section of this report")
    return ReportRequest(
        name,
        parse_date(q.get("from"), "from"),
        parse_date(q.get("to"), "to"),
        parse_id(q.get("provider_id"), "provider_id"),
        parse_id(q.get("encounter_id"), "encounter_id"),
        fmt,
        section,
    )


def _filters(request: Request) -> dict[str, Any]:
    q = request.query_params
    return {k: q[k] for k in ("from", "to", "provider_id", "encounter_id") if q.get(k)}


@router.get("/reports")
def index(request: Request, user: PageUser) -> Response:
    names = [(n, n.replace("-", " ").capitalize(), DESCRIPTIONS.get(n, "")) for n in REPORTS]
    return render(request, "reports.html", {"reports": names, "filters": _filters(request)})


@router.get("/reports/{name}")
def report_page(request: Request, session: SessionDep, user: PageUser, name: str) -> Response:
    req = report_request(request, name, "html")
    report, shown, _ = view_report_data(session, user=user, req=req)
    tables = [
        section_page(s, request.query_params, f"{s.key}_", s.heading or report.title) for s in report.sections
    ]
    return render(
        request,
        "report.html",
        {"report": report, "shown": shown, "tables": tables, "filters": _filters(request)},
    )


@router.get("/reports/{name}/download")
def download(request: Request, session: SessionDep, user: PageUser, name: str) -> Response:
    fmt = request.query_params.get("format", "pdf")
    if fmt not in ("csv", "pdf"):
        raise InvalidInput("format", "format must be csv or pdf")
    rendered = view_report(session, user=user, req=report_request(request, name, fmt))
    headers = {"Content-Disposition": f'attachment; filename="{rendered.filename}"'}
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)
