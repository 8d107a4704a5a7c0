"""A code write refused by validation (422) leaves a `failed` event naming the field and the message,
and never the patient reference; nothing of the refused line is stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.ledger.service import verify as verify_ledger
from audit.models import CodeLine
from audit.uow import unit_of_work
from tests.conftest import People

API = "/api/v1"
PATIENT = "MRN-DO-NOT-LEAK-4411"


@pytest.fixture
def setup(client: TestClient, people: People) -> tuple[str, dict[str, str], str]:
    provider, coder = people.make("provider"), people.make("coder")
    people.delegate(provider, coder)
    hc = people.headers(coder)
    body = {
        "external_id": "REF-1",
        "patient_ref": PATIENT,
        "date_of_service": "2025-11-15",
        "rendering_provider_id": provider.id,
    }
    eid = client.post(f"{API}/encounters", json=body, headers=hc).json()["id"]
    return eid, hc, coder.id


def last_event(connection: Connection) -> dict[str, Any]:
    row = connection.execute(select(LEDGER.c.payload).order_by(LEDGER.c.seq.desc()).limit(1)).one()
    return dict(json.loads(bytes(row[0])))


def lines(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(CodeLine.__table__)).scalar_one())  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ({"system": "ICD-10-CM", "code": "E11"}, "code", "header"),
        ({"system": "ICD-10-CM", "code": "Z99.999"}, "code", "does not exist"),
        ({"system": "ICD-10-CM", "code": "E11."}, "code", "not a valid"),
        ({"system": "CPT", "code": "\uff19\uff19\uff12\uff11\uff13"}, "code", "ASCII"),
        ({"system": "CPT", "code": "99213", "modifiers": ["25", "34"]}, "modifiers[1]", "not a CPT modifier"),
        ({"system": "CPT", "code": "99213", "modifiers": ["25", "25"]}, "modifiers[1]", "repeated"),
        ({"system": "CPT", "code": "99213", "diagnosis_pointers": [3]}, "diagnosis_pointers[0]", "pointer 3"),
    ],
)
def test_refused_add_leaves_failed_event_without_the_patient(
    client: TestClient,
    connection: Connection,
    setup: tuple[str, dict[str, str], str],
    line: dict[str, Any],
    field: str,
    words: str,
) -> None:
    eid, hc, coder_id = setup
    before = lines(connection)
    refused = client.post(f"{API}/encounters/{eid}/codes", json=line, headers=hc)
    assert refused.status_code == 422 and refused.json()["field"] == field, refused.text
    event = last_event(connection)
    assert event["type"] == "code.add" and event["outcome"] == "failed"
    assert event["actor"]["id"] == coder_id and event["actor"]["role"] == "coder"
    assert event["encounter_id"] == eid and event["on_behalf_of"]["delegation_id"]
    assert event["detail"]["field"] == field and words in event["detail"]["message"]
    assert event["reason"] == refused.json()["detail"]
    assert event["policy"]["rule_ids"] == ["codes.coder_under_delegation"]
    assert PATIENT not in json.dumps(event)
    assert lines(connection) == before
    with unit_of_work(connection) as s:
        assert verify_ledger(s).ok


def test_refused_system_is_evidence_before_any_policy_decision(
    client: TestClient, connection: Connection, setup: tuple[str, dict[str, str], str]
) -> None:
    eid, hc, coder_id = setup
    refused = client.post(f"{API}/encounters/{eid}/codes", json={"system": "SNOMED", "code": "1"}, headers=hc)
    assert refused.status_code == 422 and refused.json()["field"] == "system"
    event = last_event(connection)
    assert (event["type"], event["outcome"], event["detail"]["field"]) == ("code.add", "failed", "system")
    assert event["actor"]["id"] == coder_id and event["policy"] is None
    assert PATIENT not in json.dumps(event)


def test_refused_change_leaves_failed_event_and_the_line_unchanged(
    client: TestClient, connection: Connection, setup: tuple[str, dict[str, str], str]
) -> None:
    eid, hc, _ = setup
    line = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "ICD-10-CM", "code": "E11.9"}, headers=hc
    )
    url = f"{API}/encounters/{eid}/codes/{line.json()['id']}"
    refused = client.patch(url, json={"code": "E11"}, headers={**hc, "If-Match": '"1"'})
    assert refused.status_code == 422 and refused.json()["release"] == "FY2026 (built-in)"
    event = last_event(connection)
    assert (event["type"], event["outcome"]) == ("code.change", "failed")
    assert event["subject"] == {"type": "code_line", "id": line.json()["id"]}
    assert event["detail"]["release"] == "FY2026 (built-in)" and event["detail"]["system"] == "ICD-10-CM"
    current = client.get(f"{API}/encounters/{eid}", headers=hc).json()["codes"]
    assert [(c["code"], c["version"]) for c in current] == [("E11.9", 1)]


def test_an_unauthorised_writer_is_denied_not_validated(
    client: TestClient, people: People, connection: Connection, setup: tuple[str, dict[str, str], str]
) -> None:
    eid, _, _ = setup
    stranger = people.headers(people.make("coder"))
    denied = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "ICD-10-CM", "code": "E11"}, headers=stranger
    )
    assert denied.status_code == 403
    assert last_event(connection)["outcome"] == "denied"
