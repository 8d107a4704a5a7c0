"""GET /api/v1/audit/events: the ledger in the reader's scope, keyset-paged, every read recorded."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from tests.conftest import People
from tests.engagement.test_engagements_api import open_engagement
from tests.report.scenario import API, Org, ago, build

EVENTS = f"{API}/audit/events"


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def walk(org: Org, who: str, **params: Any) -> list[dict[str, Any]]:
    """Every page, following next_after, as `who`."""
    items: list[dict[str, Any]] = []
    after = -1
    while True:
        r = org.client.get(EVENTS, params={**params, "after": after}, headers=org.headers[who])
        assert r.status_code == 200, r.text
        body = r.json()
        items += body["items"]
        if body["next_after"] is None:
            return items
        assert body["next_after"] == body["items"][-1]["seq"]
        after = body["next_after"]


def stored(connection: Connection) -> dict[int, bytes]:
    rows = connection.execute(select(LEDGER.c.seq, LEDGER.c.payload).order_by(LEDGER.c.seq))
    return {int(s): bytes(p) for s, p in rows}


def test_compliance_pages_through_every_event(org: Org, connection: Connection) -> None:
    before = stored(connection)
    items = walk(org, "C", limit=7)
    seqs = [i["seq"] for i in items]
    assert seqs[: len(before)] == sorted(before)  # then the reads of the walk itself, as they happened
    assert seqs == list(range(len(seqs))) and {i["event"]["type"] for i in items[len(before) :]} <= {
        "audit.read_events"
    }
    after = stored(connection)
    for item in items:  # the decoded payload and the leaf hash of the exact stored bytes
        raw = after[item["seq"]]
        assert item["event"] == json.loads(raw) and item["event"]["seq"] == item["seq"]
        assert item["leaf_hash"] == hashlib.sha256(b"\x00" + raw).hexdigest()
    reads = [
        json.loads(p) for p in stored(connection).values() if json.loads(p)["type"] == "audit.read_events"
    ]
    assert len(reads) == -(-len(items) // 7)  # one per page
    assert reads[0]["detail"]["query"] == {"after": -1, "limit": 7} and reads[0]["detail"]["returned"] == 7


def test_filters_narrow(org: Org) -> None:
    e1 = org.encounters["E1"]
    on_e1 = walk(org, "C", encounter=e1)
    assert on_e1 and {i["event"]["encounter_id"] for i in on_e1} == {e1}
    denied = walk(org, "C", outcome="denied")
    assert denied and {i["event"]["outcome"] for i in denied} == {"denied"}
    changes = walk(org, "C", type=["code.change", "encounter.attest"])
    assert {i["event"]["type"] for i in changes} == {"code.change", "encounter.attest"}
    k1 = walk(org, "C", actor=org.users["K1"].id)
    assert k1 and {i["event"]["actor"]["id"] for i in k1} == {org.users["K1"].id}
    p2 = walk(org, "C", provider=org.users["P2"].id, type="code.add")
    assert {i["event"]["encounter_id"] for i in p2} == {org.encounters["E4"], org.encounters["E5"]}
    dos = walk(org, "C", dos_from=ago(15), dos_to=ago(0), type="encounter.create")
    assert {i["event"]["encounter_id"] for i in dos} == {org.encounters[k] for k in ("E1", "E3")}
    assert walk(org, "C", to=ago(1)) == []  # nothing was recorded before yesterday
    assert len(walk(org, "C", **{"from": ago(0), "to": ago(0)})) > 0  # a date is its whole day


def test_auditor_sees_only_the_engagement(org: Org) -> None:
    engagement = open_engagement(org)  # P1, dates of service within the last 30 days: E1 and E3
    items = walk(org, "A")
    on = {i["event"]["encounter_id"] for i in items if i["event"]["encounter_id"]}
    assert on == {org.encounters["E1"], org.encounters["E3"]}
    others = [i["event"] for i in items if not i["event"]["encounter_id"]]
    assert others and {(e["type"], e["provider_id"]) for e in others} == {
        ("delegation.grant", org.users["P1"].id)
    }
    page = org.client.get(EVENTS, params={"limit": 1}, headers=org.headers["A"]).json()
    assert page["scope"]["provider_ids"] == [org.users["P1"].id] and page["scope"]["from"] == ago(30)
    reads = walk(org, "C", type="audit.read_events", actor=org.users["A"].id)
    assert reads and all(r["event"]["detail"]["engagement_id"] == engagement["id"] for r in reads)
    for params in (
        {"provider": org.users["P2"].id},
        {"encounter": org.encounters["E4"]},
        {"dos_from": ago(60)},
    ):
        refused = org.client.get(EVENTS, params=params, headers=org.headers["A"])
        assert refused.status_code == 403, (params, refused.text)


@pytest.mark.parametrize("who", ["P1", "K1"])
def test_providers_and_coders_are_refused_and_it_is_recorded(org: Org, who: str) -> None:
    assert org.client.get(EVENTS, headers=org.headers[who]).status_code == 403
    denied = walk(org, "C", type="audit.read_events", outcome="denied")
    assert [d["event"]["actor"]["id"] for d in denied] == [org.users[who].id]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 501}, "limit"),
        ({"after": -2}, "after"),
        ({"after": 2**63}, "after"),
        ({"outcome": "maybe"}, "outcome"),
        ({"type": "DROP TABLE"}, "type"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-02-30"}, "to"),
        ({"from": "0001-01-01T00:00:00+05:00"}, "from"),
        ({"from": "2026-02-01", "to": "2026-01-01"}, "to"),
        ({"dos_from": "2026-02-01", "dos_to": "2026-01-01"}, "dos_to"),
        ({"encounter": "x" * 65}, "encounter"),
        ({"actor": "a b"}, "actor"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(org: Org, params: dict[str, Any], field: str) -> None:
    r = org.client.get(EVENTS, params=params, headers=org.headers["C"])
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field


def test_the_widest_dates_do_not_break(org: Org) -> None:
    for params in (
        {"from": "0001-01-01", "to": "9999-12-31"},
        {"dos_from": "0001-01-01", "dos_to": "9999-12-31"},
    ):
        assert org.client.get(EVENTS, params=params, headers=org.headers["C"]).status_code == 200
