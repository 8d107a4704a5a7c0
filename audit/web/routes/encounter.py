"""One encounter's page (for whoever may read it: its provider, a delegated coder, compliance,
an auditor in an engagement) and its forms: add, change and void a line; attest."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, RedirectResponse, Response
from sqlalchemy.engine import Connection, Engine

from audit.attestation.service import attest
from audit.codesets.service import check_code
from audit.deps import BindDep, SessionDep
from audit.encounter import codes
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, ReasonIn
from audit.errors import Conflict, DomainError, InvalidInput
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.web.deps import PageUser, check_csrf, listing
from audit.web.encounter_page import LINE_SORTS, encounter_context
from audit.web.forms import model, pointers, split_list
from audit.web.templating import render
from audit.web.views import encounter_viewed

router = APIRouter(include_in_schema=False, dependencies=[Depends(check_csrf)])
Text = Annotated[str, Form(max_length=2000)]
Short = Annotated[str, Form(max_length=64)]


def show(
    request: Request,
    bind: Engine | Connection,
    user: CurrentUser,
    encounter_id: str,
    *,
    status: int = 200,
    error: DomainError | None = None,
    form: dict[str, Any] | None = None,
) -> Response:
    """The encounter page (its view recorded), with a form's error and entries when a post failed."""
    lst = listing(request, tuple(LINE_SORTS), default="entered") if request.method == "GET" else None
    with unit_of_work(bind) as session:
        encounter, scope = encounter_viewed(session, user=user, encounter_id=encounter_id, page="encounter")
        context = encounter_context(session, encounter, scope, lst)
    context["error"] = error
    context["form"] = form or {}
    context["can_code"] = user.has("coder") or user.has("provider")
    context["can_attest"] = user.id == encounter.rendering_provider_id and encounter.status != "attested"
    return render(request, "encounter.html", context, status=status)


@router.get("/encounters/{encounter_id}")
def encounter_page(request: Request, bind: BindDep, user: PageUser, encounter_id: str) -> Response:
    return show(request, bind, user, encounter_id)


def _after_write(
    request: Request, bind: BindDep, user: CurrentUser, encounter_id: str, form: dict[str, Any], work: Any
) -> Response:
    """Run a write in its own unit of work; on success back to the page (post/redirect/get), on a
    refusal the page again with the error and what was entered (the refusal is recorded)."""
    try:
        with unit_of_work(bind) as session:
            work(session)
    except DomainError as exc:
        if exc.status_code in (404,):
            raise
        return show(request, bind, user, encounter_id, status=exc.status_code, error=exc, form=form)
    return RedirectResponse(f"/encounters/{encounter_id}#lines", status_code=303)


def _line_fields(modifiers: str, units: str, diagnosis_pointers: str, reason: str) -> dict[str, Any]:
    """A line form's shared fields as the API's body has them (lists split, empty means default)."""
    return {
        "modifiers": split_list(modifiers),
        "units": units or "1",
        "diagnosis_pointers": pointers(diagnosis_pointers),
        "reason": reason or None,
    }


@router.post("/encounters/{encounter_id}/lines")
def add_line(
    request: Request,
    bind: BindDep,
    user: PageUser,
    encounter_id: str,
    system: Short,
    code: Short,
    modifiers: Short = "",
    units: Short = "1",
    diagnosis_pointers: Short = "",
    reason: Text = "",
) -> Response:
    form = {"op": "add", "system": system, "code": code, "modifiers": modifiers, "units": units,
            "diagnosis_pointers": diagnosis_pointers, "reason": reason}  # fmt: skip

    def work(session: Any) -> None:
        fields = _line_fields(modifiers, units, diagnosis_pointers, reason)
        data = model(CodeLineCreate, {"system": system, "code": code, **fields})
        codes.add_code(session, user=user, encounter_id=encounter_id, data=data)

    return _after_write(request, bind, user, encounter_id, form, work)


@router.post("/encounters/{encounter_id}/lines/{line_id}")
def change_line(
    request: Request,
    bind: BindDep,
    user: PageUser,
    encounter_id: str,
    line_id: str,
    version: Short,
    code: Short,
    modifiers: Short = "",
    units: Short = "1",
    diagnosis_pointers: Short = "",
    reason: Text = "",
) -> Response:
    form = {"op": "change", "line_id": line_id, "code": code, "modifiers": modifiers, "units": units,
            "diagnosis_pointers": diagnosis_pointers, "reason": reason}  # fmt: skip

    def work(session: Any) -> None:
        fields = _line_fields(modifiers, units, diagnosis_pointers, reason)
        data = model(CodeLinePatch, {"code": code, **fields})
        codes.change_code(
            session, user=user, encounter_id=encounter_id, line_id=line_id, if_match=f'"{version}"', data=data
        )

    return _after_write(request, bind, user, encounter_id, form, work)


@router.post("/encounters/{encounter_id}/lines/{line_id}/void")
def void_line(
    request: Request, bind: BindDep, user: PageUser, encounter_id: str, line_id: str, reason: Text = ""
) -> Response:
    form = {"op": "void", "line_id": line_id, "reason": reason}

    def work(session: Any) -> None:
        data = model(ReasonIn, {"reason": reason})
        codes.void_code(session, user=user, encounter_id=encounter_id, line_id=line_id, data=data)

    return _after_write(request, bind, user, encounter_id, form, work)


@router.post("/encounters/{encounter_id}/attest")
def attest_encounter(
    request: Request,
    bind: BindDep,
    user: PageUser,
    encounter_id: str,
    password: Annotated[str, Form(max_length=1024)],
    digest: Annotated[str, Form(max_length=64)],
) -> Response:
    """Sign: the password re-entered now, over the code set the page showed (its digest): if the
    codes changed since the page was drawn, nothing is signed (409) and the new set is shown."""

    def work(session: Any) -> None:
        signed = attest(session, user=user, encounter_id=encounter_id, password=password)
        if signed.code_set_digest != digest:
            raise Conflict(
                "the codes changed since this page was drawn: read them again and sign the new set",
                field="digest",
            )

    return _after_write(request, bind, user, encounter_id, {"op": "attest"}, work)


@router.get("/codes/check")
def code_check(
    request: Request,
    session: SessionDep,
    user: PageUser,
    system: str = "",
    code: str = "",
    modifiers: str = "",
    dos: date | None = None,
) -> Response:
    """Inline validation for the line forms (JSON for app.js): the API's code-set check, which
    reveals only public code-set data; its refusals come back as the API's error body."""
    try:
        if dos is None:
            raise InvalidInput("dos", "dos (the date of service) is required")
        if not code.strip():
            raise InvalidInput("code", "code is required")
        found = check_code(session, system=system, code=code, modifiers=split_list(modifiers), dos=dos)
    except DomainError as exc:
        return JSONResponse(exc.body(), status_code=exc.status_code)
    return JSONResponse(jsonable_encoder(found))
