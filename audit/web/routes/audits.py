"""Coding-audit pages (issue 13): the list of audits the reader may see (with the form that opens one),
and one page per audit, for everyone the audit's read policy lets in. The auditor draws the sample and
records findings beside the coded lines (original on the left, revision on the right); the provider of
record and the coder answer them; compliance decides disputes; the auditor signs. Every form posts to
the same services as the API."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from sqlmodel import col, select

from audit.coding_audit import closure, findings, listing, service
from audit.coding_audit.schemas import (
    CATEGORIES,
    AuditCreate,
    DecisionCreate,
    FindingCreate,
    ResponseCreate,
    SignatureCreate,
)
from audit.coding_audit.scoring import score_audit
from audit.deps import SessionDep
from audit.encounter.service import active_lines
from audit.errors import InvalidInput
from audit.models import Encounter, User, utcnow
from audit.policy.scope import live_engagements
from audit.principal import CurrentUser
from audit.web.deps import PageUser, check_csrf
from audit.web.deps import listing as page_listing
from audit.web.routes.compliance import users_with_role
from audit.web.templating import render

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
Text = Annotated[str, Form(max_length=4000)]
Short = Annotated[str, Form(max_length=40)]
LIST_COLUMNS = tuple(listing.COLUMNS)
CODE_SYSTEMS = ("CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS")
METHODS = ("random", "stratified", "probe")
STRATA = ("provider", "em_level")


def _valid(model: Any, data: dict[str, Any]) -> Any:
    """A form's fields through the API's own request model: a bad one is a 422 naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise InvalidInput(".".join(str(x) for x in err["loc"]) or "form", err["msg"]) from exc


def _whole(value: str, field: str, digits: int) -> int:
    """A whole number typed in a form (ASCII digits only; the request model checks its range)."""
    if not re.fullmatch(f"[0-9]{{1,{digits}}}", value):
        raise InvalidInput(field, f"{field} is a whole number")
    return int(value)


def _choosable_providers(session: SessionDep, user: CurrentUser) -> list[User]:
    """The providers an audit's scope may name, by name: every provider for compliance; for an
    auditor those of their live engagements (every provider if one of them is not limited)."""
    providers = users_with_role(session, "provider")
    if user.has("compliance") or not user.has("auditor"):
        return providers
    engagements = live_engagements(session, user.id, utcnow())
    if any(not e.provider_ids for e in engagements):
        return providers
    allowed = {p for e in engagements for p in e.provider_ids}
    return [p for p in providers if p.id in allowed]


@router.get("/audits")
def audits_page(request: Request, session: SessionDep, user: PageUser) -> Response:
    """Compliance and auditors: the audits they may read (compliance: all; an auditor: their own,
    inside their live engagements), with the form that opens one. A provider or coder: the findings
    addressed to them in the audits judging their coding. Sorted and paged by SQL."""
    if not user.roles & service.MANAGERS:
        return _findings_for_me(request, session, user)
    lst = page_listing(request, LIST_COLUMNS, default="opened", desc=True)
    page = listing.audit_page(session, user, sort=lst.sort, desc=lst.desc, limit=lst.per, offset=lst.offset)
    listing.list_viewed(session, user=user, page=page, where="audits")
    context = {
        "rows": page.rows,
        "total": page.total,
        "lst": lst,
        "providers": _choosable_providers(session, user),
        "systems": CODE_SYSTEMS,
        "methods": METHODS,
        "strata": STRATA,
        "today": utcnow().date().isoformat(),
    }
    return render(request, "audits.html", context)


