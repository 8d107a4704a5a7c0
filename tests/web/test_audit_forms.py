"""Hostile values in every coding-audit form: a 4xx page (never a 500), nothing stored, and the ledger
still verifies. `test_hostile_forms.test_every_form_has_a_row` requires a row here for each route."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.coding_audit.models import AuditFinding, AuditSignature, CodingAudit, FindingResponse
from tests.coding_audit.world import ago, build
from tests.conftest import People
from tests.test_hostile_input import _verify_ledger

CONTROL = ["\x00", "a\x1fb", "x\u202ey", "\x7f"]
LONG = "x" * 5000
TEXT = ["", *CONTROL, LONG]
INTS = ["-1", "0", "10000", "1e3", "\uff11\uff12", "abc"]

AUDIT_FORMS: dict[str, dict[str, list[str]]] = {
    "/audits/{audit_id}/findings": {
        "encounter_id": ["", "not-an-encounter", LONG, *CONTROL],
        "line_id": ["not-a-line", LONG],
        "verdict": ["", "maybe", LONG],
        "code": [LONG, *CONTROL, "99213; drop table code_line"],
        "units": INTS,
        "category": ["sloppy", LONG],
        "rationale": TEXT,
    },
    "/findings/{finding_id}/responses": {"response": ["", "maybe", LONG], "comment": TEXT},
    "/findings/{finding_id}/decision": {"decision": ["", "maybe", LONG], "comment": TEXT},
    "/audits/{audit_id}/signature": {"password": ["", LONG]},
    "/audits": {
        "name": TEXT,
        "date_from": ["", "2026-02-30", "yesterday", LONG, *CONTROL],
        "date_to": ["", "2026-13-01", LONG, "2000-01-01"],
        "provider_ids": ["not-a-user", LONG, *CONTROL],
        "code_systems": ["NOPE", LONG, *CONTROL],
        "em_only": [LONG],
        "method": ["", "census", LONG, *CONTROL],
        "n": ["", "-1", "0", "10001", "1e3", "\uff11\uff12", "abc"],
        "strata": ["income", LONG, "provider"],
        "seed": ["", "-1", "1e3", "\uff11", "99999999999999999999", LONG],
    },
    "/audits/{audit_id}/sample": {},  # no fields: the sample is drawn once (see test_audit_list.py)
}
ACTORS = {"/audits/{audit_id}/findings": "A", "/findings/{finding_id}/responses": "P1",
          "/findings/{finding_id}/decision": "C", "/audits/{audit_id}/signature": "A",
          "/audits": "A", "/audits/{audit_id}/sample": "A"}  # fmt: skip


def _counts(connection: Connection) -> tuple[int, ...]:
    tables = [m.__table__ for m in (AuditFinding, FindingResponse, AuditSignature, CodingAudit)]  # type: ignore[attr-defined]
    return tuple(connection.execute(select(func.count()).select_from(t)).scalar_one() for t in tables)


@pytest.mark.parametrize("route", sorted(AUDIT_FORMS))
def test_hostile_values_are_refused_and_nothing_is_stored(
    route: str, client: TestClient, people: People, browser_for: Any, connection: Connection
) -> None:
    w = build(client, people)
    aid = w.open_audit().json()["id"]
    w.call("POST", f"/audits/{aid}/sample", "A", 200)
    eid = w.encounters["P1"][0]
    fid = w.finding(aid, "A", eid, "disagree", revised={"code": "99212"}, category="upcoded").json()["id"]
    w.call("POST", f"/findings/{fid}/responses", "P1", 201, json={"response": "dispute", "comment": "no"})
    b = browser_for(w.users[ACTORS[route]])
    url = route.format(audit_id=aid, finding_id=fid)
    valid: dict[str, Any] = {
        "encounter_id": eid, "line_id": w.lines[eid], "verdict": "disagree", "code": "99213", "units": "1",
        "category": "upcoded", "rationale": "a fine rationale", "response": "dispute", "comment": "fine",
        "decision": "upheld", "password": "x", "name": "Q4 probe", "date_from": ago(30), "date_to": ago(0),
        "method": "probe", "n": "5", "seed": "7", "strata": "",
    }  # fmt: skip
    before = _counts(connection)
    for name, values in AUDIT_FORMS[route].items():
        for value in values:
            response = b.submit(f"/audits/{aid}", url, {**valid, name: value})
            assert 400 <= response.status_code < 500, (route, name, value[:40], response.status_code)
            assert response.headers["content-type"].startswith("text/html")
            assert "Traceback" not in response.text
    assert _counts(connection) == before
    _verify_ledger(connection)
