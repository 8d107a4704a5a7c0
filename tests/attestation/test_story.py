"""The whole story: coder codes under delegation -> provider attests -> coder amends with a reason ->
attestation superseded, encounter amended, history shows both signatures and the change -> re-attest."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fastapi.testclient import TestClient

from audit.policy.runtime import get_compliance, get_policy_engine
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"


def independent_digest(encounter: dict[str, Any], lines: list[dict[str, Any]]) -> str:
    """DESIGN.md section 3, re-implemented from the text: canonical JSON, lines sorted by id."""
    body = {
        "encounter_id": encounter["id"],
        "rendering_provider_id": encounter["rendering_provider_id"],
        "date_of_service": encounter["date_of_service"],
        "lines": sorted(
            [
                {
                    k: line[k]
                    for k in ("id", "system", "code", "modifiers", "units", "diagnosis_pointers", "version")
                }
                for line in lines
            ],
            key=lambda line: line["id"],
        ),
    }
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).hexdigest()


def test_delegated_coding_attestation_amendment_and_reattestation(client: TestClient, people: People) -> None:
    provider = people.make("provider", name="Dr Adaeze Okafor", npi="1987654328", credential="MD")
    coder = people.make("coder", name="Wei Chen")
    delegation_id = people.delegate(provider, coder)
    hp, hc = people.headers(provider), people.headers(coder)

    encounter = client.post(
        f"{API}/encounters",
        headers=hc,
        json={
            "external_id": "V-1001",
            "patient_ref": "MRN-77",
            "date_of_service": "2026-11-10",
            "rendering_provider_id": provider.id,
        },
    ).json()
    eid = encounter["id"]
    dx = client.post(
        f"{API}/encounters/{eid}/codes", headers=hc, json={"system": "ICD-10-CM", "code": "E11.9"}
    )
    em = client.post(
        f"{API}/encounters/{eid}/codes",
        headers=hc,
        json={"system": "CPT", "code": "99214", "diagnosis_pointers": [1]},
    )
    assert dx.status_code == 201 and em.status_code == 201, em.text
    assert em.json()["entered_role"] == "coder" and em.json()["delegation_id"] == delegation_id

    first = client.post(f"{API}/encounters/{eid}/attestations", headers=hp, json={"password": PASSWORD})
    assert first.status_code == 201, first.text
    signature = first.json()
    assert signature["printed_name"] == "Dr Adaeze Okafor"
    assert signature["credential"] == "MD" and signature["npi"] == "1987654328"
    assert signature["meaning"] == get_compliance().attestation.meaning
    assert signature["policy_version"] == get_policy_engine().version
    assert signature["late"] is False and signature["signed_at"].endswith("Z")
    assert signature["code_set_digest"] == independent_digest(encounter, [dx.json(), em.json()])
    assert client.get(f"{API}/encounters/{eid}", headers=hp).json()["status"] == "attested"

    url = f"{API}/encounters/{eid}/codes/{em.json()['id']}"
    no_reason = client.patch(url, headers={**hc, "If-Match": '"1"'}, json={"code": "99213"})
    assert no_reason.status_code == 422 and no_reason.json()["field"] == "reason"
    changed = client.patch(
        url,
        headers={**hc, "If-Match": '"1"'},
        json={"code": "99213", "reason": "Audit found MDM supports level 3"},
    )
    assert changed.status_code == 200, changed.text

    now = client.get(f"{API}/encounters/{eid}", headers=hp).json()
    assert now["status"] == "amended" and now["attestation"] is None

    history = client.get(f"{API}/encounters/{eid}/history", headers=hp).json()
    types = [h["type"] for h in history]
    assert types == [
        "encounter.create",
        "code.add",
        "code.add",
        "encounter.attest",
        "code.change",
        "code.change",
        "attestation.supersede",
    ]
    attest_event, refused, change_event, supersede = history[3], history[4], history[5], history[6]
    # The change without a reason was refused (422): its evidence names the field, not the patient.
    assert refused["outcome"] == "failed" and refused["detail"]["field"] == "reason"
    assert "MRN-77" not in json.dumps(refused)
    assert attest_event["after"]["code_set_digest"] == signature["code_set_digest"]
    assert attest_event["actor"]["id"] == provider.id and attest_event["actor"]["role"] == "provider"
    assert change_event["detail"]["amendment"] is True
    assert change_event["before"]["code"] == "99214" and change_event["after"]["code"] == "99213"
    assert change_event["on_behalf_of"]["user_id"] == provider.id
    assert change_event["on_behalf_of"]["delegation_id"] == delegation_id
    assert supersede["before"]["status"] == "valid" and supersede["after"]["status"] == "superseded"

    second = client.post(f"{API}/encounters/{eid}/attestations", headers=hp, json={"password": PASSWORD})
    assert second.status_code == 201, second.text
    assert second.json()["code_set_digest"] != signature["code_set_digest"]
    assert second.json()["code_set_digest"] == independent_digest(encounter, [dx.json(), changed.json()])
    final = client.get(f"{API}/encounters/{eid}", headers=hp).json()
    assert final["status"] == "attested" and final["attestation"]["id"] == second.json()["id"]

    signatures = [
        h
        for h in client.get(f"{API}/encounters/{eid}/history", headers=hp).json()
        if h["type"] == "encounter.attest"
    ]
    assert [s["after"]["id"] for s in signatures] == [signature["id"], second.json()["id"]]
    for event in client.get(f"{API}/encounters/{eid}/history", headers=hp).json():
        assert event["policy"]["version"] == get_policy_engine().version
        assert event["policy"]["rule_ids"]
