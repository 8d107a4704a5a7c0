"""FHIR R4 AuditEvent (IHE BALP) and Provenance (US Core pattern) over a real story: searches, reads,
errors; every resource through both validators (see tests/fhir/validators.py)."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from audit.fhir import mapping
from audit.fhir.params import CEILING, FLOOR, parse_dates
from tests.conftest import People
from tests.fhir.validators import FhirCheck, node_missing, python_validate, run_node

FHIR_JSON = "application/fhir+json"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
V3_PARTICIPATION = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
INTERACTION = "http://hl7.org/fhir/restful-interaction"
PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"


def _ok(response: Any, check: FhirCheck, resource_type: str = "Bundle") -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    data: dict[str, Any] = check(response.json())
    assert data["resourceType"] == resource_type
    return data


def _resources(bundle: dict[str, Any]) -> list[dict[str, Any]]:
    assert bundle["type"] == "searchset"
    resources = []
    for entry in bundle.get("entry", []):
        resource = entry["resource"]
        assert entry["fullUrl"].startswith("http")
        assert entry["fullUrl"].endswith(f"/fhir/{resource['resourceType']}/{resource['id']}")
        resources.append(resource)
    return resources


def _outcome(response: Any, check: FhirCheck, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    data: dict[str, Any] = check(response.json())
    assert data["resourceType"] == "OperationOutcome"
    issue: dict[str, Any] = data["issue"][0]
    assert issue["severity"] == "error" and issue["diagnostics"]
    return issue


def _ours(event: dict[str, Any]) -> str:
    return next(str(c["code"]) for c in event["subtype"] if c["system"] == mapping.EVENT_TYPE_SYSTEM)


def _interaction(event: dict[str, Any]) -> list[str]:
    return [c["code"] for c in event["subtype"] if c["system"] == INTERACTION]


def _agents(event: dict[str, Any], system: str, code: str) -> list[dict[str, Any]]:
    return [
        a
        for a in event["agent"]
        if any(c["system"] == system and c["code"] == code for c in a["type"]["coding"])
    ]


def _user(event: dict[str, Any]) -> dict[str, Any]:
    (user,) = [a for a in event["agent"] if a["requestor"]]
    return user


def _entities(event: dict[str, Any], system: str, code: str) -> list[dict[str, Any]]:
    return [e for e in event["entity"] if e["type"]["system"] == system and e["type"]["code"] == code]


def _detail(entity: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(d for d in entity.get("detail", []) if d["type"] == kind)


def _chain(event: dict[str, Any]) -> dict[str, Any]:
    return next(e for e in event["entity"] if e.get("name") == "ledger-event")


def _search(
    client: TestClient, check: FhirCheck, headers: dict[str, str], **params: Any
) -> list[dict[str, Any]]:
    return _resources(_ok(client.get("/fhir/AuditEvent", params=params, headers=headers), check))


def assert_balp(event: dict[str, Any], *, eid: str | None = None) -> None:
    """The elements every BALP pattern asks for, on any of our AuditEvents."""
    assert event["recorded"].endswith("Z")
    assert sum(1 for c in event["subtype"] if c["system"] == mapping.EVENT_TYPE_SYSTEM) == 1
    interaction = _interaction(event)
    read = interaction == ["read"]
    client, server = (
        _agents(event, DCM, "110152" if read else "110153"),
        _agents(event, DCM, "110153" if read else "110152"),
    )
    assert len(client) == len(server) == 1 and client != server
    assert client[0]["requestor"] is False and server[0]["requestor"] is False
    assert server[0]["who"]["identifier"]["value"] == event["source"]["site"]
    assert server[0]["network"]["type"] == "5" and server[0]["network"]["address"].endswith("/fhir")
    users = [a for a in event["agent"] if a["requestor"]]
    assert len(users) == 1
    expected_user = "IRCP" if interaction in (["read"], ["search"]) else "AUT"
    assert users[0]["type"]["coding"][0] == {
        "system": V3_PARTICIPATION,
        "code": expected_user,
        "display": "information recipient" if expected_user == "IRCP" else "author (originator)",
    }
    # Exactly one System Object: the one BALP's data (or query) slice matches.
    system_objects = _entities(event, ENTITY_TYPE, "2")
    assert len(system_objects) == 1
    if interaction == ["search"] and system_objects[0]["role"]["code"] == "24":
        assert "what" not in system_objects[0] and "detail" not in system_objects[0]
        assert system_objects[0]["query"]
    elif interaction:
        assert system_objects[0]["role"] == {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"}
        assert system_objects[0]["what"]
    if eid is not None:
        what = system_objects[0]["what"]["reference"]
        assert what == f"Encounter/{eid}" or what.startswith(f"Encounter/{eid}/_history/")
        (patient,) = _entities(event, ENTITY_TYPE, "1")
        assert patient["role"] == {"system": OBJECT_ROLE, "code": "1", "display": "Patient"}
        assert patient["what"] == {
            "type": "Patient",
            "identifier": {"system": mapping.PATIENT_REF_SYSTEM, "value": "MRN-000123"},
        }
    # Every event ties back to the chain: leaf hash = SHA-256(0x00 || payload), id = seq.
    chain = _chain(event)
    payload = base64.b64decode(_detail(chain, "payload")["valueBase64Binary"])
    assert hashlib.sha256(b"\x00" + payload).hexdigest() == _detail(chain, "leaf_hash")["valueString"]
    stored = json.loads(payload)
    assert str(stored["seq"]) == event["id"] == _detail(chain, "seq")["valueString"]
    assert stored["event_id"] == _detail(chain, "event_id")["valueString"]
    assert stored["type"] == _ours(event)
    if stored["outcome"] == "allowed":
        assert event["outcome"] == "0" and "outcomeDesc" not in event
    else:
        assert event["outcome"] == "4" and event["outcomeDesc"] == stored["reason"]


def test_audit_events_for_an_encounter_follow_balp(
    client: TestClient, check: FhirCheck, story: dict[str, Any]
) -> None:
    eid, hcomp = story["eid"], story["hcomp"]
    year = date.today().year
    dates = [f"ge{year - 1}-01-01", f"le{year + 1}-12-31"]
    events = _search(client, check, hcomp, entity=f"Encounter/{eid}", date=dates)
    assert [_ours(e) for e in events] == [
        "encounter.create",
        "code.add",
        "code.add",
        "encounter.attest",
        "encounter.attest",  # the coder's denied attempt
        "code.change",
        "attestation.supersede",
        "encounter.attest",
    ]
    assert [_interaction(e) for e in events] == [["create"]] * 5 + [["update"]] * 2 + [["create"]]
    assert [e["subtype"][0]["display"] for e in events] == [_interaction(e)[0] for e in events]
    for event in events:
        assert_balp(event, eid=eid)
        assert event["type"] == {
            "system": "http://terminology.hl7.org/CodeSystem/audit-event-type",
            "code": "rest",
            "display": "RESTful Operation",
        }
        assert event["action"] == {"create": "C", "update": "U"}[_interaction(event)[0]]

    add = events[1]
    (user,) = _agents(add, V3_PARTICIPATION, "AUT")
    assert user["who"]["identifier"] == {"system": mapping.USER_ID_SYSTEM, "value": story["coder"].id}
    assert user["who"]["display"] == story["coder"].username and user["name"] == "Wei Chen"
    assert user["role"][0]["coding"][0] == {"system": mapping.ROLE_SYSTEM, "code": "coder"}
    (on_behalf,) = _agents(add, V3_PARTICIPATION, "RESP")
    assert on_behalf["requestor"] is False and on_behalf["name"] == "Dr Ada Okafor"
    assert on_behalf["who"]["identifier"]["value"] == story["provider"].id
    assert on_behalf["policy"] == [f"urn:uuid:{story['delegation_id']}"]
    (data,) = _entities(add, ENTITY_TYPE, "2")
    assert data["what"]["reference"] == f"Encounter/{eid}/_history/{add['id']}"  # the state it made
    (line,) = _entities(add, mapping.ENTITY_TYPE_SYSTEM, "code_line")
    assert line["what"]["identifier"]["value"] == story["line_id"]
    assert json.loads(_detail(line, "after")["valueString"])["code"] == "99214"

    change = events[5]
    assert change["action"] == "U" and "outcomeDesc" not in change
    (line,) = _entities(change, mapping.ENTITY_TYPE_SYSTEM, "code_line")
    assert _detail(line, "reason")["valueString"] == "MDM supports level 3"  # the why, not the outcome
    assert json.loads(_detail(line, "before")["valueString"])["code"] == "99214"
    assert json.loads(_detail(line, "after")["valueString"])["code"] == "99213"

    denied = events[4]
    assert denied["outcome"] == "4" and denied["outcomeDesc"] == "denied by policy"
    assert _agents(denied, V3_PARTICIPATION, "AUT")[0]["who"]["identifier"]["value"] == story["coder"].id
    assert not _agents(denied, V3_PARTICIPATION, "RESP")
    (data,) = _entities(denied, ENTITY_TYPE, "2")
    assert data["what"]["reference"] == f"Encounter/{eid}"  # no new state

    attest = events[3]
    assert _agents(attest, V3_PARTICIPATION, "AUT")[0]["who"]["identifier"]["value"] == story["provider"].id
    (signed,) = _entities(attest, mapping.ENTITY_TYPE_SYSTEM, "attestation")
    assert signed["what"]["identifier"]["value"] == story["first"]["id"]


def test_auth_failures_and_delegations_appear_in_a_date_search(
    client: TestClient, check: FhirCheck, story: dict[str, Any]
) -> None:
    events = _search(client, check, story["hcomp"], date=date.today().isoformat(), _count=500)
    failed = [e for e in events if _ours(e) == "auth.signin" and e["outcome"] == "4"]
    assert failed and failed[-1]["type"]["code"] == "110114" and failed[-1]["outcomeDesc"]
    grants = [e for e in events if _ours(e) == "delegation.grant"]
    assert grants and grants[-1]["type"]["code"] == "110137" and _interaction(grants[-1]) == ["create"]
    for event in grants:
        assert_balp(event)
        (data,) = _entities(event, ENTITY_TYPE, "2")  # no encounter: the delegation is the data
        assert data["what"]["identifier"]["value"] == story["delegation_id"]
    # A date range that excludes today finds nothing from this story.
    empty = _ok(
        client.get("/fhir/AuditEvent", params={"date": "lt2000-01-01"}, headers=story["hcomp"]), check
    )
    assert empty["total"] == 0 and "entry" not in empty


def test_paging_follows_next_links(client: TestClient, check: FhirCheck, story: dict[str, Any]) -> None:
    params = {"entity": f"Encounter/{story['eid']}", "_count": 3}
    first = _ok(client.get("/fhir/AuditEvent", params=params, headers=story["hcomp"]), check)
    assert first["total"] == 8 and len(first["entry"]) == 3
    links = {link["relation"]: link["url"] for link in first["link"]}
    assert "previous" not in links
    assert parse_qs(urlsplit(links["self"]).query)["_offset"] == ["0"]
    seen = [e["resource"]["id"] for e in first["entry"]]
    url: str | None = links["next"]
    while url:
        page = _ok(client.get(url, headers=story["hcomp"]), check)
        seen += [r["id"] for r in _resources(page)]
        rels = {link["relation"]: link["url"] for link in page["link"]}
        assert "previous" in rels
        url = rels.get("next")
    assert len(seen) == len(set(seen)) == 8

    big = _ok(client.get("/fhir/AuditEvent", params={"_count": 100000}, headers=story["hcomp"]), check)
    assert len(big["entry"]) <= 500
    assert parse_qs(urlsplit(big["link"][0]["url"]).query)["_count"] == ["500"]


def test_provenance_per_attestation_on_us_core_pattern(
    client: TestClient, check: FhirCheck, story: dict[str, Any]
) -> None:
    eid, hcomp = story["eid"], story["hcomp"]
    data = _ok(client.get("/fhir/Provenance", params={"target": f"Encounter/{eid}"}, headers=hcomp), check)
    provenances = _resources(data)
    assert data["total"] == 2
    assert [p["id"] for p in provenances] == [story["first"]["id"], story["second"]["id"]]
    attests = _search(client, check, hcomp, entity=f"Encounter/{eid}", subtype="encounter.attest")
    attest_seqs = [int(e["id"]) for e in attests if e["outcome"] == "0"]
    assert len(attest_seqs) == 2

    signer = {
        "display": "Dr Ada Okafor",
        "identifier": {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"},
    }
    statuses = []
    for prov, seq in zip(provenances, attest_seqs, strict=True):
        assert prov["target"] == [
            {
                "reference": f"Encounter/{eid}/_history/{seq}",
                "display": f"encounter as attested (ledger seq {seq})",
            }
        ]
        assert prov["recorded"] == prov["occurredDateTime"] == prov["signature"][0]["when"]
        assert prov["activity"]["coding"][0] == {
            "system": "http://terminology.hl7.org/CodeSystem/v3-DocumentCompletion",
            "code": "LA",
            "display": "legally authenticated",
        }
        (author,) = _agents(prov, PARTICIPANT, "author")
        (legal,) = _agents(prov, PARTICIPANT, "legal")
        assert author["who"] == legal["who"] == signer
        # The coder entered (and changed) the codes, on behalf of the provider who signed.
        (enterer,) = _agents(prov, PARTICIPANT, "enterer")
        assert enterer["who"]["identifier"] == {"system": mapping.USER_ID_SYSTEM, "value": story["coder"].id}
        assert enterer["who"]["display"] == "Wei Chen"
        assert enterer["role"][0]["coding"][0]["code"] == "coder"
        assert enterer["onBehalfOf"] == signer
        assert len(prov["agent"]) == 3
        signature = prov["signature"][0]
        assert signature["type"] == [
            {
                "system": "urn:iso-astm:E1762-95:2013",
                "code": "1.2.840.10065.1.12.1.1",
                "display": "Author's Signature",
            }
        ]
        assert signature["who"] == author["who"]  # the signature type matches the author agent
        assert signature["sigFormat"] == "application/json"
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


def test_a_provider_who_codes_alone_has_no_enterer(
    client: TestClient, check: FhirCheck, people: People
) -> None:
    from tests.support import PASSWORD

    provider = people.make("provider", name="Dr Solo", npi="1245319599")
    hp = people.headers(provider)
    dos = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    body = {
        "external_id": "E-SOLO",
        "patient_ref": "MRN-9",
        "date_of_service": dos,
        "rendering_provider_id": provider.id,
    }
    eid = client.post("/api/v1/encounters", json=body, headers=hp).json()["id"]
    assert (
        client.post(
            f"/api/v1/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"}, headers=hp
        ).status_code
        == 201
    )
    signed = client.post(f"/api/v1/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert signed.status_code == 201, signed.text
    officer = people.headers(people.make("compliance"))
    prov = _ok(client.get(f"/fhir/Provenance/{signed.json()['id']}", headers=officer), check, "Provenance")
    assert [a["type"]["coding"][0]["code"] for a in prov["agent"]] == ["author", "legal"]


def test_each_search_and_read_leaves_an_event(
    client: TestClient, check: FhirCheck, story: dict[str, Any]
) -> None:
    hcomp, eid = story["hcomp"], story["eid"]
    before = len(_search(client, check, hcomp, subtype="fhir.search,fhir.read", _count=500))
    client.get(
        "/fhir/AuditEvent", params={"entity": f"Encounter/{eid}", "date": "ge2020-01-01"}, headers=hcomp
    )
    client.get("/fhir/Provenance", params={"target": f"Encounter/{eid}"}, headers=hcomp)
    client.get(f"/fhir/Provenance/{story['first']['id']}", headers=hcomp)
    client.get("/fhir/AuditEvent/999999999", headers=hcomp)  # not found: a failed read
    events = _search(client, check, hcomp, subtype="fhir.search,fhir.read", _count=500)
    # the earlier listing itself is one more search, then the four above
    assert len(events) == before + 5
    audit_search, provenance_search, read, missing = events[-4:]
    for event in (audit_search, provenance_search):
        assert_balp(event)
        assert _ours(event) == "fhir.search" and _interaction(event) == ["search"]
        (user,) = _agents(event, V3_PARTICIPATION, "IRCP")
        assert user["who"]["identifier"]["value"] == story["compliance"].id
        assert user["role"][0]["coding"][0]["code"] == "compliance"
        assert event["type"]["code"] == "rest" and event["action"] == "E" and event["outcome"] == "0"
    (query,) = _entities(audit_search, ENTITY_TYPE, "2")
    assert query["role"] == {"system": OBJECT_ROLE, "code": "24", "display": "Query"}
    asked = json.loads(base64.b64decode(query["query"]))
    assert asked["entity"] == [f"Encounter/{eid}"] and asked["date"] == ["ge2020-01-01"]
    assert parse_qs(query["description"])["entity"] == [f"Encounter/{eid}"]
    (results,) = _entities(audit_search, mapping.ENTITY_TYPE_SYSTEM, "fhir")
    detail = json.loads(_detail(results, "detail")["valueString"])
    assert detail["resource"] == "AuditEvent" and detail["total"] == 8 and detail["returned"] == 8
    (results,) = _entities(provenance_search, mapping.ENTITY_TYPE_SYSTEM, "fhir")
    assert json.loads(_detail(results, "detail")["valueString"])["total"] == 2
    for event, outcome in ((read, "0"), (missing, "4")):
        assert_balp(event)
        assert _ours(event) == "fhir.read" and _interaction(event) == ["read"] and event["action"] == "R"
        assert event["outcome"] == outcome
    assert (
        json.loads(_detail(_entities(read, ENTITY_TYPE, "2")[0], "detail")["valueString"])["id"]
        == story["first"]["id"]
    )
    assert missing["outcomeDesc"] == "no such resource in the reader's scope"


def test_read_by_id(client: TestClient, check: FhirCheck, story: dict[str, Any]) -> None:
    hcomp, eid = story["hcomp"], story["eid"]
    listed = _search(client, check, hcomp, entity=f"Encounter/{eid}")
    for event in (listed[0], listed[-1]):
        one = _ok(client.get(f"/fhir/AuditEvent/{event['id']}", headers=hcomp), check, "AuditEvent")
        assert one == event
    prov = _ok(client.get(f"/fhir/Provenance/{story['second']['id']}", headers=hcomp), check, "Provenance")
    assert prov["meta"]["tag"][0]["code"] == "valid"
    for path in ("/fhir/AuditEvent/999999999", "/fhir/AuditEvent/abc", "/fhir/AuditEvent/" + "9" * 30,
                 "/fhir/Provenance/no-such-id", "/fhir/Provenance/" + "x" * 100):  # fmt: skip
        issue = _outcome(client.get(path, headers=hcomp), check, 404)
        assert issue["code"] == "not-found"
    for path in ("/fhir/AuditEvent/1", f"/fhir/Provenance/{story['first']['id']}"):
        issue = _outcome(client.get(path), check, 401)
        assert issue["code"] == "login"
        issue = _outcome(client.get(path, headers=story["hc"]), check, 403)
        assert issue["code"] == "forbidden" and issue["details"]["coding"]


def test_reads_outside_an_auditors_engagement_are_404(
    client: TestClient, check: FhirCheck, people: People, story: dict[str, Any]
) -> None:
    """The read's SQL is filtered by the same scope as the search: outside it is 'not found'."""
    auditor, officer = people.make("auditor"), people.make("compliance")
    dos = date.fromisoformat(story["dos"])
    inside = {
        "date_from": (dos - timedelta(days=10)).isoformat(),
        "date_to": (dos + timedelta(days=10)).isoformat(),
    }
    outside = {"date_from": "2001-01-01", "date_to": "2001-12-31"}
    stranger = people.make("auditor")
    for who, window in ((auditor, inside), (stranger, outside)):
        opened = client.post(
            "/api/v1/engagements",
            headers=people.headers(officer),
            json={**window, "auditor_id": who.id, "provider_ids": [story["provider"].id],
                  "expires_at": (datetime.now(UTC) + timedelta(days=1)).isoformat()},
        )  # fmt: skip
        assert opened.status_code == 201, opened.text
    hcomp = story["hcomp"]
    code_add = _search(client, check, hcomp, entity=f"Encounter/{story['eid']}", subtype="code.add")[0]
    coder_signin = [e for e in _search(client, check, hcomp, subtype="auth.signin", _count=500)][-1]
    ha, hs = people.headers(auditor), people.headers(stranger)
    assert (
        _ok(client.get(f"/fhir/AuditEvent/{code_add['id']}", headers=ha), check, "AuditEvent")["id"]
        == code_add["id"]
    )
    prov = f"/fhir/Provenance/{story['first']['id']}"
    assert _ok(client.get(prov, headers=ha), check, "Provenance")["id"] == story["first"]["id"]
    # A sign-in is no encounter's: outside every engagement, as the search agrees.
    _outcome(client.get(f"/fhir/AuditEvent/{coder_signin['id']}", headers=ha), check, 404)
    searched = _search(client, check, ha, subtype="auth.signin", _count=500)
    assert coder_signin["id"] not in {e["id"] for e in searched}
    for path in (f"/fhir/AuditEvent/{code_add['id']}", prov):
        _outcome(client.get(path, headers=hs), check, 404)


