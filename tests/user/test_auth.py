"""Sign-in, tokens, sign-out and user administration; failures are audit events (back-off:
tests/user/test_signin_backoff.py)."""

from __future__ import annotations

import hashlib
import json

from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.policy.runtime import get_compliance
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"


def events(connection: Connection, type_: str) -> list[dict]:  # type: ignore[type-arg]
    rows = connection.execute(
        select(LEDGER.c.payload).where(LEDGER.c.type == type_).order_by(LEDGER.c.seq)
    ).all()
    return [json.loads(bytes(r[0])) for r in rows]


def test_sign_in_me_and_sign_out(client: TestClient, people: People, connection: Connection) -> None:
    user = people.make("provider", npi="1234567893", credential="DO")
    response = client.post(f"{API}/auth/token", data={"username": user.username, "password": PASSWORD})
    assert response.status_code == 200
    body = response.json()
    assert (
        body["token_type"] == "bearer" and body["expires_in"] == get_compliance().tokens.lifetime_minutes * 60
    )
    headers = {"Authorization": f"Bearer {body['access_token']}"}
    me = client.get(f"{API}/users/me", headers=headers).json()
    assert me["npi"] == "1234567893" and me["credential"] == "DO" and me["roles"] == ["provider"]
    assert "password_hash" not in me
    assert client.post(f"{API}/auth/signout", headers=headers).status_code == 204
    assert client.get(f"{API}/users/me", headers=headers).status_code == 401
    assert [e["outcome"] for e in events(connection, "auth.signin")] == ["allowed"]
    assert len(events(connection, "auth.signout")) == 1


def test_unknown_username_is_a_failed_event_without_an_actor(
    client: TestClient, connection: Connection
) -> None:
    assert (
        client.post(f"{API}/auth/token", data={"username": "ghost", "password": "whatever123"}).status_code
        == 401
    )
    (event,) = events(connection, "auth.signin")
    assert (
        event["outcome"] == "failed"
        and event["actor"]["id"] is None
        and event["detail"]["username"] == "ghost"
    )


def test_bad_or_missing_token_is_401(client: TestClient) -> None:
    assert client.get(f"{API}/users/me").status_code == 401
    assert client.get(f"{API}/users/me", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_admin_creates_users_with_validated_npi(
    client: TestClient, people: People, connection: Connection
) -> None:
    admin = people.make("admin")
    headers = people.headers(admin)
    good = {
        "username": "dr.new",
        "password": "a long enough password",
        "display_name": "Dr New",
        "roles": ["provider"],
        "npi": "1987654328",
        "credential": "MD",
    }
    created = client.post(f"{API}/users", json=good, headers=headers)
    assert created.status_code == 201, created.text
    assert client.post(f"{API}/users", json=good, headers=headers).status_code == 409
    bad_npi = client.post(
        f"{API}/users", json={**good, "username": "dr.bad", "npi": "1987654321"}, headers=headers
    )
    assert bad_npi.status_code == 422 and bad_npi.json()["field"] == "npi"
    bad_role = client.post(
        f"{API}/users", json={**good, "username": "dr.role", "roles": ["wizard"]}, headers=headers
    )
    assert bad_role.status_code == 422 and bad_role.json()["field"] == "roles"
    listed = client.get(f"{API}/users", headers=headers).json()
    assert "dr.new" in [u["username"] for u in listed]
    (event,) = [e for e in events(connection, "user.create") if e["after"]["username"] == "dr.new"]
    assert event["actor"]["id"] == admin.id
    # Neither the password nor its stored hash is in the ledger; the salted hash's SHA-256 is, so the
    # verifier can notice the hash rewritten behind the service's back.
    stored = connection.execute(
        text("SELECT password_hash FROM app_user WHERE username = 'dr.new'")
    ).scalar_one()
    assert good["password"] not in json.dumps(event) and stored not in json.dumps(event)
    assert event["detail"]["account"] == {
        "is_active": True,
        "credential_active": True,
        "password_sha256": hashlib.sha256(stored.encode()).hexdigest(),
    }


def test_non_admin_cannot_create_users_and_the_denial_is_recorded(
    client: TestClient, people: People, connection: Connection
) -> None:
    coder = people.make("coder")
    body = {
        "username": "sneaky",
        "password": "a long enough password",
        "display_name": "S",
        "roles": ["admin"],
    }
    response = client.post(f"{API}/users", json=body, headers=people.headers(coder))
    assert response.status_code == 403 and response.json()["rule_ids"]
    denied = [e for e in events(connection, "user.create") if e["outcome"] == "denied"]
    assert len(denied) == 1 and denied[0]["actor"]["id"] == coder.id
