"""The encounter list shows each user only what the encounter.read rules would let them open."""

from __future__ import annotations

from datetime import date, timedelta

from fastapi.testclient import TestClient

from audit.models import utcnow
from tests.conftest import People

API = "/api/v1"


def test_each_role_lists_only_what_it_may_read(client: TestClient, people: People) -> None:
    alice, bob = people.make("provider"), people.make("provider")
    coder, stranger_coder = people.make("coder"), people.make("coder")
    people.delegate(alice, coder)
    people.delegate(bob, people.make("coder"))
    hc = people.headers(coder)
    ids = {}
    for name, provider, dos in (
        ("a1", alice, date(2026, 3, 2)),
        ("a2", alice, date(2025, 5, 2)),
        ("b1", bob, date(2026, 3, 3)),
    ):
        creator = people.make("coder")
        people.delegate(provider, creator)
        body = {
            "external_id": name,
            "patient_ref": "MRN-1",
            "date_of_service": dos.isoformat(),
            "rendering_provider_id": provider.id,
        }
        ids[name] = client.post(f"{API}/encounters", json=body, headers=people.headers(creator)).json()["id"]

    def listed(user_headers: dict[str, str]) -> set[str]:
        page = client.get(f"{API}/encounters", params={"limit": 500}, headers=user_headers).json()
        return {e["id"] for e in page["items"]} & set(ids.values())

    assert listed(hc) == {ids["a1"], ids["a2"]}
    assert listed(people.headers(stranger_coder)) == set()
    assert listed(people.headers(alice)) == {ids["a1"], ids["a2"]}
    assert listed(people.headers(people.make("compliance"))) == set(ids.values())
    assert listed(people.headers(people.make("admin"))) == set()

    auditor = people.make("auditor")
    ha = people.headers(auditor)
    assert listed(ha) == set()
    opened = client.post(
        f"{API}/engagements",
        headers=people.headers(people.make("compliance")),
        json={
            "auditor_id": auditor.id,
            "date_from": "2026-01-01",
            "date_to": "2026-12-31",
            "provider_ids": [alice.id],
            "expires_at": (utcnow() + timedelta(days=3)).isoformat(),
        },
    )
    assert opened.status_code == 201, opened.text
    assert listed(ha) == {ids["a1"]}
    assert client.get(f"{API}/encounters/{ids['a1']}", headers=ha).status_code == 200
    assert client.get(f"{API}/encounters/{ids['b1']}", headers=ha).status_code == 403