def test_coder_and_auditor_without_engagement_get_403_and_it_is_recorded(
    client: TestClient, check: FhirCheck, people: People, story: dict[str, Any]
) -> None:
    auditor = people.make("auditor")
    for user, headers in ((story["coder"], story["hc"]), (auditor, people.headers(auditor))):
        for path, params in (
            ("/fhir/AuditEvent", {"date": ["ge2026-01-01", "le2026-12-31"]}),
            ("/fhir/Provenance", {"target": f"Encounter/{story['eid']}"}),
        ):
            issue = _outcome(client.get(path, params=params, headers=headers), check, 403)
            assert issue["code"] == "forbidden" and issue["details"]["text"] == "Forbidden"
            assert all(c["system"] == mapping.RULE_SYSTEM for c in issue["details"]["coding"])
        events = _search(client, check, story["hcomp"], subtype="audit.read_events")
        denied = [
            e for e in events if _user(e)["who"]["identifier"]["value"] == user.id and e["outcome"] == "4"
        ]
        assert len(denied) == 2
    issue = _outcome(client.get("/fhir/AuditEvent"), check, 401)
    assert issue["code"] == "login"


def test_auditor_inside_an_engagement(
    client: TestClient, check: FhirCheck, people: People, story: dict[str, Any]
) -> None:
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
    assert _resources(_ok(client.get("/fhir/AuditEvent", params=inside, headers=headers), check))
    prov = client.get("/fhir/Provenance", params={"target": f"Encounter/{story['eid']}"}, headers=headers)
    assert _ok(prov, check)["total"] == 2
    # `date` is when events were recorded, not a date of service: it narrows inside the engagement
    recorded = {"entity": f"Encounter/{story['eid']}", "date": ["ge2000-01-01", f"le{hi}"]}
    _ok(client.get("/fhir/AuditEvent", params=recorded, headers=headers), check)
    unscoped = {"entity": f"Encounter/{story['eid']}"}  # the engagement's own range applies
    _ok(client.get("/fhir/AuditEvent", params=unscoped, headers=headers), check)
    stranger = people.headers(people.make("auditor"))
    _outcome(client.get("/fhir/AuditEvent", params=inside, headers=stranger), check, 403)


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/fhir/AuditEvent", {"date": "xx"}, "date"),
        ("/fhir/AuditEvent", {"date": "xx2026-01-01"}, "date"),
        ("/fhir/AuditEvent", {"date": "ne2026-01-01"}, "date"),
        ("/fhir/AuditEvent", {"date": "ge2026-13-01"}, "date"),
        ("/fhir/AuditEvent", {"date": "2026-02-30"}, "date"),
        ("/fhir/AuditEvent", {"date": "ge2026-01-01T10:00:00"}, "date"),  # a time needs a zone
        ("/fhir/AuditEvent", {"date": "2026-01-01T24:00:00Z"}, "date"),
        ("/fhir/AuditEvent", {"date": "2026-01-01T10:00:00+15:00"}, "date"),
        ("/fhir/AuditEvent", {"date": "2026-01-01T10:00:00.1234567890Z"}, "date"),
        ("/fhir/AuditEvent", {"date": "0000"}, "date"),
        ("/fhir/AuditEvent", {"date": "2026-1-01"}, "date"),
        ("/fhir/AuditEvent", {"entity": "Patient/1"}, "entity"),
        ("/fhir/AuditEvent", {"entity": ["Encounter/1", "Encounter/2"]}, "entity"),
        ("/fhir/AuditEvent", {"_count": "many"}, "_count"),
        ("/fhir/AuditEvent", {"_offset": "-1"}, "_offset"),
        ("/fhir/AuditEvent", {"subtype": "http://other|code.add"}, "subtype"),
        ("/fhir/Provenance", {}, "target"),
        ("/fhir/Provenance", {"target": "Patient/1"}, "target"),
    ],
)
def test_bad_parameters_are_400_operation_outcomes_naming_the_parameter(
    client: TestClient, check: FhirCheck, people: People, path: str, params: dict[str, Any], field: str
) -> None:
    compliance = people.make("compliance")
    issue = _outcome(client.get(path, params=params, headers=people.headers(compliance)), check, 400)
    assert issue["code"] == "invalid" and issue["expression"] == [field]
    assert issue["details"]["text"] == "InvalidInput" and field in issue["diagnostics"]


