"""Every coding-audit endpoint, called as every kind of user: no unexpected allow, and every refusal is
a `denied` event with the deciding rules and an explanation in words. Each attempt gets a fresh
target (audit, finding, dispute), so an allowed call cannot change what the next caller meets."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from tests.coding_audit.world import World, ago, build
from tests.conftest import People
from tests.support import PASSWORD


@pytest.fixture
def world(client: TestClient, people: People) -> World:
    w = build(client, people)
    w.user("A2", "auditor")  # no engagement
    w.user("A3", "auditor")  # engaged, but this is not their audit
    people.engage(w.users["A3"], w.users["C"], date_from=ago(60), date_to=ago(0))
    w.user("ADM", "admin")
    # people whose own coding is in the sample: an auditor who is also a provider of record, and a
    # compliance officer who is too
    w.user("AP", "auditor", "provider")
    people.engage(w.users["AP"], w.users["C"], date_from=ago(60), date_to=ago(0))
    w.user("CP", "compliance", "provider")
    for key in ("AP", "CP"):
        people.delegate(w.users[key], w.users["K1"])
        w.encounter(key, "K1", 7, "99214")
    return w


def sampled_audit(w: World, auditor: str = "A") -> str:
    aid = str(w.open_audit(auditor).json()["id"])
    w.call("POST", f"/audits/{aid}/sample", auditor, 200)
    return aid


def audit_with_finding(w: World, provider: str = "P1") -> tuple[str, str]:
    """A sampled audit of A's with one upcoding finding on an encounter of `provider`."""
    aid = sampled_audit(w)
    body = {"revised": {"code": "99213"}, "category": "upcoded"}
    return aid, str(w.finding(aid, "A", w.encounters[provider][-1], "disagree", **body).json()["id"])


def disputed(w: World, provider: str = "P1") -> str:
    _, fid = audit_with_finding(w, provider)
    w.call("POST", f"/findings/{fid}/responses", provider, 201, json={"response": "dispute", "comment": "x"})
    return fid


def open_audit(w: World, who: str) -> Any:
    return w.open_audit(who, None)


def draw(w: World, who: str) -> Any:
    aid = w.open_audit().json()["id"]
    return w.call("POST", f"/audits/{aid}/sample", who)


def read(w: World, who: str) -> Any:
    return w.call("GET", f"/audits/{sampled_audit(w)}", who)


def scores(w: World, who: str) -> Any:
    return w.call("GET", f"/audits/{sampled_audit(w)}/scores", who)


def record(w: World, who: str) -> Any:
    aid = sampled_audit(w)
    return w.finding(aid, who, w.encounters["P1"][0], "agree", None)


def record_own(w: World, who: str) -> Any:
    """AP's own audit, and a finding on AP's own encounter: AP may not judge it."""
    aid = sampled_audit(w, "AP")
    return w.finding(aid, who, w.encounters["AP"][0], "agree", None)


def respond(w: World, who: str) -> Any:
    _, fid = audit_with_finding(w)
    return w.call("POST", f"/findings/{fid}/responses", who, json={"response": "dispute", "comment": "x"})


def decide(w: World, who: str) -> Any:
    body = {"decision": "upheld", "comment": "ok"}
    return w.call("POST", f"/findings/{disputed(w)}/decision", who, json=body)


def decide_own(w: World, who: str) -> Any:
    body = {"decision": "upheld", "comment": "ok"}
    return w.call("POST", f"/findings/{disputed(w, 'CP')}/decision", who, json=body)


def sign(w: World, who: str) -> Any:
    aid, _ = audit_with_finding(w)
    return w.call("POST", f"/audits/{aid}/signature", who, json={"password": PASSWORD})


Call = Callable[[World, str], Any]
PARTIES = {"P1", "P2", "K1", "K2", "AP", "CP"}
OWN_CODING = "coding_audits.no_review_of_own_coding"
ENDPOINTS: dict[str, tuple[Call, str, set[str]]] = {
    "open audit": (open_audit, "coding_audit.open", {"C", "A", "A3", "AP", "CP"}),
    "draw sample": (draw, "coding_audit.sample", {"C", "A", "CP"}),
    "read audit": (read, "coding_audit.read", {"C", "A"} | PARTIES),
    "read scores": (scores, "coding_audit.read", {"C", "A"} | PARTIES),
    "record finding": (record, "coding_audit.record_finding", {"C", "A", "CP"}),
    "record finding on own coding": (record_own, "coding_audit.record_finding", {"C", "CP"}),
    "respond": (respond, "coding_audit.respond", {"P1", "K1"}),
    "decide": (decide, "coding_audit.decide", {"C", "CP"}),
    "decide on own coding": (decide_own, "coding_audit.decide", {"C"}),
    "sign": (sign, "coding_audit.sign", {"A"}),
}
# Who is refused by the rule that no one judges their own coding (not merely by lacking a permit).
REFUSED_AS_OWN = {"record finding on own coding": "AP", "decide on own coding": "CP"}


def _denied(connection: Connection, actor_id: str, action: str) -> int:
    stmt = (
        select(func.count())
        .select_from(LEDGER)
        .where(LEDGER.c.actor_id == actor_id, LEDGER.c.type == action, LEDGER.c.outcome == "denied")
    )
    return int(connection.execute(stmt).scalar_one())


def _last_denied(connection: Connection, actor_id: str, action: str) -> dict[str, Any]:
    row = connection.execute(
        select(LEDGER.c.payload)
        .where(LEDGER.c.actor_id == actor_id, LEDGER.c.type == action, LEDGER.c.outcome == "denied")
        .order_by(LEDGER.c.seq.desc())
    ).first()
    assert row is not None
    return dict(json.loads(bytes(row[0])))


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_role_against_every_audit_endpoint(world: World, connection: Connection, endpoint: str) -> None:
    call, action, allowed = ENDPOINTS[endpoint]
    unexpected = []
    for who in ("C", "A", "A2", "A3", "P1", "P2", "K1", "K2", "ADM", "AP", "CP"):
        user = world.users[who]
        before = _denied(connection, user.id, action)
        response = call(world, who)
        ok = response.status_code in (200, 201)
        if ok != (who in allowed):
            unexpected.append(f"{who}: {response.status_code} {response.text[:300]}")
            continue
        if ok:
            continue
        assert response.status_code == 403, f"{who}: {response.status_code} {response.text}"
        body = response.json()
        assert body["rule_ids"], body
        assert _denied(connection, user.id, action) == before + 1, f"{who}: no denied event for {action}"
        event = _last_denied(connection, user.id, action)
        assert event["policy"]["rule_ids"] == body["rule_ids"] and event["policy"]["version"]
        assert body["explanation"] and "requires" not in body["explanation"], body
        assert event["detail"]["explanation"] == body["explanation"]
        if REFUSED_AS_OWN.get(endpoint) == who:
            assert body["rule_ids"] == [OWN_CODING], body
        print(f"{endpoint} / {who}: {body['explanation']}")
    assert not unexpected, "\n".join(unexpected)
