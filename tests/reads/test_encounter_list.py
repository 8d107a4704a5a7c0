"""The encounter list without scans: keyset pages that give every row once, a capped total, and the
supervising-provider association table kept in step with the encounter by every path that writes it."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from audit.db import make_engine
from audit.encounter import service
from audit.migrate import downgrade, upgrade
from audit.models import EncounterSupervisor
from tests.conftest import People

API = "/api/v1/encounters"


def make(client: TestClient, headers: dict[str, str], provider: str, n: int, **extra: Any) -> str:
    body = {
        "external_id": f"KS-{n:03d}",
        "patient_ref": f"MRN-{n}",
        "date_of_service": f"2026-10-{1 + n % 4:02d}",  # many rows share a date: ties break by id
        "rendering_provider_id": provider,
        **extra,
    }
    response = client.post(API, json=body, headers=headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def org(client: TestClient, people: People) -> dict[str, Any]:
    provider = people.make("provider")
    supervisor = people.make("provider")
    coder = people.make("coder")
    people.delegate(provider, coder)
    hc = people.headers(coder)
    ids = [make(client, hc, provider.id, n) for n in range(13)]
    supervised = make(client, hc, provider.id, 99, supervising_provider_ids=[supervisor.id])
    return {
        "ids": [*ids, supervised],
        "supervised": supervised,
        "supervisor": people.headers(supervisor),
        "coder": hc,
        "compliance": people.headers(people.make("compliance")),
    }


def test_cursor_pages_give_every_row_once_in_the_offset_order(
    client: TestClient, org: dict[str, Any]
) -> None:
    headers = org["compliance"]
    by_offset = [
        e["id"]
        for offset in range(0, 14, 4)
        for e in client.get(API, params={"limit": 4, "offset": offset}, headers=headers).json()["items"]
    ]
    by_cursor: list[str] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        page = client.get(API, params=params, headers=headers).json()
        by_cursor += [e["id"] for e in page["items"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert sorted(by_cursor) == sorted(org["ids"]) and len(by_cursor) == len(set(by_cursor))
    assert by_cursor == by_offset
    dates = [(e["date_of_service"], e["id"]) for e in client.get(API, headers=headers).json()["items"]]
    assert dates == sorted(dates, key=lambda d: (-int(d[0].replace("-", "")), d[1]))


def test_a_page_carries_its_lines_and_attestation(client: TestClient, org: dict[str, Any]) -> None:
    one = org["ids"][0]
    assert client.post(
        f"{API}/{one}/codes", json={"system": "CPT", "code": "99213"}, headers=org["compliance"]
    )
    listed = {
        e["id"]: e for e in client.get(API, params={"limit": 50}, headers=org["compliance"]).json()["items"]
    }
    single = client.get(f"{API}/{one}", headers=org["compliance"]).json()
    assert listed[one]["codes"] == single["codes"] and listed[one]["attestation"] == single["attestation"]


def test_the_total_is_counted_up_to_the_cap(
    client: TestClient, org: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    exact = client.get(API, headers=org["compliance"]).json()
    assert exact["total"] == len(org["ids"]) and exact["total_capped"] is False
    monkeypatch.setattr(service, "TOTAL_CAP", 10)
    capped = client.get(API, headers=org["compliance"]).json()
    assert capped["total"] == 10 and capped["total_capped"] is True
    monkeypatch.setattr(service, "TOTAL_CAP", len(org["ids"]))
    at_cap = client.get(API, headers=org["compliance"]).json()
    assert at_cap["total"] == len(org["ids"]) and at_cap["total_capped"] is False


def test_bad_cursors_are_422_naming_the_field(client: TestClient, org: dict[str, Any]) -> None:
    first = client.get(API, params={"limit": 2}, headers=org["compliance"]).json()
    both = client.get(API, params={"cursor": first["next_cursor"], "offset": 2}, headers=org["compliance"])
    assert both.status_code == 422 and both.json()["field"] == "cursor"
    junk = client.get(API, params={"cursor": "not-a-cursor!"}, headers=org["compliance"])
    assert junk.status_code == 422 and junk.json()["field"] == "cursor"


def test_a_supervisor_lists_what_they_supervise_through_the_association(
    client: TestClient, connection: Connection, org: dict[str, Any]
) -> None:
    listed = client.get(API, headers=org["supervisor"]).json()
    assert [e["id"] for e in listed["items"]] == [org["supervised"]] and listed["total"] == 1
    table = EncounterSupervisor.__table__  # type: ignore[attr-defined]
    rows = connection.execute(select(table.c.encounter_id).where(table.c.encounter_id.in_(org["ids"])))
    assert [r[0] for r in rows] == [org["supervised"]]


SUPERVISED_ROW = (
    "INSERT INTO encounter (id, source, external_id, patient_ref, date_of_service, rendering_provider_id, "
    "supervising_provider_ids, status, created_by, created_at) VALUES (:id, 'raw', :id, 'MRN-1', "
    "'2026-01-02', 'u1', :sup, 'open', 'u1', '2026-01-02 00:00:00')"
)
USER_ROW = (
    "INSERT INTO app_user (id, username, display_name, password_hash, roles, credential_active, is_active, "
    "failed_signings, created_at) VALUES (:id, :id, :id, 'x', '[\"provider\"]', true, true, 0, "
    "'2026-01-01 00:00:00')"
)


def _pairs(conn: Connection) -> set[tuple[str, str]]:
    rows = conn.execute(text("SELECT provider_id, encounter_id FROM encounter_supervisor"))
    return {(str(p), str(e)) for p, e in rows}


def test_the_migration_backfills_and_triggers_keep_every_raw_write_in_step(fresh_db_url: str) -> None:
    """From the previous head with data: the upgrade backfills; afterwards any INSERT or change of the
    column (an import, a loader, a hand repair) moves the association with it; down and up again."""
    upgrade(fresh_db_url, "0009_merkle_frontier")
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        for uid in ("u1", "u2", "u3"):
            conn.execute(text(USER_ROW), {"id": uid})
        conn.execute(text(SUPERVISED_ROW), {"id": "e1", "sup": '["u2", "u3"]'})
        conn.execute(text(SUPERVISED_ROW), {"id": "e2", "sup": "[]"})
    engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        assert _pairs(conn) == {("u2", "e1"), ("u3", "e1")}
        conn.execute(text(SUPERVISED_ROW), {"id": "e3", "sup": '["u2"]'})
        conn.execute(text("UPDATE encounter SET supervising_provider_ids = '[\"u3\"]' WHERE id = 'e1'"))
        assert _pairs(conn) == {("u3", "e1"), ("u2", "e3")}
    engine.dispose()
    downgrade(fresh_db_url, "0009_merkle_frontier")
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        assert _pairs(conn) == {("u3", "e1"), ("u2", "e3")}
    engine.dispose()
