"""The coder's worklist: encounters of the providers who delegated to them (the API's list scope),
filtered by external id, patient reference, provider, status and dates of service."""

from __future__ import annotations

from datetime import date

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from audit.deps import SessionDep
from audit.errors import InvalidInput
from audit.models import utcnow
from audit.policy.scope import live_delegations
from audit.web.deps import PageUser, check_csrf, listing, require_role
from audit.web.encounter_page import people
from audit.web.queries import Filters, encounter_page
from audit.web.templating import render
from audit.web.views import list_viewed

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
COLUMNS = ("dos", "external_id", "patient_ref", "provider", "status", "created")
STATUSES = ("open", "attested", "amended")


def _date(request: Request, field: str) -> date | None:
    text = request.query_params.get(field, "")
    if not text:
        return None
    try:
        day = date.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(field, f"{field} must be a date, YYYY-MM-DD") from exc
    if not date(1900, 1, 1) <= day <= date(2100, 12, 31):
        raise InvalidInput(field, f"{field} must be between 1900-01-01 and 2100-12-31")
    return day


def _filters(request: Request, providers: dict[str, object]) -> Filters:
    q = request.query_params
    status = q.get("status", "")
    if status and status not in STATUSES:
        raise InvalidInput("status", f"status must be one of: {', '.join(STATUSES)}")
    provider = q.get("provider", "")
    if provider and provider not in providers:
        raise InvalidInput("provider", "provider must be one of the providers who delegated to you")
    for field in ("external_id", "patient_ref"):
        if len(q.get(field, "")) > 128:
            raise InvalidInput(field, f"{field} must be at most 128 characters")
    filters = Filters(
        external_id=q.get("external_id", "").strip(),
        patient_ref=q.get("patient_ref", "").strip(),
        provider_id=provider,
        status=status,
        date_from=_date(request, "from"),
        date_to=_date(request, "to"),
    )
    if filters.date_from and filters.date_to and filters.date_to < filters.date_from:
        raise InvalidInput("to", "to must not be before from")
    return filters


@router.get("/coder/worklist")
def worklist(request: Request, session: SessionDep, user: PageUser) -> Response:
    require_role(user, "coder", "worklist")
    delegations = live_delegations(session, user.id, utcnow())
    providers = people(session, {d.provider_id for d in delegations})
    filters = _filters(request, providers)  # type: ignore[arg-type]
    lst = listing(request, COLUMNS, default="dos")
    page = encounter_page(session, user, filters, lst)
    list_viewed(
        session,
        user=user,
        scope=page.scope,
        page="coder.worklist",
        filters=filters.as_dict(),
        rows=len(page.rows),
    )
    context = {
        "rows": page.rows,
        "total": page.total,
        "capped": page.capped,
        "lst": lst,
        "filters": filters,
        "providers": sorted(providers.values(), key=lambda p: p.name.lower()),
        "statuses": STATUSES,
    }
    return render(request, "worklist.html", context)