def _findings_for_me(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    lst = page_listing(request, tuple(listing.FINDING_COLUMNS), default="recorded", desc=True)
    scope = listing.audit_list_scope(session, user)
    rows, total = listing.findings_page(
        session, user, scope, sort=lst.sort, desc=lst.desc, limit=lst.per, offset=lst.offset
    )
    page = listing.AuditPage(rows, total, scope)
    listing.list_viewed(session, user=user, page=page, where="audits.findings_for_me")
    return render(request, "audit_findings_for_me.html", {"rows": rows, "total": total, "lst": lst})


@router.post("/audits")
def open_audit(
    session: SessionDep,
    user: PageUser,
    name: Annotated[str, Form(max_length=200)],
    date_from: Short,
    date_to: Short,
    method: Short,
    n: Short,
    seed: Short,
    strata: Short = "",
    em_only: Short = "",
    provider_ids: Annotated[list[str] | None, Form(max_length=200)] = None,
    code_systems: Annotated[list[str] | None, Form(max_length=4)] = None,
) -> Response:
    """Open an audit through the API's service and request model (`POST /api/v1/audits`)."""
    scope = {"from": date_from, "to": date_to, "provider_ids": list(provider_ids or []) or None,
             "code_systems": list(code_systems or []) or None, "em_only": em_only == "on"}  # fmt: skip
    sampling = {"method": method, "n": _whole(n, "sampling.n", 5), "strata": strata or None}
    body = {"name": name, "scope": scope, "sampling": sampling, "seed": _whole(seed, "seed", 19)}
    audit = service.open_audit(session, user=user, data=_valid(AuditCreate, body))
    return _back(audit.id)


@router.post("/audits/{audit_id}/sample")
def draw_sample(session: SessionDep, user: PageUser, audit_id: str) -> Response:
    """Draw the sample through the API's service (`POST /api/v1/audits/{id}/sample`): once only."""
    audit = service.draw_sample(session, user=user, audit_id=audit_id[:36])
    return _back(audit.id, "#sample")


def _encounters(session: SessionDep, view: dict[str, Any]) -> list[dict[str, Any]]:
    """Each visible sampled encounter with its lines, each line beside its current finding."""
    ids = [row["id"] for row in view["sample"] or ()]
    found = (
        {e.id: e for e in session.exec(select(Encounter).where(col(Encounter.id).in_(ids))).all()}
        if ids
        else {}
    )
    current = [f for f in view["findings"] if f["replaced_by"] is None]
    out = []
    for encounter_id in ids:
        e = found[encounter_id]
        lines = [
            {"line": line, "finding": next((f for f in current if f["line_id"] == line.id), None)}
            for line in active_lines(session, encounter_id)
        ]
        added = [f for f in current if f["encounter_id"] == encounter_id and f["verdict"] == "added"]
        out.append({"encounter": e, "lines": lines, "added": added})
    return out


@router.get("/audits/{audit_id}")
def audit_page(request: Request, session: SessionDep, user: PageUser, audit_id: str) -> Response:
    view = service.read_audit(session, user=user, audit_id=audit_id[:36])
    names = dict(session.exec(select(User.id, User.display_name)).all())
    is_auditor = view["auditor_id"] == user.id
    context = {
        "audit": view,
        "encounters": _encounters(session, view),
        "scores": score_audit(session, view["id"]) if user.roles & service.MANAGERS else None,
        "names": names,
        "is_auditor": is_auditor,
        "is_compliance": user.has("compliance"),
        "categories": CATEGORIES,
    }
    return render(request, "audit.html", context)


def _back(audit_id: str, anchor: str = "") -> RedirectResponse:
    return RedirectResponse(f"/audits/{audit_id}{anchor}", status_code=303)


@router.post("/audits/{audit_id}/findings")
def record(
    session: SessionDep,
    user: PageUser,
    audit_id: str,
    encounter_id: Annotated[str, Form(max_length=36)],
    verdict: Annotated[str, Form(max_length=16)],
    rationale: Text,
    line_id: Annotated[str, Form(max_length=36)] = "",
    code: Annotated[str, Form(max_length=16)] = "",
    modifiers: Annotated[str, Form(max_length=40)] = "",
    units: Annotated[str, Form(max_length=4)] = "",
    category: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    revised = None
    if units and not re.fullmatch("[0-9]{1,4}", units):
        raise InvalidInput("units", "units is a whole number of 1 to 9999")
    if code.strip():
        revised = {"code": code.strip(), "modifiers": modifiers.split(), "units": int(units or 1)}
    body = {"encounter_id": encounter_id, "line_id": line_id or None, "verdict": verdict, "revised": revised,
            "category": category or None, "rationale": rationale}  # fmt: skip
    findings.record_finding(session, user=user, audit_id=audit_id[:36], data=_valid(FindingCreate, body))
    return _back(audit_id[:36], f"#enc-{encounter_id}")


@router.post("/findings/{finding_id}/responses")
def respond(
    session: SessionDep,
    user: PageUser,
    finding_id: str,
    response: Annotated[str, Form(max_length=16)],
    comment: Text,
) -> Response:
    data = _valid(ResponseCreate, {"response": response, "comment": comment})
    answer = closure.respond(
        session, user=user, finding_id=finding_id[:36], response=data.response, comment=data.comment
    )
    audit_id = closure.load_finding(session, answer.finding_id).audit_id
    return _back(audit_id, f"#finding-{answer.finding_id}")


@router.post("/findings/{finding_id}/decision")
def decide(
    session: SessionDep,
    user: PageUser,
    finding_id: str,
    decision: Annotated[str, Form(max_length=16)],
    comment: Text,
) -> Response:
    data = _valid(DecisionCreate, {"decision": decision, "comment": comment})
    decided = closure.decide(
        session, user=user, finding_id=finding_id[:36], decision=data.decision, comment=data.comment
    )
    return _back(decided.audit_id, f"#finding-{decided.id}")


@router.post("/audits/{audit_id}/signature")
def sign(
    session: SessionDep, user: PageUser, audit_id: str, password: Annotated[str, Form(max_length=256)]
) -> Response:
    data = _valid(SignatureCreate, {"password": password})
    closure.sign(session, user=user, audit_id=audit_id[:36], password=data.password)
    return _back(audit_id[:36], "#signature")
