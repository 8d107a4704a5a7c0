"""Hostile values in every compliance, auditor and admin form: a 4xx page (never a 500), nothing stored,
and the ledger still verifies. `test_hostile_forms.test_every_form_has_a_row` requires a row here for
each of these routes."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.models import EncounterNote, Engagement, User
from tests.conftest import People
from tests.report.scenario import API, Org, ago, build
from tests.test_hostile_input import _verify_ledger

CONTROL = ["\x00", "a\x1fb", "x\u202ey", "\x7f"]
LONG = "x" * 5000
REASONS = ["", "ab", *CONTROL, LONG]

OVERSIGHT_FORMS: dict[str, dict[str, list[str]]] = {
    "/compliance/verify": {},
    "/compliance/encounters/{encounter_id}/flags": {"text": REASONS},
    "/compliance/encounters/{encounter_id}/annotations": {"text": REASONS},
    "/compliance/flags/{flag_id}/resolve": {"reason": REASONS},
    "/compliance/engagements": {
        "auditor_id": ["", "not-a-user", LONG, *CONTROL],
        "date_from": ["yesterday", "2026-02-30", LONG, ""],
        "date_to": ["2001-01-01", "x", LONG],
        "expires_on": ["2001-01-01", "tomorrow", LONG],
        "purpose": [*CONTROL, LONG],
        "provider_ids": [LONG],
    },
    "/compliance/engagements/{engagement_id}/revoke": {"reason": REASONS},
    "/auditor/engagements/{engagement_id}/bundle": {},
    "/auditor/engagements/{engagement_id}/sample": {
        "n": ["-1", "0", "10001", "abc", "1e3", ""],
        "seed": ["-1", "abc", "99999999999999999999999", ""],
    },
    "/admin/users": {
        "username": ["", LONG, *CONTROL],
        "display_name": [LONG, *CONTROL],
        "password": ["short", LONG],
        "roles": ["nope", LONG],
        "credential": [LONG, *CONTROL],
    },
    "/admin/users/{user_id}/active": {"active": ["maybe", ""], "reason": REASONS},
    "/admin/users/{user_id}/unlock": {"reason": REASONS},
    "/admin/users/{user_id}/password": {"new_password": ["short", LONG]},
    "/admin/users/{user_id}/roles": {"roles": ["nope", LONG], "reason": REASONS},
}


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def _counts(connection: Connection) -> tuple[int, ...]:
    tables = (EncounterNote.__table__, Engagement.__table__, User.__table__)  # type: ignore[attr-defined]
    return tuple(connection.execute(select(func.count()).select_from(t)).scalar_one() for t in tables)


@pytest.mark.parametrize("route", sorted(r for r, fields in OVERSIGHT_FORMS.items() if fields))
def test_hostile_values_are_refused_and_nothing_is_stored(
    route: str, org: Org, people: People, browser_for: Any, connection: Connection
) -> None:
    r = org.client.post(f"{API}/encounters/{org.encounters['E1']}/flags", json={"text": "look at this"},
                        headers=org.headers["C"])  # fmt: skip
    flag_id = r.json()["id"]
    body = {"auditor_id": org.users["A"].id, "date_from": ago(30), "date_to": ago(0),
            "expires_at": "2099-01-01T00:00:00Z"}  # fmt: skip
    engagement_id = org.client.post(f"{API}/engagements", json=body, headers=org.headers["C"]).json()["id"]
    admin = people.make("admin", name="Ada Admin")
    area = route.split("/")[1]
    actor = {"compliance": org.users["C"], "auditor": org.users["A"], "admin": admin}[area]
    b = browser_for(actor)
    url = route.format(encounter_id=org.encounters["E1"], flag_id=flag_id, engagement_id=engagement_id,
                       user_id=org.users["K1"].id)  # fmt: skip
    valid: dict[str, Any] = {
        "text": "a fine note", "reason": "a fine reason", "auditor_id": org.users["A"].id,
        "date_from": ago(30), "date_to": ago(0), "expires_on": (date.today() + timedelta(days=9)).isoformat(),
        "purpose": "review", "provider_ids": [], "n": "2", "seed": "1", "username": "fresh.user",
        "display_name": "Fresh User", "password": "a long enough password", "roles": ["coder"],
        "credential": "", "active": "no", "new_password": "another long password",
    }  # fmt: skip
    before = _counts(connection)
    for name, values in OVERSIGHT_FORMS[route].items():
        for value in values:
            response = b.submit("/", url, {**valid, name: value})
            assert 400 <= response.status_code < 500, (route, name, value[:40], response.status_code)
            assert response.headers["content-type"].startswith("text/html")
            assert "Traceback" not in response.text
    assert _counts(connection) == before
    _verify_ledger(connection)
