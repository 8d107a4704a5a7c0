"""Coders add, change and void codes; the history keeps every original value, author, time and reason."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import People

API = "/api/v1"


def make_encounter(
    client: TestClient, headers: dict[str, str], provider_id: str, **extra: Any
) -> dict[str, Any]:
    body = {
        "external_id": extra.pop("external_id", "ENC-1"),
        "patient_ref": "MRN-000123",
        "date_of_service": "2026-11-02",
        "rendering_provider_id": provider_id,
        **extra,
    }
    response = client.post(f"{API}/encounters", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.fixture
def setting(client: TestClient, people: People) -> dict[str, Any]:
    provider = people.make("provider", name="Dr Ada Okafor")
    coder = people.make("coder", name="Wei Chen")
    people.delegate(provider, coder)
    hp, hc = people.headers(provider), people.headers(coder)
    encounter = make_encounter(client, hc, provider.id)
    return {"provider": provider, "coder": coder, "hp": hp, "hc": hc, "encounter": encounter}


def test_add_change_void_and_history_shows_everything(client: TestClient, setting: dict[str, Any]) -> None:
    eid, hc = setting["encounter"]["id"], setting["hc"]
    added = client.post(f"{API}/encounters/{eid}/codes", json={"system": "cpt", "code": "99214"}, headers=hc)
    assert added.status_code == 201, added.text
    line = added.json()
    assert line["version"] == 1 and line["system"] == "CPT" and line["entered_by"] == setting["coder"].id

    changed = client.patch(
        f"{API}/encounters/{eid}/codes/{line['id']}",
        json={"code": "99213", "modifiers": ["25"], "reason": "MDM supports level 3"},
        headers={**hc, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["version"] == 2 and changed.json()["code"] == "99213"

    voided = client.post(
        f"{API}/encounters/{eid}/codes/{line['id']}/void", json={"reason": "billed in error"}, headers=hc
    )
    assert voided.status_code == 200 and voided.json()["status"] == "voided" and voided.json()["version"] == 3

    current = client.get(f"{API}/encounters/{eid}", headers=setting["hp"]).json()
    assert current["codes"] == []  # only active lines are current; the history keeps the rest

    history = client.get(f"{API}/encounters/{eid}/history", headers=setting["hp"]).json()
    assert [h["type"] for h in history] == ["encounter.create", "code.add", "code.change", "code.void"]
    assert [h["seq"] for h in history] == sorted(h["seq"] for h in history)
    add, change, void = history[1:]
    assert add["after"]["code"] == "99214" and add["before"] is None
    assert change["before"]["code"] == "99214" and change["after"]["code"] == "99213"
    assert change["before"]["modifiers"] == [] and change["after"]["modifiers"] == ["25"]
    assert change["reason"] == "MDM supports level 3"
    assert void["before"]["status"] == "active" and void["after"]["status"] == "voided"
    assert void["reason"] == "billed in error"
    for entry in history:
        assert entry["actor"]["id"] == setting["coder"].id
        assert entry["actor"]["display_name"] == "Wei Chen"
        assert entry["actor"]["role"] == "coder"
        assert entry["outcome"] == "allowed"
        assert entry["at"].endswith("Z")
        assert entry["policy"]["version"] and entry["policy"]["rule_ids"]


def test_the_etag_of_a_line_is_what_if_match_sends_back(client: TestClient, setting: dict[str, Any]) -> None:
    eid, hc = setting["encounter"]["id"], setting["hc"]
    added = client.post(f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hc)
    assert added.status_code == 201 and added.headers["ETag"] == '"1"'
    url = f"{API}/encounters/{eid}/codes/{added.json()['id']}"
    changed = client.patch(url, json={"units": 2}, headers={**hc, "If-Match": added.headers["ETag"]})
    assert changed.status_code == 200 and changed.headers["ETag"] == '"2"' == f'"{changed.json()["version"]}"'
    again = client.patch(url, json={"units": 3}, headers={**hc, "If-Match": changed.headers["ETag"]})
    assert again.status_code == 200 and again.headers["ETag"] == '"3"'
    voided = client.post(f"{url}/void", json={"reason": "entered on the wrong encounter"}, headers=hc)
    assert voided.status_code == 200 and voided.headers["ETag"] == f'"{voided.json()["version"]}"'


def test_stale_if_match_gets_412_and_changes_nothing(client: TestClient, setting: dict[str, Any]) -> None:
    eid, hc = setting["encounter"]["id"], setting["hc"]
    line = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "ICD-10-CM", "code": "e119"}, headers=hc
    ).json()
    assert line["code"] == "E11.9"
    url = f"{API}/encounters/{eid}/codes/{line['id']}"
    assert client.patch(url, json={"code": "I10"}, headers={**hc, "If-Match": '"1"'}).status_code == 200
    before = client.get(f"{API}/encounters/{eid}/history", headers=hc).json()

    stale = client.patch(url, json={"code": "J45.909"}, headers={**hc, "If-Match": '"1"'})
    assert stale.status_code == 412
    assert stale.json()["current_version"] == 2

    missing = client.patch(url, json={"code": "J45.909"}, headers=hc)
    assert missing.status_code == 428

    codes = client.get(f"{API}/encounters/{eid}", headers=hc).json()["codes"]
    assert [(c["code"], c["version"]) for c in codes] == [("I10", 2)]
    assert client.get(f"{API}/encounters/{eid}/history", headers=hc).json() == before


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"system": "CPT", "code": "9921"}, "code"),
        ({"system": "CPT4", "code": "99213"}, "system"),
        ({"system": "HCPCS", "code": "Z1234"}, "code"),
        ({"system": "ICD-10-PCS", "code": "0DTJ4ZO"}, "code"),
        ({"system": "ICD-10-CM", "code": "E11."}, "code"),
        ({"system": "CPT", "code": "99213", "modifiers": ["2"]}, "modifiers[0]"),
        ({"system": "CPT", "code": "99213", "modifiers": ["25", "59", "LT", "RT", "76"]}, "modifiers"),
        ({"system": "CPT", "code": "99213", "units": 0}, "units"),
        ({"system": "CPT", "code": "99213", "diagnosis_pointers": [1]}, "diagnosis_pointers[0]"),
        ({"system": "CPT"}, "code"),
        ({"system": "CPT", "code": "99213", "colour": "red"}, "colour"),
    ],
)
def test_bad_code_input_is_422_naming_the_field(
    client: TestClient, setting: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    eid = setting["encounter"]["id"]
    response = client.post(f"{API}/encounters/{eid}/codes", json=body, headers=setting["hc"])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"]
    assert client.get(f"{API}/encounters/{eid}", headers=setting["hc"]).json()["codes"] == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"patient_ref": "John Smith"}, "patient_ref"),
        ({"date_of_service": "2026-02-30"}, "date_of_service"),
        ({"rendering_provider_id": "nobody"}, "rendering_provider_id"),
        ({"supervising_provider_ids": ["nobody"]}, "supervising_provider_ids[0]"),
    ],
)
def test_bad_encounter_input_is_422_naming_the_field(
    client: TestClient, setting: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    body = {
        "external_id": "ENC-X",
        "patient_ref": "MRN-1",
        "date_of_service": "2026-11-02",
        "rendering_provider_id": setting["provider"].id,
        **change,
    }
    response = client.post(f"{API}/encounters", json=body, headers=setting["hc"])
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_duplicate_external_id_is_409(client: TestClient, setting: dict[str, Any]) -> None:
    body = {
        "external_id": "ENC-1",
        "patient_ref": "MRN-1",
        "date_of_service": "2026-11-02",
        "rendering_provider_id": setting["provider"].id,
    }
    response = client.post(f"{API}/encounters", json=body, headers=setting["hc"])
    assert response.status_code == 409 and response.json()["field"] == "external_id"


def test_unknown_encounter_and_line_are_404(client: TestClient, setting: dict[str, Any]) -> None:
    hc, eid = setting["hc"], setting["encounter"]["id"]
    assert client.get(f"{API}/encounters/nope", headers=hc).status_code == 404
    assert (
        client.post(f"{API}/encounters/{eid}/codes/nope/void", json={"reason": "xyz"}, headers=hc).status_code
        == 404
    )


def test_voided_line_cannot_change_or_void_again(client: TestClient, setting: dict[str, Any]) -> None:
    eid, hc = setting["encounter"]["id"], setting["hc"]
    line = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "93000"}, headers=hc
    ).json()
    url = f"{API}/encounters/{eid}/codes/{line['id']}"
    assert client.post(f"{url}/void", json={"reason": "duplicate"}, headers=hc).status_code == 200
    assert client.post(f"{url}/void", json={"reason": "duplicate"}, headers=hc).status_code == 409
    assert client.patch(url, json={"units": 2}, headers={**hc, "If-Match": '"2"'}).status_code == 409


def test_list_encounters_filters_and_pages(client: TestClient, setting: dict[str, Any]) -> None:
    hp, pid = setting["hp"], setting["provider"].id
    for n in range(2, 5):
        make_encounter(client, setting["hc"], pid, external_id=f"ENC-{n}", date_of_service=f"2026-10-0{n}")
    page = client.get(f"{API}/encounters", params={"provider_id": pid, "limit": 2}, headers=hp).json()
    assert page["total"] == 4 and len(page["items"]) == 2
    october = client.get(
        f"{API}/encounters", params={"from": "2026-10-01", "to": "2026-10-31"}, headers=hp
    ).json()
    assert october["total"] == 3
    assert client.get(f"{API}/encounters", params={"status": "bogus"}, headers=hp).status_code == 422


def test_malformed_json_and_naive_times_name_the_field(client: TestClient, setting: dict[str, Any]) -> None:
    broken = client.post(
        f"{API}/encounters",
        content=b"{not json",
        headers={**setting["hc"], "content-type": "application/json"},
    )
    assert broken.status_code == 422 and broken.json()["field"] == "body"
    naive = client.post(
        f"{API}/delegations",
        headers=setting["hp"],
        json={"coder_id": setting["coder"].id, "code_systems": ["CPT"], "valid_until": "2030-01-01T00:00:00"},
    )
    assert naive.status_code == 422 and naive.json()["field"] == "valid_until"
