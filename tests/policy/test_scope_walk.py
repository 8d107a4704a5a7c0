"""Every read endpoint, walked as a scoped auditor, a coder with one delegation and a provider, over an
organisation with other providers, other dates and other people's events: nothing outside each
reader's scope comes back, in any format (JSON, CSV, PDF, FHIR, export bundles and the files in them).

The routes are enumerated from the app itself: a new route that is neither walked here nor listed as
a write fails `test_every_route_is_walked_or_is_a_write`.

What each reader may see is stated here independently of `audit.policy.scope`: by construction of the
organisation (which encounters, people, delegations are in scope) and, for ledger events, by the rule
the README documents, applied in Python to the decoded payloads (`allowed_seqs`).
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.policy import filters
from audit.policy.scope import Area, ReadScope
from audit.report.service import NAMES, REPORTS
from tests.conftest import People
from tests.fhir.validators import FhirCheck
from tests.support import PASSWORD

API = "/api/v1"
FORMATS = ("json", "csv", "pdf")
DELEGATION_RECORDS = ("delegation.grant", "delegation.revoke")
NPI = {"P1": "1987654328", "P2": "1234567893"}


def day(days_ago: int) -> str:
    return (datetime.now(UTC).date() - timedelta(days=days_ago)).isoformat()


# --- the organisation ----------------------------------------------------------------------------------


@dataclass
class World:
    client: TestClient
    people: People
    ids: dict[str, str] = field(default_factory=dict)  # user key -> id
    names: dict[str, str] = field(default_factory=dict)
    headers: dict[str, dict[str, str]] = field(default_factory=dict)
    enc: dict[str, dict[str, Any]] = field(
        default_factory=dict
    )  # key -> id, external_id, patient_ref, lines, ...
    delegations: dict[str, str] = field(default_factory=dict)
    engagements: dict[str, str] = field(default_factory=dict)

    def call(self, who: str, method: str, url: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
        return self.client.request(method, url, headers={**self.headers[who], **(headers or {})}, **kw)

    def ok(self, who: str, method: str, url: str, **kw: Any) -> Any:
        r = self.call(who, method, url, **kw)
        assert r.status_code in (200, 201), r.text
        return r.json()

    def encounter(
        self, key: str, who: str, provider: str, days_ago: int, supervising: tuple[str, ...] = ()
    ) -> None:
        body = {
            "external_id": f"EXT-{key}-7Q",
            "patient_ref": f"MRN-{key}-5Z",
            "date_of_service": day(days_ago),
            "rendering_provider_id": self.ids[provider],
            "supervising_provider_ids": [self.ids[s] for s in supervising],
        }
        created = self.ok(who, "POST", f"{API}/encounters", json=body)
        self.enc[key] = {**body, "id": created["id"], "lines": [], "attestations": []}

    def code(self, key: str, who: str, code: str, expect: int = 201) -> None:
        r = self.call(
            who, "POST", f"{API}/encounters/{self.enc[key]['id']}/codes", json={"system": "CPT", "code": code}
        )
        assert r.status_code == expect, r.text
        if expect == 201:
            self.enc[key]["lines"].append(r.json()["id"])

    def attest(self, key: str, who: str) -> None:
        signed = self.ok(
            who, "POST", f"{API}/encounters/{self.enc[key]['id']}/attestations", json={"password": PASSWORD}
        )
        self.enc[key]["attestations"].append(signed["id"])


def build(client: TestClient, people: People) -> World:
    """P1 (in scope) and P2 (not); coders K1 (P1, DOS window 15..5 days ago), K2 (P2), K3 (P1, DOS
    window 90..70 days ago); auditor A (P1, last 30 days), auditor A2 (P2); compliance C; admin ADM.

    E_in   P1 10d: K1 creates and codes, P1 attests, K1 changes, C flags     auditor, coder, provider
    E_in2  P1 20d: P1 creates and codes; K1 is refused (outside its window)  auditor, provider
    E_old  P1 60d: P1 creates, codes and attests                             provider
    E_p2   P2 10d: K2 creates and codes, P2 attests; K1 is refused            nobody
    E_p2s  P2 12d, supervised by P1: P2 creates and codes                     provider (encounter reads)
    E_p2o  P2 60d: K2 creates and codes                                       nobody
    Plus a failed sign-in of P2, user creation, engagements, and the delegation grants.
    """
    w = World(client, people)
    for key, roles, name in (
        ("C", ("compliance",), "Cora Compliance-Lead"),
        ("ADM", ("admin",), "Adam Admin-Person"),
        ("P1", ("provider",), "Dr Ada Inscope-Okafor"),
        ("P2", ("provider",), "Dr Ben Outside-Stone"),
        ("K1", ("coder",), "Kim Delegated-Coder"),
        ("K2", ("coder",), "Kai Other-Coder"),
        ("K3", ("coder",), "Kit Oldwindow-Coder"),
        ("A", ("auditor",), "Ann Scoped-Auditor"),
        ("A2", ("auditor",), "Alf Other-Auditor"),
    ):
        user = people.make(*roles, name=name, npi=NPI.get(key))
        w.ids[key], w.names[key] = user.id, name
        w.headers[key] = people.headers(user)
    grants = (("P1K1", "P1", "K1", 15, 5), ("P1K3", "P1", "K3", 90, 70), ("P2K2", "P2", "K2", None, None))
    for key, provider, coder, start, end in grants:
        body: dict[str, Any] = {
            "coder_id": w.ids[coder],
            "code_systems": ["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"],
            "valid_until": (datetime.now(UTC) + timedelta(days=30)).isoformat(),
        }
        if start is not None and end is not None:
            body.update(dos_from=day(start), dos_until=day(end))
        w.delegations[key] = w.ok(provider, "POST", f"{API}/delegations", json=body)["id"]
    w.encounter("E_in", "K1", "P1", 10)
    w.code("E_in", "K1", "99213")
    w.attest("E_in", "P1")
    line = f"{API}/encounters/{w.enc['E_in']['id']}/codes/{w.enc['E_in']['lines'][0]}"
    change = {"code": "99214", "reason": "documentation supports level 4"}
    r = w.call("K1", "PATCH", line, json=change, headers={"If-Match": '"1"'})
    assert r.status_code == 200, r.text
    w.ok(
        "C", "POST", f"{API}/encounters/{w.enc['E_in']['id']}/flags", json={"text": "review the level change"}
    )
    w.encounter("E_in2", "P1", "P1", 20)
    w.code("E_in2", "P1", "99212")
    w.code("E_in2", "K1", "99215", expect=403)
    w.encounter("E_old", "P1", "P1", 60)
    w.code("E_old", "P1", "99203")
    w.attest("E_old", "P1")
    w.encounter("E_p2", "K2", "P2", 10)
    w.code("E_p2", "K2", "99204")
    w.attest("E_p2", "P2")
    w.code("E_p2", "K1", "99205", expect=403)
    w.encounter("E_p2s", "P2", "P2", 12, supervising=("P1",))
    w.code("E_p2s", "P2", "99211")
    w.encounter("E_p2o", "K2", "P2", 60)
    w.code("E_p2o", "K2", "99202")
    bad = client.post(f"{API}/auth/token", data={"username": "provider-no-such", "password": "x"})
    assert bad.status_code == 401
    until = (datetime.now(UTC) + timedelta(days=5)).isoformat()
    for key, auditor, provider, start in (("A", "A", "P1", 30), ("A2", "A2", "P2", 90)):
        body = {
            "auditor_id": w.ids[auditor],
            "date_from": day(start),
            "date_to": day(0),
            "provider_ids": [w.ids[provider]],
            "expires_at": until,
            "purpose": f"review {key}",
        }
        w.engagements[key] = w.ok("C", "POST", f"{API}/engagements", json=body)["id"]
    return w


# --- who may see what ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """What one reader may see through one kind of endpoint: encounters (whose events are visible),
    people, delegations (whose grant/revoke events are visible) and engagements."""

    encounters: frozenset[str]
    people: frozenset[str]
    delegations: frozenset[str]
    engagements: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Persona:
    user: str
    view: View  # reports, samples, exports, events, FHIR, lists
    encounter_view: View  # encounter get, list and history
    must_succeed: tuple[str, ...]  # labels of requests that have to answer 200/201


def _v(encounters: str, people: str, delegations: str = "", engagements: str = "") -> View:
    return View(*(frozenset(s.split()) for s in (encounters, people, delegations, engagements)))


AUDITOR = _v("E_in E_in2", "A C P1 K1", "P1K1", "A")
CODER = _v("E_in", "K1 P1 C", "P1K1")
PROVIDER = _v("E_in E_in2 E_old", "P1 K1 K3 C", "P1K1 P1K3")
PERSONAS = {
    "auditor": Persona(
        "A",
        AUDITOR,
        AUDITOR,
        (
            "encounters",
            "encounter E_in",
            "history E_in",
            "delegations",
            "engagements",
            "events",
            "fhir AuditEvent",
            "fhir Provenance E_in",
            "fhir Provenance read E_in 0",
            "sample",
            "export",
            "export all reports",
            *(f"report {name} {fmt}" for name in REPORTS for fmt in FORMATS),
            "report encounter-timeline E_in",
            "verify",
        ),
    ),
    "coder": Persona(
        "K1", CODER, CODER, ("encounters", "encounter E_in", "history E_in", "delegations", "me")
    ),
    "provider": Persona(
        "P1",
        PROVIDER,
        _v("E_in E_in2 E_old E_p2s", "P1 K1 K3 C P2", "P1K1 P1K3"),
        (
            "encounters",
            "encounter E_old",
            "encounter E_p2s",
            "history E_p2s",
            "delegations",
            *(f"report {name} {fmt}" for name in REPORTS for fmt in FORMATS),
            "report encounter-timeline E_old",
        ),
    ),
}


def ledger_events(connection: Connection) -> list[dict[str, Any]]:
    return [
        json.loads(bytes(p)) for (p,) in connection.execute(select(LEDGER.c.payload).order_by(LEDGER.c.seq))
    ]


def allowed_seqs(w: World, view: View, events: list[dict[str, Any]]) -> set[int]:
    """The README's rule: events on encounters in scope, whoever caused them and whatever the outcome;
    and the allowed grants and revokes of delegations in scope. Nothing else."""
    encounters = {w.enc[k]["id"] for k in view.encounters}
    delegations = {w.delegations[k] for k in view.delegations}
    return {
        e["seq"]
        for e in events
        if e["encounter_id"] in encounters
        or (
            e["encounter_id"] is None
            and e["type"] in DELEGATION_RECORDS
            and e["outcome"] == "allowed"
            and e["subject"]["id"] in delegations
        )
    }


@dataclass(frozen=True)
class Expectation:
    forbidden: frozenset[str]  # strings that must not appear anywhere
    seqs: frozenset[int]  # the only ledger seqs that may appear
    head: int  # the last seq when the walk began (later ones are the walk's own reads)


def expectation(w: World, view: View, events: list[dict[str, Any]]) -> Expectation:
    forbidden: set[str] = set()
    for key, e in w.enc.items():
        if key not in view.encounters:
            forbidden |= {e["id"], e["external_id"], e["patient_ref"], *e["lines"], *e["attestations"]}
    for key in w.ids.keys() - view.people:
        forbidden |= {w.ids[key], w.names[key]}
        if key in NPI:
            forbidden.add(NPI[key])
    forbidden |= {v for k, v in w.delegations.items() if k not in view.delegations}
    forbidden |= {v for k, v in w.engagements.items() if k not in view.engagements}
    seqs = allowed_seqs(w, view, events)
    forbidden |= {e["event_id"] for e in events if e["seq"] not in seqs}
    return Expectation(frozenset(forbidden), frozenset(seqs), max(e["seq"] for e in events))


# --- reading every format ----------------------------------------------------------------------------


def pdf_text(data: bytes) -> str:
    """The decompressed content streams of a PDF (fpdf2 writes cell text as literal strings)."""
    parts = []
    for m in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, re.S):
        try:
            parts.append(zlib.decompress(m.group(1)))
        except zlib.error:
            parts.append(m.group(1))
    return b"\n".join(parts).decode("latin-1")


def json_seqs(value: Any) -> Iterator[int]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k in ("seq", "ledger_seq") and isinstance(v, int) and not isinstance(v, bool):
                yield v
        if value.get("type") == "seq" and "valueString" in value:  # a FHIR entity detail
            yield int(value["valueString"])
        for v in value.values():
            yield from json_seqs(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_seqs(v)


def csv_seqs(text: str) -> Iterator[int]:
    for row in csv.DictReader(io.StringIO(text)):
        for key in ("seq", "ledger_seq"):
            if row.get(key):
                yield int(row[key])


@dataclass
class Content:
    """A response split into what can be scanned: texts (with a label), PDF texts, seqs."""

    texts: list[tuple[str, str]] = field(default_factory=list)
    pdfs: list[tuple[str, str]] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)

    def add_file(self, name: str, data: bytes) -> None:
        if name.endswith(".pdf"):
            self.pdfs.append((name, pdf_text(data)))
            return
        text = data.decode("utf-8")
        self.texts.append((name, text))
        if name.endswith(".csv"):
            self.seqs += csv_seqs(text)
        elif name.endswith(".jsonl"):
            self.seqs += [json.loads(line)["seq"] for line in text.splitlines()]
        elif name == "proofs.json":
            self.seqs += [int(s) for s in json.loads(text)]
        elif name.endswith(".json"):
            self.seqs += json_seqs(json.loads(text))


def content_of(response: Any) -> Content:
    kind = response.headers.get("content-type", "").split(";")[0]
    content = Content()
    if kind == "application/zip":
        with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
            for name in zf.namelist():
                content.add_file(name, zf.read(name))
    elif kind == "application/pdf":
        content.add_file("body.pdf", response.content)
    elif kind == "text/csv":
        content.add_file("body.csv", response.content)
    elif kind in ("application/json", "application/fhir+json"):
        content.add_file("body.json", response.content)
    else:
        content.texts.append(("body", response.text))
    return content


def leaks(content: Content, exp: Expectation) -> list[str]:
    found = [f"{name}: {token!r}" for name, text in content.texts for token in exp.forbidden if token in text]
    # PDF cells may be cut with "...": look for the first 13 characters of each token there
    found += [
        f"{name}: {token!r}" for name, text in content.pdfs for token in exp.forbidden if token[:13] in text
    ]
    found += [f"seq {s}" for s in content.seqs if s not in exp.seqs]
    return found


# --- the walk ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    label: str
    method: str
    url: str
    params: dict[str, Any] | None = None
    body: dict[str, Any] | None = None
    by_id: bool = False  # a read by id: outside the reader's scope it is 404, as an unknown id


Walk = Callable[[World], list[Request]]


def _per_encounter(label: str, url: str, params: Callable[[str], dict[str, Any]] | None = None) -> Walk:
    return lambda w: [
        Request(f"{label} {key}", "GET", url.format(id=e["id"]), params(e["id"]) if params else None)
        for key, e in w.enc.items()
    ]


def _reports(w: World) -> list[Request]:
    out = []
    for name in REPORTS:
        out += [
            Request(f"report {name} {fmt}", "GET", f"{API}/reports/{name}", {"format": fmt})
            for fmt in FORMATS
        ]
        out += [
            Request(
                f"report {name} other provider", "GET", f"{API}/reports/{name}", {"provider_id": w.ids["P2"]}
            ),
            Request(
                f"report {name} wide dates", "GET", f"{API}/reports/{name}", {"from": day(400), "to": day(0)}
            ),
            Request(f"report {name} P1", "GET", f"{API}/reports/{name}", {"provider_id": w.ids["P1"]}),
        ]
    out.append(Request("report sections", "GET", f"{API}/reports/provider-responsibility",
                       {"format": "csv", "section": "delegate_lines"}))  # fmt: skip
    for key, e in w.enc.items():
        for fmt in FORMATS:
            params = {"encounter_id": e["id"], "format": fmt}
            out.append(Request(f"report encounter-timeline {key}{'' if fmt == 'json' else ' ' + fmt}", "GET",
                               f"{API}/reports/encounter-timeline", params))  # fmt: skip
    return out


def _events(w: World) -> list[Request]:
    url = f"{API}/audit/events"
    out = [
        Request("events", "GET", url, {"limit": 500}),
        Request("events P2", "GET", url, {"provider": w.ids["P2"]}),
    ]
    out += [Request(f"events {k}", "GET", url, {"encounter": e["id"]}) for k, e in w.enc.items()]
    out.append(
        Request("events wide dates", "GET", url, {"dos_from": day(400), "dos_to": day(0), "limit": 500})
    )
    return out


def _fhir_audit(w: World) -> list[Request]:
    url = "/fhir/AuditEvent"
    out = [Request("fhir AuditEvent", "GET", url, {"_count": 500}),
           Request("fhir AuditEvent old", "GET", url, {"date": "ge2000-01-01", "_count": 500})]  # fmt: skip
    return out + [
        Request(f"fhir AuditEvent {k}", "GET", url, {"entity": f"Encounter/{e['id']}"})
        for k, e in w.enc.items()
    ]


def _fhir_reads(w: World) -> list[Request]:
    """Every event of the ledger by its seq (the tree size read as compliance bounds it)."""
    return [
        Request(f"fhir AuditEvent/{seq}", "GET", f"/fhir/AuditEvent/{seq}", by_id=True)
        for seq in range(_signed_size(w) + 1)
    ]


def _fhir_provenance_reads(w: World) -> list[Request]:
    return [
        Request(f"fhir Provenance read {key} {i}", "GET", f"/fhir/Provenance/{aid}", by_id=True)
        for key, e in w.enc.items()
        for i, aid in enumerate(e["attestations"])
    ]


def _samples(w: World) -> list[Request]:
    url = f"{API}/samples"
    wide = {"n": 100, "seed": 7, "from": day(400), "to": day(0)}
    return [
        Request("sample", "POST", url, body={"n": 100, "seed": 7, "from": day(30), "to": day(0)}),
        Request("sample wide", "POST", url, body=wide),
        Request("sample other provider", "POST", url, body={**wide, "provider_id": w.ids["P2"]}),
    ]


def _exports(w: World) -> list[Request]:
    url, every = f"{API}/exports", list(REPORTS)
    return [
        Request("export", "POST", url, body={}),
        Request("export all reports", "POST", url, body={"reports": every}),
        Request("export other provider", "POST", url, body={"provider_ids": [w.ids["P2"]], "reports": every}),
        Request("export wide", "POST", url, body={"from": day(400), "to": day(0), "reports": every}),
    ]


def _signed_size(w: World) -> int:
    """The tree size of the latest checkpoint (signed now if the head moved), read as compliance."""
    note = w.call("C", "GET", f"{API}/audit/checkpoint").text
    return int(note.split("\n")[1])


def _lists(label: str, url: str, variants: Callable[[World], list[dict[str, Any]]]) -> Walk:
    return lambda w: [
        Request(label if not v else f"{label} {sorted(v)}", "GET", url, v or None) for v in variants(w)
    ]


READS: dict[tuple[str, str], Walk] = {
    ("GET", "/api/v1/users/me"): lambda w: [Request("me", "GET", f"{API}/users/me")],
    ("GET", "/api/v1/users"): _lists("users", f"{API}/users", lambda w: [{}, {"limit": 1, "offset": 1}]),
    ("GET", "/api/v1/encounters"): _lists(
        "encounters",
        f"{API}/encounters",
        lambda w: [
            {},
            {"provider_id": w.ids["P2"]},
            {"provider_id": w.ids["P1"]},
            {"from": day(400), "to": day(0)},
            {"status": "open", "limit": 500},
            {"status": "attested"},
            {"status": "amended"},
        ],
    ),
    ("GET", "/api/v1/encounters/{encounter_id}"): _per_encounter("encounter", f"{API}/encounters/{{id}}"),
    ("GET", "/api/v1/encounters/{encounter_id}/history"): _per_encounter(
        "history", f"{API}/encounters/{{id}}/history"
    ),
    ("GET", "/api/v1/delegations"): _lists(
        "delegations",
        f"{API}/delegations",
        lambda w: [
            {},
            {"provider_id": w.ids["P2"]},
            {"coder_id": w.ids["K2"]},
            {"active": "true"},
            {"active": "false"},
        ],
    ),
    ("GET", "/api/v1/engagements"): _lists("engagements", f"{API}/engagements", lambda w: [{}]),
    ("GET", "/api/v1/reports/{name}"): _reports,
    ("POST", "/api/v1/samples"): _samples,
    ("POST", "/api/v1/exports"): _exports,
    ("GET", "/api/v1/audit/events"): _events,
    ("GET", "/api/v1/audit/verify"): lambda w: [Request("verify", "GET", f"{API}/audit/verify")],
    ("GET", "/api/v1/audit/checkpoint"): lambda w: [Request("checkpoint", "GET", f"{API}/audit/checkpoint")],
    ("GET", "/api/v1/audit/public-key"): lambda w: [Request("public key", "GET", f"{API}/audit/public-key")],
    # Tree sizes and hashes only: nothing about any encounter, so every reader may see the same answer.
    ("GET", "/api/v1/audit/checkpoints"): lambda w: [
        Request("checkpoint at size", "GET", f"{API}/audit/checkpoints", {"tree_size": _signed_size(w)})
    ],
    ("GET", "/api/v1/audit/consistency"): lambda w: [
        Request("consistency", "GET", f"{API}/audit/consistency", {"first": 1, "second": _signed_size(w)})
    ],
    ("GET", "/fhir/AuditEvent"): _fhir_audit,
    ("GET", "/fhir/Provenance"): _per_encounter(
        "fhir Provenance", "/fhir/Provenance", lambda eid: {"target": f"Encounter/{eid}"}
    ),
    ("GET", "/fhir/AuditEvent/{seq}"): _fhir_reads,
    ("GET", "/fhir/Provenance/{provenance_id}"): _fhir_provenance_reads,
    # The CapabilityStatement: what the server supports, nobody's data.
    ("GET", "/fhir/metadata"): lambda w: [Request("fhir metadata", "GET", "/fhir/metadata")],
    ("GET", "/openapi.json"): lambda w: [Request("openapi", "GET", "/openapi.json")],
    ("GET", "/docs"): lambda w: [Request("docs", "GET", "/docs")],
    ("GET", "/redoc"): lambda w: [Request("redoc", "GET", "/redoc")],
    # Operations endpoints: nobody's data, only health and aggregate counts (audit.ops).
    ("GET", "/healthz"): lambda w: [Request("healthz", "GET", "/healthz")],
    ("GET", "/readyz"): lambda w: [Request("readyz", "GET", "/readyz")],
    ("GET", "/metrics"): lambda w: [Request("metrics", "GET", "/metrics")],
}

WRITES = {
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/signout"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/encounters"),
    ("POST", "/api/v1/encounters/{encounter_id}/codes"),
    ("PATCH", "/api/v1/encounters/{encounter_id}/codes/{line_id}"),
    ("POST", "/api/v1/encounters/{encounter_id}/codes/{line_id}/void"),
    ("POST", "/api/v1/encounters/{encounter_id}/attestations"),
    ("POST", "/api/v1/encounters/{encounter_id}/flags"),
    ("POST", "/api/v1/encounters/{encounter_id}/annotations"),
    ("POST", "/api/v1/delegations"),
    ("POST", "/api/v1/delegations/{delegation_id}/revoke"),
    ("POST", "/api/v1/engagements"),
    ("POST", "/api/v1/engagements/{engagement_id}/revoke"),
    # Web page forms (audit.web): the same services as the API writes above.
    ("POST", "/encounters/{encounter_id}/attest"),
    ("POST", "/encounters/{encounter_id}/lines"),
    ("POST", "/encounters/{encounter_id}/lines/{line_id}"),
    ("POST", "/encounters/{encounter_id}/lines/{line_id}/void"),
    ("POST", "/provider/delegations"),
    ("POST", "/provider/delegations/{delegation_id}/revoke"),
    ("POST", "/compliance/verify"),
    ("POST", "/compliance/encounters/{encounter_id}/flags"),
    ("POST", "/compliance/encounters/{encounter_id}/annotations"),
    ("POST", "/compliance/flags/{flag_id}/resolve"),
    ("POST", "/compliance/engagements"),
    ("POST", "/compliance/engagements/{engagement_id}/revoke"),
    ("POST", "/auditor/engagements/{engagement_id}/bundle"),
    ("POST", "/auditor/engagements/{engagement_id}/sample"),
    ("POST", "/admin/users"),
    ("POST", "/admin/users/{user_id}/active"),
    ("POST", "/admin/users/{user_id}/unlock"),
    ("POST", "/admin/users/{user_id}/password"),
    ("POST", "/admin/users/{user_id}/roles"),
    ("POST", "/api/v1/imports"),
    # coding audits (issue 13), API and page forms: tests/coding_audit/test_authorization_matrix.py
    ("POST", "/api/v1/audits"),
    ("POST", "/api/v1/audits/{audit_id}/sample"),
    ("POST", "/api/v1/audits/{audit_id}/findings"),
    ("POST", "/api/v1/findings/{finding_id}/responses"),
    ("POST", "/api/v1/findings/{finding_id}/decision"),
    ("POST", "/api/v1/audits/{audit_id}/signature"),
    ("POST", "/audits"),
    ("POST", "/audits/{audit_id}/sample"),
    ("POST", "/audits/{audit_id}/findings"),
    ("POST", "/findings/{finding_id}/responses"),
    ("POST", "/findings/{finding_id}/decision"),
    ("POST", "/audits/{audit_id}/signature"),
}

# Reads of one coding audit (and reports over audits), decided per audit by Cedar (`coding_audit.read`:
# the audit's auditor in their engagement, compliance, the providers and coders it judges) and walked
# per role by tests/coding_audit/test_authorization_matrix.py, tests/coding_audit/test_reports_and_bundle.py
# and tests/browser/test_coding_audit_story.py, not by this walk (its organisation holds no audits).
AUDIT_READS = {
    ("GET", "/api/v1/audits/{audit_id}"),
    ("GET", "/api/v1/audits/{audit_id}/scores"),
    ("GET", "/api/v1/reports/audit-summary"),
    ("GET", "/api/v1/reports/provider-scorecard"),
    ("GET", "/api/v1/reports/coder-scorecard"),
    ("GET", "/api/v1/reports/follow-up"),
    ("GET", "/audits/{audit_id}"),
    # the list of audits: each judged by `coding_audit.read` (tests/web/test_audit_list.py)
    ("GET", "/audits"),
}

# Web pages that show encounter data: walked with this world by tests/web/test_scope_pages.py (they
# need a signed-in browser session, not a bearer token). The delegations page lists the provider's
# own delegations (`list_delegations`) and every active coder's name to choose from.
PAGES = {
    ("GET", "/provider/queue"),
    ("GET", "/coder/worklist"),
    ("GET", "/encounters/{encounter_id}"),
    ("GET", "/provider/delegations"),
    # compliance, auditor and admin pages (test_scope_pages.test_report_and_oversight_pages_...)
    ("GET", "/compliance"),
    ("GET", "/compliance/encounters/{encounter_id}"),
    ("GET", "/compliance/engagements"),
    ("GET", "/reports"),
    ("GET", "/reports/{name}"),
    ("GET", "/reports/{name}/download"),
    ("GET", "/auditor"),
    ("GET", "/auditor/engagements/{engagement_id}"),
    ("GET", "/admin/users"),
    ("GET", "/admin/users/{user_id}"),
}

# Routes that read nothing scoped: they answer from public reference data only (the CMS code sets),
# or are web pages that show no one's data but the signed-in user's own (audit.web.routes.account) and
# the locally served API documentation.
UNSCOPED = {
    ("POST", "/api/v1/codesets/check"),
    ("GET", "/codes/check"),
    ("GET", "/"),
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("POST", "/signout"),
    ("GET", "/account/password"),
    ("POST", "/account/password"),
    ("GET", "/docs/assets/{name}"),
    ("GET", "/api/v1/audits/sample-size"),  # arithmetic only (Cochran's formula): reads no data
}


def app_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, hidden ones included."""

    def walk(routes: Any) -> Iterator[Any]:
        for route in routes:
            if hasattr(route, "effective_route_contexts"):  # a router included by FastAPI >= 0.16x
                yield from route.effective_route_contexts()
            elif hasattr(route, "routes") and not hasattr(route, "methods"):
                yield from walk(route.routes)
            else:
                yield route

    return {(m, r.path) for r in walk(app.routes) for m in (getattr(r, "methods", None) or ()) if m != "HEAD"}