@pytest.mark.parametrize(
    "value",
    [
        "2026", "2026-03", "2026-03-02", "ge2026-03-02T10:00Z", "le2026-03-02T10:00:05+14:00",
        "lt2026-03-02T10:00:05.123456789-05:30", "gt2016-12-31T23:59:60Z", "eq2026-02-28",
        "ge0001", "le9999-12-31T23:59:59-14:00", "gt1899-12", "lt2101-01-01T00:00:00Z", "2024-02-29",
    ],
)  # fmt: skip
def test_every_valid_fhir_date_is_accepted(
    client: TestClient, check: FhirCheck, people: People, value: str
) -> None:
    headers = people.headers(people.make("compliance"))
    bundle = _ok(client.get("/fhir/AuditEvent", params={"date": value}, headers=headers), check)
    assert parse_qs(urlsplit(bundle["link"][0]["url"]).query)["date"] == [value]


def test_date_parameters_cover_their_precision() -> None:
    window = parse_dates(["ge2026-01-01", "le2026-12-31"])
    assert window.scope_from == date(2026, 1, 1) and window.scope_to == date(2026, 12, 31)
    assert [op for op, _ in window.clauses] == [">=", "<"]
    month = parse_dates(["2026-02"])
    assert month.scope_from == date(2026, 2, 1) and month.scope_to == date(2026, 2, 28)
    assert month.clauses == (
        (">=", datetime(2026, 2, 1, tzinfo=UTC)),
        ("<", datetime(2026, 3, 1, tzinfo=UTC)),
    )
    # A second is a period: after 10:00:00 starts at 10:00:01; a zone is converted to UTC.
    exact = parse_dates(["gt2026-03-01T10:00:00Z", "lt2026-04"])
    assert exact.clauses[0] == (">=", datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC))
    assert exact.scope_to == date(2026, 3, 31)
    minute = parse_dates(["2026-03-01T10:00+02:00"])
    assert minute.clauses == (
        (">=", datetime(2026, 3, 1, 8, tzinfo=UTC)),
        ("<", datetime(2026, 3, 1, 8, 1, tzinfo=UTC)),
    )
    fraction = parse_dates(["le2026-03-01T10:00:00.5Z"])
    assert fraction.clauses == (("<=", datetime(2026, 3, 1, 10, 0, 0, 500000, tzinfo=UTC)),)
    assert parse_dates(["ge0001"]).clauses == ((">=", FLOOR),)
    assert parse_dates(["le9999-12-31T23:59:59-14:00"]).clauses == (("<", CEILING),)
    assert parse_dates([]).scope_from is None


