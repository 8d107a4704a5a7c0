"""FHIR R4 AuditEvent and Provenance searches over a real story, validated with fhir.resources R4B."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.provenance import Provenance
from sqlalchemy.engine import Connection

from audit.deps import get_bind
from audit.fhir import mapping
from audit.fhir.routes import router as fhir_router
from audit.main import create_app
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"
FHIR_JSON = "application/fhir+json"


@pytest.fixture
def client(connection: Connection) -> Iterator[TestClient]:
    """The app as the lead builds it, with the FHIR router mounted if main.py does not yet."""
    app = create_app()
    if not any(getattr(route, "path", "").startswith("/fhir/") for route in app.routes):
        app.include_router(fhir_router)
    app.dependency_overrides[get_bind] = lambda: connection
    with TestClient(app) as c:
        yield c


@pytest.fixture
def story(client: TestClient, people: People) -> dict[str, Any]:
    """Delegated coder codes, provider attests, coder changes a code, provider re-attests."""
    provider = people.make("provider", name="Dr Ada Okafor", npi="1234567893")
    coder = people.make("coder", name="Wei Chen")
    delegation_id = people.delegate(provider, coder)
    hp, hc = people.headers(provider), people.headers(coder)
    dos = (datetime.now(UTC) - timedelta(days=3)).date().isoformat()
    body = {
        "external_id": "ENC-FHIR-1",
        "patient_ref": "MRN-000123",
        "date_of_service": dos,
        "rendering_provider_id": provider.id,
    }
    created = client.post(f"{API}/encounters", json=body, headers=hc)
    assert created.status_code == 201, created.text
    eid = created.json()["id"]
    line = client.post(f"{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99214"}, headers=hc)
    assert line.status_code == 201, line.text
    dx = client.post(
        f"{API}/encounters/{eid}/codes", json={"system": "ICD-10-CM", "code": "E11.9"}, headers=hc
    )
    assert dx.status_code == 201, dx.text
    first = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert first.status_code == 201, first.text
    # A coder may never attest: a denied attempt on the encounter.
    refused = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hc)
    assert refused.status_code == 403, refused.text
    changed = client.patch(
        f"{API}/encounters/{eid}/codes/{line.json()['id']}",
        json={"code": "99213", "reason": "MDM supports level 3"},
        headers={**hc, "If-Match": '"1"'},
    )
    assert changed.status_code == 200, changed.text
    second = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert second.status_code == 201, second.text
    # A failed sign-in (auth failure) outside any encounter.
    bad = client.post("/api/v1/auth/token", data={"username": coder.username, "password": "wrong"})
    assert bad.status_code == 401
    compliance = people.make("compliance", name="Carla Compliance")
    return {
        "provider": provider,
        "coder": coder,
        "compliance": compliance,
        "hcomp": people.headers(compliance),
        "hc": hc,
        "eid": eid,
        "delegation_id": delegation_id,
        "line_id": line.json()["id"],
        "first": first.json(),
        "second": second.json(),
        "dos": dos,
    }


def _bundle(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    data: dict[str, Any] = response.json()
    Bundle.model_validate(data)
    assert data["type"] == "searchset"
    return data


def _resources(bundle: dict[str, Any], model: Any) -> list[dict[str, Any]]:
    resources = []
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        model.model_validate(resource)
        assert entry["fullUrl"].endswith(f"/{resource['resourceType']}/{resource['id']}")
        assert entry["fullUrl"].startswith("http")
        resources.append(resource)
    return resources


def _subtype(event: dict[str, Any]) -> str:
    return str(event["subtype"][0]["code"])


def _detail(entity: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(d for d in entity.get("detail", []) if d["type"] == kind)


def _ledger_search_events(client: TestClient, headers: dict[str, str]) -> list[dict[str, Any]]:
    data = _bundle(
        client.get("/fhir/AuditEvent", params={"subtype": "fhir.search", "_count": 500}, headers=headers)
    )
    return _resources(data, AuditEvent)


def test_audit_events_for_an_encounter(client: TestClient, story: dict[str, Any]) -> None:
    eid, hcomp = story["eid"], story["hcomp"]
    year = date.today().year
    params = {"entity": f"Encounter/{eid}", "date": [f"ge{year - 1}-01-01", f"le{year + 1}-12-31"]}
    data = _bundle(client.get("/fhir/AuditEvent", params=params, headers=hcomp))
    events = _resources(data, AuditEvent)
    assert data["total"] == len(events)
    kinds = [_subtype(e) for e in events]
    assert kinds == [
        "encounter.create",
        "code.add",
        "code.add",
        "encounter.attest",
        "encounter.attest",  # the coder's denied attempt
        "code.change",
        "attestation.supersede",
        "encounter.attest",
    ]
    for event in events:
        assert event["subtype"][0]["system"] == mapping.EVENT_TYPE_SYSTEM
        assert event["type"]["code"] == "rest"
        assert event["recorded"].endswith("Z")
        assert event["source"]["observer"]["display"]
        assert event["entity"][0]["what"]["reference"] == f"Encounter/{eid}"
        requestor = event["agent"][0]
        assert requestor["requestor"] is True
        # Every event ties back to the chain: leaf hash = SHA-256(0x00 || payload).
        chain = next(e for e in event["entity"] if e.get("name") == "ledger-event")
        payload = base64.b64decode(_detail(chain, "payload")["valueBase64Binary"])
        assert hashlib.sha256(b"\x00" + payload).hexdigest() == _detail(chain, "leaf_hash")["valueString"]
        assert json.loads(payload)["seq"] == int(_detail(chain, "seq")["valueString"])
        assert json.loads(payload)["event_id"] == event["id"]

    add = events[1]
    assert add["action"] == "C" and add["outcome"] == "0"
    actor, on_behalf = add["agent"]
    assert actor["who"]["identifier"]["value"] == story["coder"].id
    assert actor["who"]["display"] == story["coder"].username
    assert actor["role"][0]["coding"][0] == {"system": mapping.ROLE_SYSTEM, "code": "coder"}
    assert actor["name"] == "Wei Chen"
    assert on_behalf["requestor"] is False
    assert on_behalf["type"]["coding"][0]["code"] == "RESP"
    assert on_behalf["type"]["coding"][0]["system"] == mapping.PARTICIPATION_TYPE
    assert on_behalf["who"]["identifier"]["value"] == story["provider"].id
    assert on_behalf["name"] == "Dr Ada Okafor"
    assert on_behalf["policy"] == [f"urn:uuid:{story['delegation_id']}"]
    line_entity = add["entity"][1]
    assert line_entity["what"]["identifier"]["value"] == story["line_id"]
    assert json.loads(_detail(line_entity, "after")["valueString"])["code"] == "99214"

    change = events[5]
    assert change["action"] == "U" and change["outcomeDesc"] == "MDM supports level 3"
    change_entity = change["entity"][1]
    assert json.loads(_detail(change_entity, "before")["valueString"])["code"] == "99214"
    assert json.loads(_detail(change_entity, "after")["valueString"])["code"] == "99213"

    denied = events[4]
    assert denied["outcome"] == "4" and denied["outcomeDesc"] == "denied by policy"
    assert denied["agent"][0]["who"]["identifier"]["value"] == story["coder"].id
    assert len(denied["agent"]) == 1

    attest = events[3]
    assert attest["agent"][0]["who"]["identifier"]["value"] == story["provider"].id
    assert attest["entity"][1]["what"]["identifier"]["value"] == story["first"]["id"]


def test_auth_failures_and_delegations_appear_in_a_date_search(
    client: TestClient, story: dict[str, Any]
) -> None:
    today = date.today().isoformat()
    data = _bundle(
        client.get("/fhir/AuditEvent", params={"date": today, "_count": 500}, headers=story["hcomp"])
    )
    events = _resources(data, AuditEvent)
    failed = [e for e in events if _subtype(e) == "auth.signin" and e["outcome"] == "4"]
    assert failed and failed[-1]["type"]["code"] == "110114"
    assert failed[-1]["outcomeDesc"]
    grants = [e for e in events if _subtype(e) == "delegation.grant"]
    assert grants and grants[-1]["type"]["code"] == "110137"
    # A date range that excludes today finds nothing from this story.
    empty = _bundle(client.get("/fhir/AuditEvent", params={"date": "lt2000-01-01"}, headers=story["hcomp"]))
    assert empty["total"] == 0 and "entry" not in empty


def test_paging_links(client: TestClient, story: dict[str, Any]) -> None:
    params = {"entity": f"Encounter/{story['eid']}", "_count": 3}
    first = _bundle(client.get("/fhir/AuditEvent", params=params, headers=story["hcomp"]))
    assert first["total"] == 8 and len(first["entry"]) == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    assert parse_qs(urlsplit(links["self"]).query)["_offset"] == ["0"]
    seen = [e["resource"]["id"] for e in first["entry"]]
    url: str | None = links["next"]
    while url:
        page = _bundle(client.get(url, headers=story["hcomp"]))
        _resources(page, AuditEvent)
        seen += [e["resource"]["id"] for e in page["entry"]]
        rels = {link["relation"]: link["url"] for link in page["link"]}
        assert "previous" in rels
        url = rels.get("next")
    assert len(seen) == len(set(seen)) == 8

    big = _bundle(client.get("/fhir/AuditEvent", params={"_count": 100000}, headers=story["hcomp"]))
    assert len(big["entry"]) <= 500
    assert parse_qs(urlsplit(big["link"][0]["url"]).query)["_count"] == ["500"]


def test_provenance_per_attestation(client: TestClient, story: dict[str, Any]) -> None:
    eid = story["eid"]
    data = _bundle(
        client.get("/fhir/Provenance", params={"target": f"Encounter/{eid}"}, headers=story["hcomp"])
    )
    provenances = _resources(data, Provenance)
    assert data["total"] == 2 and [p["id"] for p in provenances] == [
        story["first"]["id"],
        story["second"]["id"],
    ]

    events = _resources(
        _bundle(
            client.get(
                "/fhir/AuditEvent",
                params={"entity": f"Encounter/{eid}", "subtype": "encounter.attest"},
                headers=story["hcomp"],
            )
        ),
        AuditEvent,
    )
    attest_seqs = []
    for event in events:
        if event["outcome"] == "0":
            chain = next(e for e in event["entity"] if e.get("name") == "ledger-event")
            attest_seqs.append(int(_detail(chain, "seq")["valueString"]))
    assert len(attest_seqs) == 2

    statuses = []
    for prov, seq in zip(provenances, attest_seqs, strict=True):
        assert prov["target"][0]["reference"] == f"Encounter/{eid}/_history/{seq}"
        assert prov["recorded"] == prov["signature"][0]["when"]
        agent = prov["agent"][0]
        assert agent["type"]["coding"][0]["code"] == "legal"
        assert agent["who"]["display"] == "Dr Ada Okafor"
        assert agent["who"]["identifier"] == {
            "system": "http://hl7.org/fhir/sid/us-npi",
            "value": "1234567893",
        }
        signature = prov["signature"][0]
        assert signature["type"][0] == {
            "system": "urn:iso-astm:E1762-95:2013",
            "code": "1.2.840.10065.1.12.1.1",
            "display": "Author's Signature",
        }
        assert signature["sigFormat"] == "application/json"
        assert signature["who"]["identifier"]["value"] == "1234567893"
        signed = json.loads(base64.b64decode(signature["data"]))
        assert signed["printed_name"] == "Dr Ada Okafor" and signed["npi"] == "1234567893"
        assert signed["credential"] == "MD" and signed["meaning"] and signed["policy_version"]
        assert len(signed["code_set_digest"]) == 64 and signed["late"] is False
        assert signed["ledger_seq"] == seq
        statuses.append(signed["status"])
    assert statuses == ["superseded", "valid"]
    assert provenances[0]["meta"]["tag"][0]["code"] == "superseded"
    digests = {
        json.loads(base64.b64decode(p["signature"][0]["data"]))["code_set_digest"] for p in provenances
    }
    assert len(digests) == 2  # the second signature covers a different code set


def test_each_search_leaves_a_fhir_search_event(client: TestClient, story: dict[str, Any]) -> None:
    hcomp, eid = story["hcomp"], story["eid"]
    before = len(_ledger_search_events(client, hcomp))
    client.get(
        "/fhir/AuditEvent", params={"entity": f"Encounter/{eid}", "date": "ge2020-01-01"}, headers=hcomp
    )
    client.get("/fhir/Provenance", params={"target": f"Encounter/{eid}"}, headers=hcomp)
    events = _ledger_search_events(client, hcomp)
    # the earlier listing itself is one more search, then the two above
    assert len(events) == before + 3
    audit_search, provenance_search = events[-2], events[-1]
    for event in (audit_search, provenance_search):
        assert event["agent"][0]["who"]["identifier"]["value"] == story["compliance"].id
        assert event["agent"][0]["role"][0]["coding"][0]["code"] == "compliance"
        assert event["type"]["code"] == "110112" and event["action"] == "E" and event["outcome"] == "0"
    query_entity = audit_search["entity"][0]
    query = json.loads(base64.b64decode(query_entity["query"]))
    assert query["entity"] == [f"Encounter/{eid}"] and query["date"] == ["ge2020-01-01"]
    detail = json.loads(_detail(query_entity, "detail")["valueString"])
    assert detail["resource"] == "AuditEvent" and detail["total"] == 8 and detail["returned"] == 8
    prov_detail = json.loads(_detail(provenance_search["entity"][0], "detail")["valueString"])
    assert prov_detail["resource"] == "Provenance" and prov_detail["total"] == 2


def test_coder_and_auditor_without_engagement_get_403_and_it_is_recorded(
    client: TestClient, people: People, story: dict[str, Any]
) -> None:
    auditor = people.make("auditor")
    for user, headers in ((story["coder"], story["hc"]), (auditor, people.headers(auditor))):
        for path, params in (
            ("/fhir/AuditEvent", {"date": ["ge2026-01-01", "le2026-12-31"]}),
            ("/fhir/Provenance", {"target": f"Encounter/{story['eid']}"}),
        ):
            response = client.get(path, params=params, headers=headers)
            assert response.status_code == 403, response.text
            assert response.json()["error"] == "Forbidden"
        data = _bundle(
            client.get("/fhir/AuditEvent", params={"subtype": "audit.read_events"}, headers=story["hcomp"])
        )
        denied = [
            e
            for e in _resources(data, AuditEvent)
            if e["agent"][0]["who"]["identifier"]["value"] == user.id and e["outcome"] == "4"
        ]
        assert len(denied) == 2
    assert client.get("/fhir/AuditEvent").status_code == 401


def test_auditor_inside_an_engagement(client: TestClient, people: People, story: dict[str, Any]) -> None:
    """A real engagement opened by compliance decides what the auditor may search."""
    auditor, officer = people.make("auditor"), people.make("compliance")
    dos = date.fromisoformat(story["dos"])
    opened = client.post(
        "/api/v1/engagements",
        headers=people.headers(officer),
        json={
            "auditor_id": auditor.id,
            "date_from": (dos - timedelta(days=10)).isoformat(),
            "date_to": (dos + timedelta(days=10)).isoformat(),
            "provider_ids": [story["provider"].id],
            "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
        },
    )
    assert opened.status_code == 201, opened.text
    headers = people.headers(auditor)
    lo, hi = (dos - timedelta(days=1)).isoformat(), (dos + timedelta(days=5)).isoformat()
    inside = {"entity": f"Encounter/{story['eid']}", "date": [f"ge{lo}", f"le{hi}"]}
    ok = client.get("/fhir/AuditEvent", params=inside, headers=headers)
    assert ok.status_code == 200, ok.text
    _resources(_bundle(ok), AuditEvent)
    prov = client.get("/fhir/Provenance", params={"target": f"Encounter/{story['eid']}"}, headers=headers)
    assert _bundle(prov)["total"] == 2
    outside = {"entity": f"Encounter/{story['eid']}", "date": ["ge2000-01-01", f"le{hi}"]}
    assert client.get("/fhir/AuditEvent", params=outside, headers=headers).status_code == 403
    unscoped = {"entity": f"Encounter/{story['eid']}"}  # the engagement's own range applies
    assert client.get("/fhir/AuditEvent", params=unscoped, headers=headers).status_code == 200
    stranger = people.headers(people.make("auditor"))
    assert client.get("/fhir/AuditEvent", params=inside, headers=stranger).status_code == 403


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/fhir/AuditEvent", {"date": "xx"}, "date"),
        ("/fhir/AuditEvent", {"date": "xx2026-01-01"}, "date"),
        ("/fhir/AuditEvent", {"date": "ne2026-01-01"}, "date"),
        ("/fhir/AuditEvent", {"date": "ge2026-13-01"}, "date"),
        ("/fhir/AuditEvent", {"date": "ge2026-01-01T10:00:00"}, "date"),
        ("/fhir/AuditEvent", {"entity": "Patient/1"}, "entity"),
        ("/fhir/AuditEvent", {"entity": ["Encounter/1", "Encounter/2"]}, "entity"),
        ("/fhir/AuditEvent", {"_count": "many"}, "_count"),
        ("/fhir/AuditEvent", {"_offset": "-1"}, "_offset"),
        ("/fhir/AuditEvent", {"subtype": "http://other|code.add"}, "subtype"),
        ("/fhir/Provenance", {}, "target"),
        ("/fhir/Provenance", {"target": "Patient/1"}, "target"),
    ],
)
def test_bad_parameters_are_422_naming_the_field(
    client: TestClient, people: People, path: str, params: dict[str, Any], field: str
) -> None:
    compliance = people.make("compliance")
    response = client.get(path, params=params, headers=people.headers(compliance))
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "InvalidInput" and body["field"] == field and body["detail"]


def test_date_parameters() -> None:
    from audit.fhir.service import parse_dates

    window = parse_dates(["ge2026-01-01", "le2026-12-31"])
    assert window.scope_from == date(2026, 1, 1) and window.scope_to == date(2026, 12, 31)
    assert [op for op, _ in window.clauses] == [">=", "<"]
    month = parse_dates(["2026-02"])
    assert month.scope_from == date(2026, 2, 1) and month.scope_to == date(2026, 2, 28)
    exact = parse_dates(["gt2026-03-01T10:00:00Z", "lt2026-04"])
    assert exact.clauses[0] == (">", datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert exact.scope_to == date(2026, 3, 31)
    assert parse_dates([]).scope_from is None
