"""Every time a payload holds is UTC RFC 3339 with `Z` (DESIGN section 5), and request times without a
time zone are refused naming the field (issue 10, items 6 and 11)."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.chain import rfc3339
from audit.ledger.service import LEDGER
from audit.ledger.verification import verify_ledger
from audit.models import utcnow
from audit.policy.runtime import get_compliance
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"
# A string that starts like an ISO 8601 date-time (a date followed by a time).
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def _strings(value: Any, path: str = "") -> list[tuple[str, str]]:
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in _strings(v, f"{path}[{i}]")]
    return []


def _payloads(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(select(LEDGER.c.payload).order_by(LEDGER.c.seq))
    return [json.loads(bytes(r[0])) for r in rows]


def test_rfc3339_helper_is_utc_with_z() -> None:
    assert rfc3339(datetime(2026, 3, 2, 9, 30, tzinfo=UTC)) == "2026-03-02T09:30:00.000000Z"
    eastern = datetime(2026, 3, 2, 4, 30, 0, 250, tzinfo=timezone(timedelta(hours=-5)))
    assert rfc3339(eastern) == "2026-03-02T09:30:00.000250Z"
    assert datetime.fromisoformat(rfc3339(eastern)) == eastern


def test_every_time_written_in_a_flow_is_utc_with_z(
    client: TestClient, people: People, connection: Connection
) -> None:
    """Delegation grant and revoke, engagement open and revoke, user creation, codes, a wrong password
    at signing (its lock time), a locked signer's refusal, a signature: no `+00:00` anywhere, and
    every string that looks like a time is RFC 3339 with `Z`."""
    provider, coder = people.make("provider"), people.make("coder")
    officer, auditor = people.make("compliance"), people.make("auditor")
    hp, hc, ho = people.headers(provider), people.headers(coder), people.headers(officer)
    start = len(_payloads(connection))
    until = (utcnow() + timedelta(days=30)).astimezone(timezone(timedelta(hours=-5)))
    granted = client.post(
        f"{API}/delegations",
        headers=hp,
        json={"coder_id": coder.id, "code_systems": ["CPT"], "valid_until": until.isoformat()},
    )
    assert granted.status_code == 201, granted.text
    dos = (date.today() - timedelta(days=2)).isoformat()
    body = {"external_id": "T-1", "patient_ref": "MRN-1", "rendering_provider_id": provider.id}
    eid = client.post(f"{API}/encounters", headers=hc, json={**body, "date_of_service": dos}).json()["id"]
    added = client.post(f"{API}/encounters/{eid}/codes", headers=hc, json={"system": "CPT", "code": "99213"})
    assert added.status_code == 201, added.text
    revoked = client.post(
        f"{API}/delegations/{granted.json()['id']}/revoke", headers=hp, json={"reason": "left the team"}
    )
    assert revoked.status_code == 200, revoked.text
    expires = (utcnow() + timedelta(days=5)).isoformat().replace("+00:00", "+02:00")
    opened = client.post(
        f"{API}/engagements",
        headers=ho,
        json={"auditor_id": auditor.id, "date_from": dos, "date_to": dos, "expires_at": expires},
    )
    assert opened.status_code == 201, opened.text
    closed = client.post(
        f"{API}/engagements/{opened.json()['id']}/revoke", headers=ho, json={"reason": "finished"}
    )
    assert closed.status_code == 200, closed.text
    signed = client.post(f"{API}/encounters/{eid}/attestations", headers=hp, json={"password": PASSWORD})
    assert signed.status_code == 201, signed.text
    # A second provider is locked out of signing by wrong passwords: its lock time is in the payload.
    other = people.make("provider")
    ho2 = people.headers(other)
    eid2 = client.post(
        f"{API}/encounters",
        headers=ho2,
        json={**body, "external_id": "T-2", "rendering_provider_id": other.id, "date_of_service": dos},
    ).json()["id"]
    client.post(f"{API}/encounters/{eid2}/codes", headers=ho2, json={"system": "CPT", "code": "99213"})
    for _ in range(get_compliance().signing_lock.max_failed_signings):
        client.post(f"{API}/encounters/{eid2}/attestations", headers=ho2, json={"password": "not it"})
    locked = client.post(f"{API}/encounters/{eid2}/attestations", headers=ho2, json={"password": PASSWORD})
    assert locked.status_code == 423 and RFC3339_Z.match(locked.json()["locked_until"])

    payloads = _payloads(connection)[start:]
    types = {p["type"] for p in payloads}
    assert {"delegation.grant", "delegation.revoke", "engagement.open", "engagement.revoke"} <= types
    assert {"encounter.attest", "user.create", "code.add"} <= types
    times = [(p["seq"], path, s) for p in payloads for path, s in _strings(p) if INSTANT.match(s)]
    assert len(times) > len(payloads)  # each event's ts, plus the delegation's, engagement's and others'
    wrong = [t for t in times if not RFC3339_Z.match(t[2])]
    assert wrong == []
    assert not any("+00:00" in json.dumps(p) for p in payloads)
    grant = next(p for p in payloads if p["type"] == "delegation.grant")
    assert grant["after"]["valid_until"] == rfc3339(until)  # converted from the caller's offset
    engagement = next(p for p in payloads if p["type"] == "engagement.open")
    assert engagement["after"]["expires_at"] == rfc3339(datetime.fromisoformat(expires))
    lock = [p for p in payloads if (p.get("detail") or {}).get("signing_locked_until")]
    assert lock and all(RFC3339_Z.match(p["detail"]["signing_locked_until"]) for p in lock)


def test_old_events_with_offset_times_still_verify(people: People, connection: Connection) -> None:
    """Events written before the helper hold `+00:00` times (a delegation granted the old way here);
    the verifier parses both forms, so the ledger still verifies and reconciles with the tables."""
    from sqlmodel import Session

    from audit.delegation.service import delegation_state
    from audit.ledger import service as ledger
    from audit.ledger.events import ROW_TIME, EventDraft
    from audit.models import Delegation
    from audit.uow import unit_of_work

    provider, coder = people.make("provider"), people.make("coder")
    now = utcnow()
    with unit_of_work(connection) as s:
        d = Delegation(
            provider_id=provider.id, coder_id=coder.id, code_systems=["CPT"], valid_from=now,
            valid_until=now + timedelta(days=3), granted_by=provider.id, granted_at=now,
        )  # fmt: skip
        s.add(d)
        s.flush()
        old_style = {
            **delegation_state(d),
            "valid_from": d.valid_from.isoformat(),
            "valid_until": d.valid_until.isoformat(),
        }
        assert old_style["valid_until"].endswith("+00:00")
        draft = EventDraft(
            type="delegation.grant", actor=provider.actor("provider"), subject_type="delegation",
            subject_id=d.id, provider_id=provider.id, after=old_style, detail=dict(ROW_TIME),
        )  # fmt: skip
        ledger.append_one(s, draft, now=now)
    people.delegate(provider, coder)  # and one the new way
    with Session(connection) as s:
        report = verify_ledger(s)
    assert report.ok, (report.problem, report.problems, report.unreconciled)


@pytest.mark.parametrize(
    ("path", "field", "body"),
    [
        ("delegations", "valid_until", {"code_systems": ["CPT"], "valid_until": "2030-01-01T00:00:00"}),
        (
            "delegations",
            "valid_from",
            {"code_systems": ["CPT"], "valid_from": "2029-01-01T00:00", "valid_until": "2030-01-01T00:00Z"},
        ),
        ("engagements", "expires_at", {"date_from": "2026-01-01", "date_to": "2026-02-01"}),
    ],
)
def test_naive_times_are_refused_naming_the_field(
    client: TestClient, people: People, connection: Connection, path: str, field: str, body: dict[str, Any]
) -> None:
    provider, coder = people.make("provider"), people.make("coder")
    officer, auditor = people.make("compliance"), people.make("auditor")
    if path == "delegations":
        who, body = provider, {**body, "coder_id": coder.id}
    else:
        who, body = officer, {**body, "auditor_id": auditor.id, "expires_at": "2030-01-01T00:00:00"}
    before = len(_payloads(connection))
    refused = client.post(f"{API}/{path}", headers=people.headers(who), json=body)
    assert refused.status_code == 422, refused.text
    assert refused.json()["field"] == field and "time zone" in refused.json()["detail"]
    assert [p["type"] for p in _payloads(connection)[before:]] == ["auth.signin"]
