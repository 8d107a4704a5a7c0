"""Hostile values in every page form: a 4xx page naming the field (never a 500), nothing stored,
and the ledger still verifies. The form routes are read from the application, so a new form without
a row here fails `test_every_form_has_a_row`."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.main import create_app
from audit.models import Attestation, CodeLine, Delegation
from audit.openapi import api_routes
from audit.web.app import is_page
from tests.conftest import People
from tests.test_hostile_input import _verify_ledger
from tests.web.test_pages import encounter

CONTROL = ["\x00", "a\x1fb", "x\u202ey", "\x7f"]
LONG = "x" * 5000
INTS = ["-1", "0", "10000", "1e3", "\uff11\uff12", "abc", "99999999999999999999999"]

# (form route) -> the fields to attack and the values for each
FORMS: dict[str, dict[str, list[str]]] = {
    "/encounters/{encounter_id}/lines": {
        "system": ["NOPE", LONG, *CONTROL],
        "code": ["", "9921", LONG, *CONTROL, "99213; drop table code_line"],
        "modifiers": ["ZZZ", "1 2 3 4 5", LONG, *CONTROL],
        "units": INTS,
        "diagnosis_pointers": ["a", "-1", "1000", LONG],
        "reason": [*CONTROL, LONG],
    },
    "/encounters/{encounter_id}/lines/{line_id}": {
        "version": ["x", "-1", "999", "", LONG],
        "code": ["", "9921", LONG, *CONTROL],
        "units": INTS,
        "reason": [*CONTROL, LONG],
    },
    "/encounters/{encounter_id}/lines/{line_id}/void": {"reason": ["", "ab", *CONTROL, LONG]},
    "/encounters/{encounter_id}/attest": {"password": [LONG, ""], "digest": ["", LONG, "0" * 64]},
    "/provider/delegations": {
        "coder_id": ["", "not-a-user", LONG, *CONTROL],
        "valid_until": ["yesterday", "2001-01-01", "9999-12-31", "2026-02-30", LONG],
        "code_systems": ["NOPE", LONG],
    },
    "/provider/delegations/{delegation_id}/revoke": {"reason": ["", "ab", *CONTROL, LONG]},
    "/signin": {"username": [LONG, *CONTROL], "password": [LONG]},
    "/account/password": {"new_password": ["short", LONG, *CONTROL], "current_password": [LONG, *CONTROL]},
}


def form_routes() -> set[str]:
    from starlette.requests import Request

    out = set()
    for route in api_routes(create_app().routes):
        path = route.path_format
        page = is_page(Request({"type": "http", "path": path, "query_string": b"", "headers": []}))
        if "POST" in (route.methods or ()) and page:
            out.add(path)
    return out - {"/signout"}  # no fields


def test_every_form_has_a_row() -> None:
    from tests.web.test_audit_forms import AUDIT_FORMS
    from tests.web.test_oversight_forms import OVERSIGHT_FORMS

    assert form_routes() == set(FORMS) | set(OVERSIGHT_FORMS) | set(AUDIT_FORMS)


def _counts(connection: Connection) -> tuple[int, ...]:
    return tuple(
        connection.execute(select(func.count()).select_from(t)).scalar_one()
        for t in (CodeLine.__table__, Delegation.__table__, Attestation.__table__)  # type: ignore[attr-defined]
    )


@pytest.mark.parametrize("route", sorted(FORMS))
def test_hostile_form_values_are_refused_and_nothing_is_stored(
    route: str, browser_for: Any, people: People, connection: Connection
) -> None:
    provider = people.make("provider", name="Dr Hostile Target")
    coder = people.make("coder")
    delegation = people.delegate(provider, coder)
    eid = encounter(people, coder, provider, 7)
    c = browser_for(coder)
    c.submit(f"/encounters/{eid}", f"/encounters/{eid}/lines", {"system": "CPT", "code": "99213"})
    line_id = re.search(r'id="line-([0-9a-f-]{36})"', c.get(f"/encounters/{eid}").text).group(1)  # type: ignore[union-attr]
    who = {"/provider": provider, "/encounters/{encounter_id}/attest": provider}
    actor = next((u for prefix, u in who.items() if route.startswith(prefix)), coder)
    b = c if actor is coder else browser_for(provider)
    if route == "/signin":
        b = browser_for(None)
    url = route.format(encounter_id=eid, line_id=line_id, delegation_id=delegation)
    valid: dict[str, Any] = {
        "system": "CPT", "code": "99214", "modifiers": "", "units": "1", "diagnosis_pointers": "",
        "reason": "a fine reason", "version": "1", "password": "x", "digest": "0" * 64,
        "coder_id": coder.id, "valid_until": (date.today() + timedelta(days=5)).isoformat(),
        "code_systems": ["CPT"], "username": "nobody", "current_password": "wrong",
        "new_password": "n" * 20, "new_password_again": "n" * 20,
    }  # fmt: skip
    before = _counts(connection)
    for name, values in FORMS[route].items():
        for value in values:
            data = {**valid, name: value}
            if name == "new_password":
                data["new_password_again"] = value
            response = b.submit("/", url, data)
            assert 400 <= response.status_code < 500, (route, name, value[:40], response.status_code)
            assert response.headers["content-type"].startswith("text/html")
            assert "Traceback" not in response.text
    assert _counts(connection) == before
    _verify_ledger(connection)