# --- tests -------------------------------------------------------------------------------------------------


def test_every_route_is_walked_or_is_a_write(client: TestClient) -> None:
    routes = app_routes(client.app)  # type: ignore[arg-type]
    schema_paths = {(m.upper(), p) for p, ops in client.app.openapi()["paths"].items() for m in ops}  # type: ignore[attr-defined]
    assert schema_paths <= routes, "every documented operation is a route"
    unclassified = routes - READS.keys() - WRITES - UNSCOPED - PAGES - AUDIT_READS
    assert not unclassified, (
        f"routes neither walked by the scope test nor listed as writes: {sorted(unclassified)}"
    )
    stale = (READS.keys() - routes) | ((WRITES | UNSCOPED | PAGES | AUDIT_READS) - routes)
    assert not stale, f"the tables name routes the app no longer has: {sorted(stale)}"
    assert set(NAMES) == {*REPORTS, "encounter-timeline"}, "every report is walked"


@pytest.fixture
def world(client: TestClient, people: People) -> World:
    return build(client, people)


def test_the_forbidden_strings_are_real(world: World, connection: Connection) -> None:
    """Non-vacuity: what the walk looks for does show up for compliance, so its absence means something."""
    exp = expectation(world, AUDITOR, ledger_events(connection))
    seen = ""
    for url, params in (
        (f"{API}/encounters", {"limit": 500}),
        (f"{API}/audit/events", {"limit": 500}),
        (f"{API}/delegations", None),
        (f"{API}/engagements", None),
        (f"{API}/users", None),
        *((f"{API}/encounters/{e['id']}", None) for e in world.enc.values()),
    ):
        r = world.call("C", "GET", url, params=params)
        assert r.status_code == 200, r.text
        seen += r.text
    missing = [t for t in exp.forbidden if t not in seen]
    assert not missing and len(exp.forbidden) > 50


