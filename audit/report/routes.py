from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status

from audit.deps import SessionDep, UserDep
from audit.inputs import BoundedDate
from audit.openapi import REPORT_OK
from audit.report import sampling
from audit.report.schemas import SampleIn, SampleOut
from audit.report.service import ReportRequest, view_report

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
samples_router = APIRouter(prefix="/api/v1/samples", tags=["reports"])


@router.get("/{name}", responses=REPORT_OK)
def get_report(
    session: SessionDep,
    user: UserDep,
    name: str,
    from_: Annotated[BoundedDate | None, Query(alias="from", description="First date of service")] = None,
    to: Annotated[BoundedDate | None, Query(description="Last date of service")] = None,
    provider_id: Annotated[str | None, Query(max_length=36)] = None,
    encounter_id: Annotated[str | None, Query(max_length=36, description="encounter-timeline only")] = None,
    format_: Annotated[str, Query(alias="format", pattern="^(json|csv|pdf)$")] = "json",
    section: Annotated[str | None, Query(description="CSV: which table of a multi-table report")] = None,
) -> Response:
    req = ReportRequest(name, from_, to, provider_id, encounter_id, format_, section)
    rendered = view_report(session, user=user, req=req)
    headers = {}
    if format_ != "json":
        headers["Content-Disposition"] = f'attachment; filename="{rendered.filename}"'
    return Response(rendered.body, media_type=rendered.media_type, headers=headers)


@samples_router.post("", response_model=SampleOut, status_code=status.HTTP_201_CREATED)
def draw_sample(session: SessionDep, user: UserDep, data: SampleIn) -> dict[str, Any]:
    result = sampling.draw_sample(
        session,
        user=user,
        n=data.n,
        seed=data.seed,
        date_from=data.date_from,
        date_to=data.date_to,
        provider_id=data.provider_id,
    )
    return result
