"""Every write endpoint, called as every kind of user: no unexpected allow, and every deny is evidence.

Each attempt gets a fresh target (encounter, line or delegation) so an allowed call cannot change what
the next caller meets.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.delegation.service import revoke_delegation
from audit.ledger.service import LEDGER
from audit.models import Delegation, utcnow
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"
DOS = date.today() - timedelta(days=3)


@dataclass
class World:
    client: TestClient
    people: People
    connection: Connection
    users: dict[str, CurrentUser]
    headers: dict[str, dict[str, str]]

    def encounter(self, with_line: bool = True) -> tuple[str, str | None]:
        """A fresh encounter of `provider` (supervised by `supervisor`), coded by the delegated coder."""
        hc = self.headers["coder_delegated"]
        body = {
            "external_id": f"M-{uuid.uuid4().hex}",
            "patient_ref": "MRN-1",
            "date_of_service": DOS.isoformat(),
            "rendering_provider_id": self.users["provider"].id,
            "supervising_provider_ids": [self.users["supervisor"].id],
        }
        encounter = self.client.post(f"{API}/encounters", json=body, headers=hc)
        assert encounter.status_code == 201, encounter.text
        eid = encounter.json()["id"]
        if not with_line:
            return eid, None
        line = self.client.post(
            f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hc
        )
        assert line.status_code == 201, line.text
        return eid, line.json()["id"]


def _expired_delegation(world: World, coder: CurrentUser) -> None:
    with unit_of_work(world.connection) as s:
        s.add(
            Delegation(
                provider_id=world.users["provider"].id,
                coder_id=coder.id,
                code_systems=["CPT"],
                valid_from=utcnow() - timedelta(days=60),
                valid_until=utcnow() - timedelta(days=1),
                granted_by=world.users["provider"].id,
            )
        )


@pytest.fixture
def world(client: TestClient, people: People, connection: Connection) -> World:
    users = {
        "provider": people.make("provider"),
        "other_provider": people.make("provider"),
        "supervisor": people.make("provider"),
        "coder_delegated": people.make("coder"),
        "coder_none": people.make("coder"),
        "coder_expired": people.make("coder"),
        "coder_revoked": people.make("coder"),
        "coder_wrong_system": people.make("coder"),
        "coder_out_of_window": people.make("coder"),
        "coder_future": people.make("coder"),
        "compliance": people.make("compliance"),
        "auditor": people.make("auditor"),
        "admin": people.make("admin"),
        "integration": people.make("integration"),
        "admin_coder": people.make("admin", "coder"),
        "compliance_provider": people.make("compliance", "provider"),
    }
    p = users["provider"]
    people.delegate(p, users["coder_delegated"])
    people.delegate(p, users["admin_coder"])
    people.delegate(p, users["coder_wrong_system"], code_systems=["ICD-10-PCS"])
    people.delegate(p, users["coder_out_of_window"], dos_from=DOS + timedelta(days=1))
    people.delegate(p, users["coder_future"], valid_from=utcnow() + timedelta(days=2))
    revoked = people.delegate(p, users["coder_revoked"])
    with unit_of_work(connection) as s:
        revoke_delegation(s, user=users["compliance"], delegation_id=revoked, reason="left the practice")
    w = World(client, people, connection, users, {})
    _expired_delegation(w, users["coder_expired"])
    w.headers = {name: people.headers(u) for name, u in users.items()}
    return w


Call = Callable[[World, str], Any]


def create_encounter(w: World, who: str) -> Any:
    body = {
        "external_id": f"X-{who}",
        "patient_ref": "MRN-2",
        "date_of_service": DOS.isoformat(),
        "rendering_provider_id": w.users["provider"].id,
    }
    return w.client.post(f"{API}/encounters", json=body, headers=w.headers[who])


def add_code(w: World, who: str) -> Any:
    eid, _ = w.encounter(with_line=False)
    return w.client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99214"}, headers=w.headers[who]
    )


def change_code(w: World, who: str) -> Any:
    eid, line = w.encounter()
    return w.client.patch(
        f"{API}/encounters/{eid}/codes/{line}",
        json={"code": "99215", "reason": "matrix"},
        headers={**w.headers[who], "If-Match": '"1"'},
    )


def void_code(w: World, who: str) -> Any:
    eid, line = w.encounter()
    return w.client.post(
        f"{API}/encounters/{eid}/codes/{line}/void", json={"reason": "matrix"}, headers=w.headers[who]
    )


def attest(w: World, who: str) -> Any:
    eid, _ = w.encounter()
    return w.client.post(
        f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=w.headers[who]
    )


def flag(w: World, who: str) -> Any:
    eid, _ = w.encounter(with_line=False)
    return w.client.post(
        f"{API}/encounters/{eid}/flags", json={"text": "review E/M level"}, headers=w.headers[who]
    )


def annotate(w: World, who: str) -> Any:
    eid, _ = w.encounter(with_line=False)
    return w.client.post(
        f"{API}/encounters/{eid}/annotations", json={"text": "spoke to coder"}, headers=w.headers[who]
    )


def grant_delegation(w: World, who: str) -> Any:
    body = {
        "coder_id": w.users["coder_none"].id,
        "code_systems": ["CPT"],
        "provider_id": w.users["provider"].id,
        "valid_until": (utcnow() + timedelta(days=5)).isoformat(),
    }
    return w.client.post(f"{API}/delegations", json=body, headers=w.headers[who])


def revoke(w: World, who: str) -> Any:
    delegation = w.people.delegate(w.users["provider"], w.users["coder_none"])
    return w.client.post(
        f"{API}/delegations/{delegation}/revoke", json={"reason": "matrix"}, headers=w.headers[who]
    )


def create_user(w: World, who: str) -> Any:
    body = {
        "username": f"new.{who.replace('_', '')}",
        "password": "a long enough password",
        "display_name": "New",
        "roles": ["coder"],
    }
    return w.client.post(f"{API}/users", json=body, headers=w.headers[who])


DELEGATED = {"provider", "coder_delegated"}
ENDPOINTS: dict[str, tuple[Call, str, set[str]]] = {
    "create encounter": (create_encounter, "encounter.create", DELEGATED | {"coder_wrong_system"}),
    "add code": (add_code, "code.add", DELEGATED),
    "change code": (change_code, "code.change", DELEGATED),
    "void code": (void_code, "code.void", DELEGATED),
    "attest": (attest, "encounter.attest", {"provider", "supervisor"}),
    "flag": (flag, "encounter.flag", {"compliance", "compliance_provider"}),
    "annotate": (annotate, "encounter.annotate", {"compliance", "compliance_provider"}),
    "grant delegation": (grant_delegation, "delegation.grant", {"provider"}),
    "revoke delegation": (revoke, "delegation.revoke", {"provider", "compliance", "compliance_provider"}),
    "create user": (create_user, "user.create", {"admin", "admin_coder"}),
}


def _denied_events(connection: Connection, actor_id: str, action: str) -> int:
    return int(
        connection.execute(
            select(func.count())
            .select_from(LEDGER)
            .where(LEDGER.c.actor_id == actor_id, LEDGER.c.type == action, LEDGER.c.outcome == "denied")
        ).scalar_one()
    )


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_every_role_against_every_write_endpoint(world: World, endpoint: str) -> None:
    call, action, allowed = ENDPOINTS[endpoint]
    unexpected = []
    for who, user in world.users.items():
        before = _denied_events(world.connection, user.id, action)
        response = call(world, who)
        ok = response.status_code in (200, 201)
        if ok != (who in allowed):
            unexpected.append(f"{who}: {response.status_code} {response.text[:200]}")
            continue
        if not ok:
            assert response.status_code in (403, 423), f"{who}: {response.status_code} {response.text}"
            body = response.json()
            assert body["rule_ids"], body
            after = _denied_events(world.connection, user.id, action)
            assert after == before + 1, f"{who} was refused {action} but no denied event was recorded"
            event = json.loads(
                bytes(
                    world.connection.execute(
                        select(LEDGER.c.payload)
                        .where(
                            LEDGER.c.actor_id == user.id,
                            LEDGER.c.type == action,
                            LEDGER.c.outcome == "denied",
                        )
                        .order_by(LEDGER.c.seq.desc())
                    ).first()[0]
                )
            )  # type: ignore[index]
            assert event["policy"]["rule_ids"] == body["rule_ids"]
            assert event["policy"]["version"]
            if response.status_code == 403:  # which condition failed, in words, in the answer and the event
                assert body["explanation"] and body["detail"].endswith(body["explanation"]), body
                assert event["detail"]["explanation"] == body["explanation"]
                assert "requires" not in body["explanation"], body  # a phrase, not the Cedar fallback
                print(f"{endpoint} / {who}: {body['explanation']}")
    assert not unexpected, "\n".join(unexpected)
