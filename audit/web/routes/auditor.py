"""An external auditor's pages: their engagements, and inside one its reports, samples and bundle. The
services judge every read against the engagement (Cedar), so nothing outside it is shown or exported."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from sqlmodel import col, select

from audit.deps import SessionDep
from audit.errors import NotFound
from audit.export.routes import bundle_download
from audit.export.service import ExportRequest
from audit.models import Encounter, Engagement, User, utcnow
from audit.principal import CurrentUser
from audit.report import sampling
from audit.report.queries import REPORTS
from audit.web.deps import PageUser, check_csrf, require_role
from audit.web.routes.compliance import engagement_rows
from audit.web.routes.reports import DESCRIPTIONS
from audit.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])


@router.get("/auditor")
def home(request: Request, session: SessionDep, user: PageUser) -> Response:
    require_role(user, "auditor", "auditor")
    return render(request, "auditor_home.html", {"rows": engagement_rows(session, user)})


def own_engagement(session: SessionDep, user: CurrentUser, engagement_id: str) -> Engagement:
    """The auditor's own engagement; another's is not found (its existence is not theirs to learn)."""
    e = session.get(Engagement, engagement_id[:36])
    if e is None or e.auditor_id != user.id:
        raise NotFound("engagement not found")
    return e


def _names(session: SessionDep, ids: list[str]) -> str:
    if not ids:
        return "All providers"
    rows = session.exec(select(User.display_name).where(col(User.id).in_(ids)))
    return ", ".join(sorted(rows))


@router.get("/auditor/engagements/{engagement_id}")
def engagement(request: Request, session: SessionDep, user: PageUser, engagement_id: str) -> Response:
    require_role(user, "auditor", "engagement")
    e = own_engagement(session, user, engagement_id)
    reports = [(n, n.replace("-", " ").capitalize(), DESCRIPTIONS.get(n, "")) for n in REPORTS]
    context = {
        "e": e,
        "providers": _names(session, e.provider_ids),
        "live": e.revoked_at is None and utcnow() < e.expires_at,
        "reports": reports,
        "filters": {"from": e.date_from.isoformat(), "to": e.date_to.isoformat()},
    }
    return render(request, "auditor_engagement.html", context)


@router.post("/auditor/engagements/{engagement_id}/bundle")
def bundle(session: SessionDep, user: PageUser, engagement_id: str) -> Response:
    """The engagement's evidence bundle (zip with verify.py), recorded as an export event."""
    e = own_engagement(session, user, engagement_id)
    return bundle_download(session, user, ExportRequest(e.date_from, e.date_to, tuple(e.provider_ids)))


@router.post("/auditor/engagements/{engagement_id}/sample")
def sample(
    request: Request,
    session: SessionDep,
    user: PageUser,
    engagement_id: str,
    n: Annotated[int, Form(ge=1, le=10000)],
    seed: Annotated[int, Form(ge=0, le=2**63 - 1)],
) -> Response:
    e = own_engagement(session, user, engagement_id)
    drawn = sampling.draw_sample(session, user=user, n=n, seed=seed, date_from=e.date_from, date_to=e.date_to)
    ids = drawn["encounter_ids"]
    found = session.exec(select(Encounter).where(col(Encounter.id).in_(ids))).all() if ids else []
    by_id = {x.id: x for x in found}
    names = dict(session.exec(select(User.id, User.display_name)).all()) if found else {}
    rows = [
        {"external_id": by_id[i].external_id, "date_of_service": by_id[i].date_of_service,
         "provider": names.get(by_id[i].rendering_provider_id, "")}
        for i in ids
        if i in by_id
    ]  # fmt: skip
    return render(request, "auditor_sample.html", {"e": e, "drawn": drawn, "rows": rows})