@pytest.mark.parametrize("persona", [*sorted(PERSONAS), "auditor, walking the ledger"])
def test_nothing_outside_the_scope_is_returned(
    world: World, connection: Connection, persona: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if persona.endswith("walking the ledger"):  # pages in the shape used for scopes of many encounters
        monkeypatch.setattr(filters, "SMALL_SCOPE", 0)
    p = PERSONAS[persona.split(",")[0]]
    events = ledger_events(connection)
    report_exp = expectation(world, p.view, events)
    encounter_exp = expectation(world, p.encounter_view, events)
    statuses: dict[str, int] = {}
    problems: list[str] = []
    fhir = FhirCheck()
    for (_, path), walk in READS.items():
        exp = encounter_exp if path.startswith(f"{API}/encounters") else report_exp
        for req in walk(world):
            r = world.call(p.user, req.method, req.url, params=req.params, json=req.body)
            statuses[req.label] = r.status_code
            if r.status_code == 403:
                body = r.json()
                assert body.get("error") == "Forbidden" or body["issue"][0]["code"] == "forbidden", (
                    req,
                    r.text,
                )
                continue
            if r.status_code == 404 and req.by_id:  # an OperationOutcome that says nothing about the id
                assert r.json()["issue"][0]["code"] == "not-found", (req, r.text)
                continue
            assert r.status_code in (200, 201), (persona, req, r.status_code, r.text[:500])
            if r.headers.get("content-type", "").startswith("application/fhir+json"):
                fhir(r.json())  # every FHIR answer of the walk, through both validators
            content = content_of(r)
            problems += [f"{req.label}: {leak}" for leak in leaks(content, exp)]
            problems += [
                f"{req.label}: seq {s} written during the walk" for s in content.seqs if s > exp.head
            ]
    assert not problems, f"{persona} sees outside its scope:\n" + "\n".join(sorted(set(problems))[:60])
    fhir.node()
    refused = [label for label in p.must_succeed if statuses.get(label) not in (200, 201)]
    assert not refused, f"{persona} was refused what it may read: {refused}"


def test_what_each_reader_does_see(world: World) -> None:
    """The other half: each reader gets their whole scope, not merely nothing."""

    def ids(who: str, url: str, **params: Any) -> set[str]:
        items = world.ok(who, "GET", url, params=params)
        return {i["id"] for i in (items["items"] if isinstance(items, dict) else items)}

    enc = {k: e["id"] for k, e in world.enc.items()}
    assert ids("A", f"{API}/encounters") == {enc["E_in"], enc["E_in2"]}
    assert ids("K1", f"{API}/encounters") == {enc["E_in"]}
    assert ids("P1", f"{API}/encounters") == {enc["E_in"], enc["E_in2"], enc["E_old"], enc["E_p2s"]}
    assert ids("A", f"{API}/delegations") == {world.delegations["P1K1"]}
    assert ids("P1", f"{API}/delegations") == {world.delegations["P1K1"], world.delegations["P1K3"]}
    assert ids("K1", f"{API}/delegations") == {world.delegations["P1K1"]}
    assert ids("A", f"{API}/engagements") == {world.engagements["A"]}
    report = world.ok("P1", "GET", f"{API}/reports/provider-responsibility")  # no provider_id: their own
    assert [r["provider_id"] for r in report["rows"]] == [world.ids["P1"]] and report["rows"][0][
        "encounters"
    ] == 3
    audit = world.ok("A", "GET", f"{API}/reports/provider-responsibility")
    assert [(r["provider_id"], r["encounters"]) for r in audit["rows"]] == [(world.ids["P1"], 2)]
    sample = world.ok("A", "POST", f"{API}/samples", json={"n": 50, "seed": 1, "from": day(30), "to": day(0)})
    assert set(sample["encounter_ids"]) == {enc["E_in"], enc["E_in2"]}
    fhir = world.ok("A", "GET", "/fhir/AuditEvent", params={"_count": 500})
    assert fhir["total"] == len(fhir["entry"]) > 0


def test_reads_by_id_return_exactly_what_the_search_returns(world: World, connection: Connection) -> None:
    """A read by id is filtered by the scope the search has: the auditor reads exactly the events the
    search lists (the README's rule), and every other id is 404; so for attestations."""
    events = ledger_events(connection)
    head = max(e["seq"] for e in events)
    listed = world.ok("A", "GET", "/fhir/AuditEvent", params={"_count": 500})
    searched = {int(entry["resource"]["id"]) for entry in listed["entry"]}
    readable = {
        seq for seq in range(head + 1) if world.call("A", "GET", f"/fhir/AuditEvent/{seq}").status_code == 200
    }
    assert readable == searched == allowed_seqs(world, AUDITOR, events) and readable
    for key, e in world.enc.items():
        for aid in e["attestations"]:
            status = world.call("A", "GET", f"/fhir/Provenance/{aid}").status_code
            assert status == (200 if key in AUDITOR.encounters else 404), (key, status)


@pytest.mark.parametrize(
    ("who", "url", "params"),
    [
        ("A", f"{API}/reports/provider-responsibility", {"provider_id": "P2"}),
        ("A", f"{API}/reports/coder-activity", {"from": 400}),
        ("A", f"{API}/audit/events", {"encounter": "E_p2"}),
        ("A", "/fhir/AuditEvent", {"entity": "E_old"}),
        ("A", "/fhir/Provenance", {"target": "E_p2"}),
        ("A", f"{API}/reports/encounter-timeline", {"encounter_id": "E_old"}),
        ("P1", f"{API}/reports/denied-attempts", {"provider_id": "P2"}),
        ("P1", f"{API}/reports/encounter-timeline", {"encounter_id": "E_p2s"}),
        ("K1", f"{API}/encounters/{{E_in2}}/history", None),
    ],
)
def test_asking_outside_the_scope_is_refused_and_recorded(
    world: World, connection: Connection, who: str, url: str, params: dict[str, Any] | None
) -> None:
    def resolve(value: Any) -> Any:
        if value == 400:
            return day(400)
        return world.ids.get(value) or (world.enc[value]["id"] if value in world.enc else value)

    url = re.sub(r"\{(\w+)\}", lambda m: world.enc[m.group(1)]["id"], url)
    asked = {
        k: (f"Encounter/{resolve(v)}" if k in ("entity", "target") else resolve(v))
        for k, v in (params or {}).items()
    }
    before = len(ledger_events(connection))
    r = world.call(who, "GET", url, params=asked)
    assert r.status_code == 403, r.text
    new = ledger_events(connection)[before:]
    assert [(e["outcome"], e["actor"]["id"]) for e in new] == [("denied", world.ids[who])]


def test_both_shapes_of_the_event_clause_agree(world: World, connection: Connection) -> None:
    p1, p2 = world.ids["P1"], world.ids["P2"]
    recent = Area.of(datetime.now(UTC).date() - timedelta(days=30), datetime.now(UTC).date())
    scopes = [
        ReadScope("r", (Area(recent.date_from, recent.date_to, frozenset({p1})),)),
        ReadScope("r", (Area(provider_ids=frozenset({p1})),), party_id=p1),
        ReadScope("r", (Area(provider_ids=frozenset({p1})), Area(provider_ids=frozenset({p2})))),
        ReadScope("r", ()),
        ReadScope("r", None, narrow=recent),
        ReadScope("r", None, narrow=Area.of(None, None, [p2])),
        ReadScope("r", None, narrow=Area.of(), encounter_id=world.enc["E_in"]["id"]),
    ]
    for scope in scopes:
        seqs = [
            set(
                connection.execute(
                    select(LEDGER.c.seq).where(filters.event_clause(scope, walk=walk))
                ).scalars()
            )
            for walk in (False, True)
        ]
        assert seqs[0] == seqs[1], scope
