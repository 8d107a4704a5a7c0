"""Granting, listing and revoking delegations, and what a revoked or out-of-scope one stops."""

from __future__ import annotations

from datetime import timedelta

from fastapi.testclient import TestClient

from audit.models import utcnow
from tests.conftest import People

API = "/api/v1"


def until(days: int = 30) -> str:
    return (utcnow() + timedelta(days=days)).isoformat()


def test_grant_list_revoke_and_the_revoked_delegation_stops_coding(
    client: TestClient, people: People
) -> None:
    provider, coder, officer = people.make("provider"), people.make("coder"), people.make("compliance")
    hp, hc, ho = people.headers(provider), people.headers(coder), people.headers(officer)
    granted = client.post(
        f"{API}/delegations",
        headers=hp,
        json={"coder_id": coder.id, "code_systems": ["CPT", "ICD-10-CM"], "valid_until": until()},
    )
    assert granted.status_code == 201, granted.text
    did = granted.json()["id"]
    assert granted.json()["active"] is True and granted.json()["provider_id"] == provider.id

    encounter = client.post(
        f"{API}/encounters",
        headers=hc,
        json={
            "external_id": "D-1",
            "patient_ref": "MRN-3",
            "date_of_service": "2026-11-01",
            "rendering_provider_id": provider.id,
        },
    ).json()
    codes_url = f"{API}/encounters/{encounter['id']}/codes"
    assert client.post(codes_url, headers=hc, json={"system": "CPT", "code": "99213"}).status_code == 201
    wrong_system = client.post(codes_url, headers=hc, json={"system": "HCPCS", "code": "J1100"})
    assert wrong_system.status_code == 403

    assert [d["id"] for d in client.get(f"{API}/delegations", headers=hc).json()] == [did]
    assert [
        d["id"] for d in client.get(f"{API}/delegations", params={"active": True}, headers=ho).json()
    ] == [did]

    revoked = client.post(
        f"{API}/delegations/{did}/revoke", headers=ho, json={"reason": "coder left the group"}
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_by"] == officer.id
    assert (
        client.post(f"{API}/delegations/{did}/revoke", headers=ho, json={"reason": "again"}).status_code
        == 409
    )
    assert client.post(codes_url, headers=hc, json={"system": "CPT", "code": "99214"}).status_code == 403
    assert (
        client.get(f"{API}/delegations", params={"active": False}, headers=hp).json()[0]["reason"]
        == "coder left the group"
    )


def test_bad_delegation_input_is_422_naming_the_field(client: TestClient, people: People) -> None:
    provider, coder, other = people.make("provider"), people.make("coder"), people.make("provider")
    hp = people.headers(provider)
    cases = [
        ({"coder_id": other.id, "code_systems": ["CPT"], "valid_until": until()}, "coder_id"),
        ({"coder_id": coder.id, "code_systems": ["CPT4"], "valid_until": until()}, "body"),
        ({"coder_id": coder.id, "code_systems": ["CPT"], "valid_until": until(-1)}, "valid_until"),
        ({"coder_id": coder.id, "code_systems": [], "valid_until": until()}, "code_systems"),
        ({"coder_id": coder.id, "code_systems": ["CPT"]}, "valid_until"),
    ]
    for body, field in cases:
        response = client.post(f"{API}/delegations", headers=hp, json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["field"] == field, (body, response.json())


def test_a_coder_cannot_grant_and_a_provider_cannot_grant_for_a_colleague(
    client: TestClient, people: People
) -> None:
    provider, colleague, coder = people.make("provider"), people.make("provider"), people.make("coder")
    body = {"coder_id": coder.id, "code_systems": ["CPT"], "valid_until": until(), "provider_id": provider.id}
    assert client.post(f"{API}/delegations", headers=people.headers(coder), json=body).status_code == 403
    assert client.post(f"{API}/delegations", headers=people.headers(colleague), json=body).status_code == 403
