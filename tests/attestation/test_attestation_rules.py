"""Attestation rules: re-entered password, failed signings lock, nothing to attest, late, supervisors,
segregation of duties, integration feeds never attest."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"


def events(connection: Connection, type_: str) -> list[dict[str, Any]]:
    rows = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == type_).order_by(LEDGER.c.seq))
    return [json.loads(bytes(r[0])) for r in rows]


def coded_encounter(
    client: TestClient,
    people: People,
    provider: CurrentUser,
    days_ago: int = 2,
    with_line: bool = True,
    **extra: Any,
) -> str:
    coder = people.make("coder")
    people.delegate(provider, coder)
    hc = people.headers(coder)
    body = {
        "external_id": f"A-{people._n}",
        "patient_ref": "MRN-5",
        "rendering_provider_id": provider.id,
        "date_of_service": (date.today() - timedelta(days=days_ago)).isoformat(),
        **extra,
    }
    eid = str(client.post(f"{API}/encounters", json=body, headers=hc).json()["id"])
    if with_line:
        added = client.post(
            f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hc
        )
        assert added.status_code == 201, added.text
    return eid


def test_wrong_password_is_a_failed_event_and_repeated_failures_lock_signing_only(
    client: TestClient, people: People, connection: Connection
) -> None:
    provider = people.make("provider")
    eid = coded_encounter(client, people, provider)
    hp = people.headers(provider)
    limit = get_compliance().signing_lock.max_failed_signings
    for _ in range(limit):
        wrong = client.post(f"{API}/encounters/{eid}/attestations", json={"password": "not it"}, headers=hp)
        assert wrong.status_code == 401 and wrong.json()["error"] == "ReauthenticationFailed"
    failed = [e for e in events(connection, "encounter.attest") if e["outcome"] == "failed"]
    assert len(failed) == limit and all(e["actor"]["id"] == provider.id for e in failed)
    assert [e["detail"]["failed_signings"] for e in failed] == list(range(1, limit + 1))
    assert failed[-1]["detail"]["signing_locked_until"] is not None
    assert all(e["policy"]["rule_ids"] == ["attestation.provider_of_record"] for e in failed)
    locked = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert locked.status_code == 423 and locked.json()["rule_ids"] == ["attestation.signing_locked"]
    assert locked.json()["locked_until"]
    # Only signing is locked: the provider still reads and codes, and the session stays open.
    assert client.get(f"{API}/encounters/{eid}", headers=hp).status_code == 200
    added = client.post(f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99214"}, headers=hp)
    assert added.status_code == 201, added.text
    denied = [e for e in events(connection, "encounter.attest") if e["outcome"] == "denied"]
    assert len(denied) == 1 and denied[0]["reason"] == "locked"
    # Compliance sees the failures and the refusal in the denied-attempts report.
    officer = people.headers(people.make("compliance"))
    rows = client.get(f"{API}/reports/denied-attempts", headers=officer).json()["rows"]
    mine = [r for r in rows if r["action"] == "encounter.attest" and r["encounter_id"] == eid]
    assert sorted(r["outcome"] for r in mine) == ["denied"] + ["failed"] * limit


def test_who_may_not_sign_is_refused_before_any_password_check(
    client: TestClient, people: People, connection: Connection
) -> None:
    """A coder calling attestation is refused by policy (403) every time: no password check, no
    failed signing counted, so nobody can lock themselves (or anyone) out through it."""
    provider = people.make("provider")
    eid = coded_encounter(client, people, provider)
    coder = people.make("coder")
    people.delegate(provider, coder)
    hc = people.headers(coder)
    for password in ("wrong one", PASSWORD, "wrong two", "wrong three"):
        refused = client.post(f"{API}/encounters/{eid}/attestations", json={"password": password}, headers=hc)
        assert refused.status_code == 403, refused.text
    outcomes = [e["outcome"] for e in events(connection, "encounter.attest") if e["actor"]["id"] == coder.id]
    assert outcomes == ["denied"] * 4
    assert client.get(f"{API}/users/me", headers=hc).status_code == 200


def test_an_encounter_without_active_lines_cannot_be_attested(
    client: TestClient, people: People, connection: Connection
) -> None:
    provider = people.make("provider")
    eid = coded_encounter(client, people, provider, with_line=False)
    response = client.post(
        f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=people.headers(provider)
    )
    assert response.status_code == 409
    (event,) = [e for e in events(connection, "encounter.attest") if e["encounter_id"] == eid]
    assert event["outcome"] == "failed" and "no active code lines" in event["reason"]


def test_late_flag_follows_the_policy_deadline(client: TestClient, people: People) -> None:
    provider = people.make("provider")
    deadline = get_compliance().attestation.deadline_days
    hp = people.headers(provider)
    on_time = coded_encounter(client, people, provider, days_ago=deadline)
    late = coded_encounter(client, people, provider, days_ago=deadline + 1)
    first = client.post(f"{API}/encounters/{on_time}/attestations", json={"password": PASSWORD}, headers=hp)
    second = client.post(f"{API}/encounters/{late}/attestations", json={"password": PASSWORD}, headers=hp)
    assert first.json()["late"] is False and second.json()["late"] is True


def test_supervising_provider_attests_but_another_provider_cannot(client: TestClient, people: People) -> None:
    provider, supervisor, stranger = people.make("provider"), people.make("provider"), people.make("provider")
    eid = coded_encounter(client, people, provider, supervising_provider_ids=[supervisor.id])
    url = f"{API}/encounters/{eid}/attestations"
    refused = client.post(url, json={"password": PASSWORD}, headers=people.headers(stranger))
    assert refused.status_code == 403 and refused.json()["rule_ids"] == ["default.deny"]
    signed = client.post(url, json={"password": PASSWORD}, headers=people.headers(supervisor))
    assert signed.status_code == 201 and signed.json()["printed_name"] == f"Test {supervisor.username}"


def test_inactive_credential_cannot_attest(
    client: TestClient, people: People, connection: Connection
) -> None:
    from sqlalchemy import update

    from audit.models import User

    provider = people.make("provider")
    eid = coded_encounter(client, people, provider)
    connection.execute(update(User).where(User.id == provider.id).values(credential_active=False))  # type: ignore[arg-type]
    response = client.post(
        f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=people.headers(provider)
    )
    assert response.status_code == 403


def test_a_compliance_officer_who_is_also_the_provider_of_record_still_cannot_code_or_attest(
    client: TestClient, people: People
) -> None:
    dual = people.make("compliance", "provider")
    eid = coded_encounter(client, people, dual)
    h = people.headers(dual)
    code = client.post(f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99212"}, headers=h)
    assert code.status_code == 403 and "segregation.compliance_no_clinical_write" in code.json()["rule_ids"]
    sign = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=h)
    assert sign.status_code == 403 and "segregation.compliance_no_clinical_write" in sign.json()["rule_ids"]


def test_integration_submits_for_a_named_coder_but_never_attests(
    client: TestClient, people: People, connection: Connection
) -> None:
    provider, coder, feed = people.make("provider"), people.make("coder"), people.make("integration")
    delegation = people.delegate(provider, coder)
    hf = people.headers(feed)
    body = {
        "external_id": "EHR-1",
        "source": "epic",
        "patient_ref": "MRN-9",
        "date_of_service": "2026-11-01",
        "rendering_provider_id": provider.id,
        "on_behalf_of": coder.id,
    }
    created = client.post(f"{API}/encounters", json=body, headers=hf)
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    line = client.post(
        f"{API}/encounters/{eid}/codes",
        headers=hf,
        json={"system": "ICD-10-CM", "code": "I10", "on_behalf_of": coder.id},
    )
    assert line.status_code == 201 and line.json()["entered_by"] == coder.id
    (event,) = [e for e in events(connection, "code.add") if e["encounter_id"] == eid]
    assert event["actor"]["id"] == feed.id and event["actor"]["role"] == "integration"
    assert (
        event["on_behalf_of"]["user_id"] == coder.id and event["on_behalf_of"]["delegation_id"] == delegation
    )

    for_stranger = client.post(
        f"{API}/encounters/{eid}/codes",
        headers=hf,
        json={"system": "CPT", "code": "99213", "on_behalf_of": people.make("coder").id},
    )
    assert for_stranger.status_code == 403
    itself = client.post(f"{API}/encounters/{eid}/codes", headers=hf, json={"system": "CPT", "code": "99213"})
    assert itself.status_code == 403
    not_integration = client.post(
        f"{API}/encounters/{eid}/codes",
        headers=people.headers(coder),
        json={"system": "CPT", "code": "99213", "on_behalf_of": provider.id},
    )
    assert not_integration.status_code == 422 and not_integration.json()["field"] == "on_behalf_of"


def test_compliance_flags_and_annotations_are_in_the_history(client: TestClient, people: People) -> None:
    provider, officer = people.make("provider"), people.make("compliance")
    eid = coded_encounter(client, people, provider)
    ho = people.headers(officer)
    assert (
        client.post(
            f"{API}/encounters/{eid}/flags", json={"text": "E/M level outlier"}, headers=ho
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"{API}/encounters/{eid}/annotations", json={"text": "Asked coder"}, headers=ho
        ).status_code
        == 201
    )
    history = client.get(f"{API}/encounters/{eid}/history", headers=ho).json()
    assert [h["type"] for h in history][-2:] == ["encounter.flag", "encounter.annotate"]
    assert history[-2]["reason"] == "E/M level outlier"