def test_capability_statement(client: TestClient, check: FhirCheck) -> None:
    statement = _ok(client.get("/fhir/metadata"), check, "CapabilityStatement")
    assert statement["fhirVersion"] == "4.0.1" and statement["kind"] == "instance"
    assert statement["format"] == ["application/fhir+json"]
    assert statement["implementation"]["url"].endswith("/fhir")
    resources = {r["type"]: r for r in statement["rest"][0]["resource"]}
    assert set(resources) == {"AuditEvent", "Provenance"}
    for resource in resources.values():
        assert [i["code"] for i in resource["interaction"]] == ["read", "search-type"]
    assert {p["name"] for p in resources["AuditEvent"]["searchParam"]} == {"date", "entity", "subtype"}
    assert {p["name"]: p["type"] for p in resources["Provenance"]["searchParam"]} == {"target": "reference"}


def test_unknown_fhir_paths_and_methods_are_operation_outcomes(client: TestClient, check: FhirCheck) -> None:
    assert _outcome(client.get("/fhir/Patient/1"), check, 404)["code"] == "not-found"
    assert _outcome(client.delete("/fhir/AuditEvent"), check, 405)["code"] == "not-supported"


def test_npm_validator_is_installed() -> None:
    """Reports, as a skip with the reason, when the npm validator cannot run (the other tests then
    validate with the R4B models only)."""
    reason = node_missing()
    if reason is not None:
        pytest.skip(f"npm fhir validator not run: {reason}")


def test_both_validators_accept_ours_and_refuse_a_broken_copy(
    client: TestClient, check: FhirCheck, story: dict[str, Any]
) -> None:
    """Neither validator passes everything: each refuses our own resources once they are broken."""
    hcomp = story["hcomp"]
    event = _search(client, check, hcomp, entity=f"Encounter/{story['eid']}")[1]
    prov = _ok(client.get(f"/fhir/Provenance/{story['first']['id']}", headers=hcomp), check, "Provenance")
    broken = [
        {**event, "action": "Q"},  # not in the AuditEventAction value set
        {**event, "outcomeDescription": "x"},  # no such element
        {**prov, "agent": [{**prov["agent"][0], "who": "Dr Okafor"}]},  # a string for a Reference
        {k: v for k, v in prov.items() if k != "target"},  # target is 1..*
    ]
    for resource in broken[1:]:
        with pytest.raises(ValidationError):
            python_validate(resource)
    if node_missing() is not None:
        pytest.skip(f"npm fhir validator not run: {node_missing()}")
    verdicts = run_node([event, prov, *broken])
    assert [v["valid"] for v in verdicts] == [True, True, False, False, False, False], verdicts
