"""Compliance opens and revokes auditor engagements; auditors act only inside a live one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.models import Engagement
from audit.uow import unit_of_work
from tests.conftest import People
from tests.report.scenario import API, Org, ago, build


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def open_engagement(org: Org, expect: int = 201, **over: Any) -> Any:
    body = {
        "auditor_id": org.users["A"].id,
        "date_from": ago(30),
        "date_to": ago(0),
        "provider_ids": [org.users["P1"].id],
        "expires_at": tomorrow(),
        "purpose": "2026 Q4 review",
        **over,
    }
    r = org.client.post(f"{API}/engagements", json=body, headers=org.headers["C"])
    assert r.status_code == expect, r.text
    return r.json()


def events(connection: Connection, type_: str, outcome: str = "allowed") -> int:
    stmt = select(func.count()).where(LEDGER.c.type == type_, LEDGER.c.outcome == outcome)
    return int(connection.execute(stmt).scalar_one())


def test_open_list_revoke_with_events(org: Org, connection: Connection) -> None:
    opened = open_engagement(org)
    assert opened["live"] is True and opened["provider_ids"] == [org.users["P1"].id]
    assert events(connection, "engagement.open") == 1
    mine = org.client.get(f"{API}/engagements", headers=org.headers["A"]).json()
    assert [e["id"] for e in mine] == [opened["id"]]
    assert len(org.client.get(f"{API}/engagements", headers=org.headers["C"]).json()) == 1
    assert org.client.get(f"{API}/engagements", headers=org.headers["K1"]).status_code == 403
    revoked = org.client.post(
        f"{API}/engagements/{opened['id']}/revoke", json={"reason": "review closed"}, headers=org.headers["C"]
    )
    assert revoked.status_code == 200 and revoked.json()["live"] is False
    assert events(connection, "engagement.revoke") == 1
    again = org.client.post(
        f"{API}/engagements/{opened['id']}/revoke", json={"reason": "twice"}, headers=org.headers["C"]
    )
    assert again.status_code == 409


def test_bad_input_names_the_field(org: Org) -> None:
    assert open_engagement(org, 422, auditor_id=org.users["K1"].id)["field"] == "auditor_id"
    assert open_engagement(org, 422, date_from=ago(0), date_to=ago(5))["field"] == "date_to"
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    assert open_engagement(org, 422, expires_at=past)["field"] == "expires_at"
    assert open_engagement(org, 422, provider_ids=[org.users["K2"].id])["field"] == "provider_ids[0]"


def test_only_compliance_opens(org: Org, connection: Connection) -> None:
    body = {
        "auditor_id": org.users["A"].id,
        "date_from": ago(30),
        "date_to": ago(0),
        "expires_at": tomorrow(),
    }
    r = org.client.post(f"{API}/engagements", json=body, headers=org.headers["A"])
    assert r.status_code == 403
    assert events(connection, "engagement.open", "denied") == 1


def test_auditor_inside_engagement_sees_only_its_scope(org: Org, connection: Connection) -> None:
    open_engagement(org)
    body = org.report("A", "provider-responsibility").json()
    assert body["filters"]["from"] == ago(30) and body["filters"]["provider_ids"] == [org.users["P1"].id]
    assert [(r["provider"], r["encounters"]) for r in body["rows"]] == [("Dr Ada Okafor", 2)]
    narrower = org.report("A", "unattested-aging", **{"from": ago(14), "to": ago(1)}).json()
    assert narrower["rows"][0]["total"] == 2
    inside = org.client.get(f"{API}/encounters/{org.encounters['E1']}", headers=org.headers["A"])
    assert inside.status_code == 200, inside.text
    timeline = org.report("A", "encounter-timeline", encounter_id=org.encounters["E1"]).json()
    assert len(timeline["rows"]) == 5
    assert events(connection, "report.view") == 3


def test_auditor_outside_engagement_is_denied_and_recorded(org: Org, connection: Connection) -> None:
    open_engagement(org)
    outside_dates = org.report("A", "provider-responsibility", 403, **{"from": ago(60), "to": ago(0)})
    assert outside_dates.json()["rule_ids"] == ["default.deny"]
    org.report("A", "provider-responsibility", 403, provider_id=org.users["P2"].id)
    org.report("A", "encounter-timeline", 403, encounter_id=org.encounters["E4"])
    assert (
        org.client.get(f"{API}/encounters/{org.encounters['E4']}", headers=org.headers["A"]).status_code
        == 403
    )
    assert events(connection, "report.view", "denied") == 3
    assert events(connection, "report.view") == 0


def test_revoked_or_expired_engagement_denies(org: Org, connection: Connection) -> None:
    opened = open_engagement(org)
    org.client.post(
        f"{API}/engagements/{opened['id']}/revoke", json={"reason": "done"}, headers=org.headers["C"]
    )
    org.report("A", "provider-responsibility", 403)
    with unit_of_work(connection) as s:
        s.add(
            Engagement(
                auditor_id=org.users["A"].id,
                date_from=datetime.now(UTC).date() - timedelta(days=30),
                date_to=datetime.now(UTC).date(),
                provider_ids=[],
                opened_by=org.users["C"].id,
                expires_at=datetime.now(UTC) - timedelta(minutes=1),
            )
        )
    org.report("A", "provider-responsibility", 403)
    assert events(connection, "report.view", "denied") == 2


def test_provider_sees_only_their_own_report(org: Org) -> None:
    own = org.report("P1", "provider-responsibility", provider_id=org.users["P1"].id).json()
    assert [r["provider"] for r in own["rows"]] == ["Dr Ada Okafor"]
    unnamed = org.report("P1", "provider-responsibility").json()  # no provider_id: their own
    assert unnamed["rows"] == own["rows"] and unnamed["filters"]["provider_ids"] == [org.users["P1"].id]
    org.report("P1", "provider-responsibility", 403, provider_id=org.users["P2"].id)
    org.report("K1", "coder-activity", 403)


def test_every_view_is_an_event(org: Org, connection: Connection) -> None:
    import json

    org.report("C", "coder-activity", format="csv", **{"from": ago(30)})
    row = connection.execute(
        select(LEDGER.c.payload).where(LEDGER.c.type == "report.view").order_by(LEDGER.c.seq.desc())
    ).first()
    assert row is not None
    detail = json.loads(bytes(row[0]))["detail"]
    assert detail == {
        "name": "coder-activity",
        "format": "csv",
        "row_count": 2,
        "filters": {"from": ago(30), "to": None, "provider_ids": None, "encounter_id": None},
    }
    assert org.report("C", "no-such-report", 404).json()["error"] == "NotFound"
