"""Hostile input at every write endpoint: each value gets a 4xx that names the field, nothing is
stored, and the ledger still verifies (chain and a fresh signed checkpoint) afterwards.

The write endpoints are read from the application's routes, so a new one without a row in `WRITES`
fails `test_every_write_endpoint_has_a_row`. The hostile values for a body are derived from its
request model's JSON schema (every string, number, date and list field), so a new field is attacked
without editing this file.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.main import create_app
from audit.models import CodeLine, Delegation, Encounter, EncounterNote, Engagement, User
from audit.openapi import api_routes
from tests.conftest import People

API = "/api/v1"
WRITE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
CONTROL = ["\x00", "a\x1fb", "x\u202ey", "\x7f", "\x1b[31mred"]
DIGITS = ["\uff11\uff12", "\u0661\u0662", "\u06f1\u06f2"]  # full-width, Arabic-Indic, Persian "12"
BAD_DATES = ["0001-01-01", "9999-12-31", "2025-02-30", "yesterday", "\uff12\uff10\uff12\uff15-01-01"]
BAD_MOMENTS = ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "2025-13-01T00:00:00Z", "soon"]
BAD_INTS: list[Any] = [-1, 10**30, -(10**30), "abc", 1.5, {}, *DIGITS]


@dataclass(frozen=True)
class Row:
    """How to reach one write endpoint legitimately: who calls it, with which valid body."""

    role: str
    body: dict[str, Any] = field(default_factory=dict)
    model: type[BaseModel] | None = None
    form: bool = False
    feed: bool = False  # the body is a charge feed (CSV or NDJSON), not JSON


def _rows() -> dict[tuple[str, str], Row]:
    from audit.attestation.routes import AttestIn
    from audit.codesets.routes import CheckIn
    from audit.coding_audit.schemas import (
        AuditCreate,
        DecisionCreate,
        FindingCreate,
        ResponseCreate,
        SignatureCreate,
    )
    from audit.delegation.schemas import DelegationCreate
    from audit.encounter.routes import NoteIn
    from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, EncounterCreate, ReasonIn
    from audit.engagement.schemas import EngagementCreate
    from audit.export.routes import ExportIn
    from audit.inputs import RevokeIn
    from audit.report.schemas import SampleIn
    from audit.user.schemas import SignInForm, UserCreate

    enc, line = f"{API}/encounters/{{encounter_id}}", f"{API}/encounters/{{encounter_id}}/codes/{{line_id}}"
    return {
        ("POST", f"{API}/auth/token"): Row(
            "anyone", {"username": "{username}", "password": "wrong but fine"}, SignInForm, form=True
        ),
        ("POST", f"{API}/auth/signout"): Row("coder"),
        ("POST", f"{API}/users"): Row(
            "admin",
            {
                "username": "new.user",
                "password": "a long enough one",
                "display_name": "New User",
                "roles": ["provider"],
                "npi": "1234567893",
                "credential": "MD",
            },
            UserCreate,
        ),
        ("POST", f"{API}/encounters"): Row(
            "coder",
            {
                "external_id": "H-2",
                "patient_ref": "MRN-2",
                "date_of_service": "{dos}",
                "rendering_provider_id": "{provider_id}",
            },
            EncounterCreate,
        ),
        ("POST", f"{enc}/codes"): Row(
            "coder",
            {"system": "CPT", "code": "99213", "units": 1, "modifiers": ["25"], "diagnosis_pointers": []},
            CodeLineCreate,
        ),
        ("PATCH", line): Row(
            "coder", {"code": "99214", "reason": "documentation supports it"}, CodeLinePatch
        ),
        ("POST", f"{line}/void"): Row("coder", {"reason": "entered on the wrong encounter"}, ReasonIn),
        ("POST", f"{enc}/flags"): Row("compliance", {"text": "please review"}, NoteIn),
        ("POST", f"{enc}/annotations"): Row("compliance", {"text": "reviewed"}, NoteIn),
        ("POST", f"{enc}/attestations"): Row("provider", {"password": "correct horse battery"}, AttestIn),
        ("POST", f"{API}/delegations"): Row(
            "provider",
            {"coder_id": "{coder_id}", "code_systems": ["CPT"], "valid_until": "{until}"},
            DelegationCreate,
        ),
        ("POST", f"{API}/delegations/{{delegation_id}}/revoke"): Row(
            "provider", {"reason": "left the team"}, RevokeIn
        ),
        ("POST", f"{API}/engagements"): Row(
            "compliance",
            {"auditor_id": "{auditor_id}", "date_from": "{dos}", "date_to": "{dos}", "expires_at": "{until}"},
            EngagementCreate,
        ),
        ("POST", f"{API}/engagements/{{engagement_id}}/revoke"): Row(
            "compliance", {"reason": "finished"}, RevokeIn
        ),
        ("POST", f"{API}/samples"): Row(
            "compliance", {"n": 1, "seed": 7, "from": "{dos}", "to": "{dos}"}, SampleIn
        ),
        ("POST", f"{API}/exports"): Row("compliance", {"from": "{dos}", "to": "{dos}"}, ExportIn),
        ("POST", f"{API}/imports"): Row("coder", feed=True),
        ("POST", f"{API}/codesets/check"): Row(
            "coder", {"system": "CPT", "code": "99213", "date_of_service": "{dos}"}, CheckIn
        ),
        ("POST", f"{API}/audits"): Row(
            "compliance",
            {
                "name": "Q3 E/M review",
                "scope": {"from": "{dos}", "to": "{dos}"},
                "sampling": {"method": "random", "n": 1},
                "seed": 7,
            },
            AuditCreate,
        ),
        ("POST", f"{API}/audits/{{audit_id}}/sample"): Row("compliance"),
        ("POST", f"{API}/audits/{{audit_id}}/findings"): Row(
            "compliance",
            {"encounter_id": "{encounter_id}", "line_id": "{line_id}", "verdict": "agree", "rationale": "ok"},
            FindingCreate,
        ),
        ("POST", f"{API}/audits/{{audit_id}}/signature"): Row(
            "compliance", {"password": "correct horse battery"}, SignatureCreate
        ),
        ("POST", f"{API}/findings/{{finding_id}}/responses"): Row(
            "provider", {"response": "dispute", "comment": "documented"}, ResponseCreate
        ),
        ("POST", f"{API}/findings/{{finding_id}}/decision"): Row(
            "compliance", {"decision": "upheld", "comment": "stands"}, DecisionCreate
        ),
    }


WRITES = _rows()


def write_routes() -> set[tuple[str, str]]:
    """The API's write endpoints (page forms: tests/web/test_hostile_forms.py)."""
    return {
        (method, route.path_format)
        for route in api_routes(create_app().routes)
        for method in route.methods & WRITE_METHODS
        if route.path_format.startswith(("/api/", "/fhir/"))
    }


def test_every_write_endpoint_has_a_row() -> None:
    assert write_routes() == set(WRITES), "add a row to WRITES for each new write endpoint"


def test_every_request_body_is_a_request_model() -> None:
    """Every body model derives from RequestModel, so the shared value checks apply to it."""
    from audit.inputs import RequestModel

    for route in api_routes(create_app().routes):
        if route.body_field is not None and route.path_format.startswith(("/api/", "/fhir/")):
            model = route.body_field.field_info.annotation
            assert isinstance(model, type) and issubclass(model, RequestModel), route.path


# --- the hostile values, from each model's JSON schema ------------------------------------------


def _kind(prop: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    options = [o for o in prop.get("anyOf", [prop]) if o.get("type") != "null"]
    option = options[0] if options else prop
    kind = option.get("type", "object")
    if kind == "string" and option.get("format") in ("date", "date-time"):
        kind = option["format"]
    return kind, option


def hostile_values(model: type[BaseModel], form: bool) -> Iterator[tuple[str, str, Any]]:
    """(field, what, value) for every field of the model."""
    props = model.model_json_schema(by_alias=True)["properties"]
    for name, prop in props.items():
        kind, option = _kind(prop)
        if kind == "string":
            for value in CONTROL:
                yield name, f"control {value!r}", value
            yield name, "huge string", "a" * 200_000
            limit = option.get("maxLength") or prop.get("maxLength")
            if limit:  # schemathesis: a leading space past the limit was stripped, then accepted
                yield name, "one past maxLength, a leading space", " " + "a" * limit
            if not form:
                yield name, "wrong type", {"x": 1}
            if name == "npi":
                yield from ((name, f"digits {d}", d * 5) for d in DIGITS)
        elif kind == "date":
            yield from ((name, f"date {d}", d) for d in BAD_DATES)
        elif kind == "date-time":
            yield from ((name, f"moment {d}", d) for d in BAD_MOMENTS)
        elif kind == "integer":
            yield from ((name, f"int {v!r}", v) for v in BAD_INTS)
        elif kind == "array":
            item = option.get("items", {}).get("type")
            yield name, "not a list", "text"
            yield name, "huge list", ["25"] * 100_000
            if item == "string":
                yield from ((name, f"item control {v!r}", [v]) for v in CONTROL)
                yield name, "item huge", ["a" * 100_000]
                yield name, "item wrong type", [{"x": 1}]
            if item == "integer":
                yield from ((name, f"item int {v!r}", [v]) for v in BAD_INTS)


# --- the organisation the requests act in -------------------------------------------------------


@pytest.fixture
def org(client: TestClient, people: People) -> dict[str, Any]:
    provider, coder = people.make("provider"), people.make("coder")
    compliance, admin, auditor = people.make("compliance"), people.make("admin"), people.make("auditor")
    delegation_id = people.delegate(provider, coder)
    signed_in = (("provider", provider), ("coder", coder), ("compliance", compliance), ("admin", admin))
    headers = {name: people.headers(u) for name, u in signed_in}
    headers["anyone"] = {}
    dos = (datetime.now(UTC).date() - timedelta(days=3)).isoformat()
    body = {"external_id": "H-1", "patient_ref": "MRN-1", "date_of_service": dos,
            "rendering_provider_id": provider.id}  # fmt: skip
    encounter = client.post(f"{API}/encounters", json=body, headers=headers["coder"]).json()
    line = client.post(
        f"{API}/encounters/{encounter['id']}/codes", json={"system": "CPT", "code": "99213"},
        headers=headers["coder"],
    ).json()  # fmt: skip
    until = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    scope = {"auditor_id": auditor.id, "date_from": dos, "date_to": dos, "expires_at": until}
    engagement = client.post(f"{API}/engagements", json=scope, headers=headers["compliance"]).json()
    values = {"encounter_id": encounter["id"], "line_id": line["id"], "delegation_id": delegation_id,
              "engagement_id": engagement["id"], "provider_id": provider.id, "coder_id": coder.id,
              "auditor_id": auditor.id, "dos": dos, "until": until, "username": coder.username,
              # no audit or finding behind these: a hostile body or path is refused before any look-up
              "audit_id": str(uuid.uuid4()), "finding_id": str(uuid.uuid4())}  # fmt: skip
    return {"headers": headers, "values": values}


def _fill(template: Any, values: dict[str, str]) -> Any:
    if isinstance(template, str) and template.startswith("{") and template.endswith("}"):
        return values[template[1:-1]]
    if isinstance(template, list):
        return [_fill(t, values) for t in template]
    if isinstance(template, dict):
        return {k: _fill(v, values) for k, v in template.items()}
    return template


def _send(client: TestClient, method: str, path: str, row: Row, org: dict[str, Any], **kw: Any) -> Any:
    headers = {**org["headers"][row.role], **kw.pop("headers", {})}
    if method == "PATCH":
        headers.setdefault("If-Match", '"1"')
    return client.request(method, path, headers=headers, **kw)


def _path(template: str, values: dict[str, str]) -> str:
    return template.format(**values)


def _state(connection: Connection) -> dict[str, int]:
    tables = (Encounter, CodeLine, Delegation, Engagement, User, EncounterNote)
    return {
        t.__tablename__: connection.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[arg-type, attr-defined]
        for t in tables
    }


def _assert_names(response: Any, expected: str, what: str) -> None:
    assert 400 <= response.status_code < 500, f"{what}: {response.status_code} {response.text[:300]}"
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":  # under /fhir: the parameter is the expression
        named = (body["issue"][0].get("expression") or [""])[0]
    else:
        named = body.get("field", "")
    assert named == expected or named.startswith((f"{expected}[", f"{expected}.")), (
        f"{what}: field {named!r}, expected {expected!r}: {response.text[:300]}"
    )


def _verify_ledger(connection: Connection) -> None:
    from audit.uow import unit_of_work

    with unit_of_work(connection) as session:
        result = ledger.verify(session)
        assert result.ok, result.problem
        checkpoints.create_or_latest(session)
    with unit_of_work(connection) as session:
        signed = checkpoints.check_against_latest(session)
        assert signed.ok and signed.tree_size == result.events_checked, signed.problem


@pytest.mark.parametrize(("method", "path"), sorted(WRITES))
def test_hostile_values_get_a_4xx_naming_the_field(
    client: TestClient, connection: Connection, org: dict[str, Any], method: str, path: str
) -> None:
    row = WRITES[(method, path)]
    values = org["values"]
    url = _path(path, values)
    valid = {k: _fill(v, values) for k, v in row.body.items()}
    before = _state(connection)
    sent = 0
    if row.model is not None:
        for name, what, value in hostile_values(row.model, row.form):
            body = {**valid, name: value}
            response = (
                _send(client, method, url, row, org, data=body)
                if row.form
                else _send(client, method, url, row, org, json=body)
            )
            _assert_names(response, name, f"{method} {path} {name} {what}")
            sent += 1
        for what, kwargs, expected in _body_attacks(valid, row.form):
            _assert_names(_send(client, method, url, row, org, **kwargs), expected, f"{method} {path} {what}")
            sent += 1
    elif row.feed:  # a whole file that cannot be a feed is refused before any row is applied
        for what, content, media, expected in _feed_attacks():
            response = _send(client, method, url, row, org, content=content, headers={"Content-Type": media})
            _assert_names(response, expected, f"{method} {path} {what}")
            sent += 1
    else:  # no body expected: a huge one is still refused before it is read
        huge = _send(client, method, url, row, org, content=b"x" * (2 * 1024 * 1024))
        _assert_names(huge, "body", f"{method} {path} 2 MiB body")
        sent += 1
    for name in _path_params(path):
        for what, bad in (("NUL", "%00"), ("control", "a%1Fb"), ("huge", "a" * 500)):
            bad_url = _path(path, {**values, name: bad})
            response = _send(client, method, bad_url, row, org, json=valid)
            _assert_names(response, name, f"{method} {path} path {name} {what}")
            sent += 1
    if method == "PATCH":
        arabic_one = '"\u0661"'.encode()
        for what, bad in (("5000 digits", "9" * 5000), ("Arabic-Indic", arabic_one), ("negative", '"-1"'),
                          ("text", "abc"), ("19 digits", "1" * 19), ("empty", "")):  # fmt: skip
            response = _send(client, method, url, row, org, json=valid, headers={"If-Match": bad})
            _assert_names(response, "If-Match", f"If-Match {what}")
            sent += 1
    assert sent > 0
    assert _state(connection) == before, "a hostile request stored something"
    _verify_ledger(connection)


def _feed_attacks() -> Iterator[tuple[str, bytes, str, str]]:
    """(what, body, media type, field the answer must name) for a feed endpoint. Hostile rows inside
    a readable feed are rejected one by one instead (tests/imports)."""
    yield "2 MiB of one letter", b"x" * (2 * 1024 * 1024), "text/csv", "header"
    yield "NUL in the header", b"external_id\x00,code\n", "text/csv", "header"
    yield "control characters in the header", "\x1b[31m,\u202e\n".encode(), "text/csv", "header"
    yield "JSON sent as XML", b"{}", "application/xml", "Content-Type"
    yield "no media type", b"a,b\n", "", "Content-Type"


def _path_params(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _body_attacks(valid: dict[str, Any], form: bool) -> Iterator[tuple[str, dict[str, Any], str]]:
    """Attacks on the body as a whole: (what, request kwargs, field the answer must name)."""
    huge = "x" * (2 * 1024 * 1024)
    if form:
        yield "2 MiB form", {"data": {**valid, "username": huge}}, "body"
        return
    json_headers = {"Content-Type": "application/json"}
    yield "2 MiB body", {"json": {**valid, "padding": huge}}, "body"
    yield "deep JSON", {"content": "[" * 100_000 + "]" * 100_000, "headers": json_headers}, "body"
    yield "deep object", {"content": '{"a":' * 50_000 + "1" + "}" * 50_000, "headers": json_headers}, "body"
    yield "invalid JSON", {"content": "{", "headers": json_headers}, "body"
    yield "a list, not an object", {"json": [valid]}, "body"
    yield "unknown field", {"json": {**valid, "is_admin": True}}, "is_admin"
    for name, value in valid.items():
        if isinstance(value, str):  # a lone surrogate, only expressible as a JSON escape
            raw = json.dumps({**valid, name: "PLACEHOLDER"}).replace("PLACEHOLDER", "\\ud800")
            yield f"lone surrogate in {name}", {"content": raw, "headers": json_headers}, name


# --- the 500s found by an attacker, on read endpoints too -----------------------------------------


@pytest.mark.parametrize(
    ("role", "url", "field_name"),
    [
        ("compliance", f"{API}/encounters?offset={10**30}", "offset"),
        # schemathesis: a precision of 9e-247 overflowed Cochran's n (a 500)
        ("compliance", f"{API}/audits/sample-size?precision=9.2e-247&confidence=0.63", "precision"),
        ("coder", f"{API}/audits/sample-size?precision=0.0009", "precision"),
        ("compliance", f"{API}/encounters?offset={10**9 + 1}", "offset"),
        ("compliance", f"{API}/encounters?from=0001-01-01", "from"),
        ("compliance", f"{API}/encounters?to=9999-12-31", "to"),
        ("compliance", f"{API}/encounters?provider_id=%00", "provider_id"),
        ("compliance", f"{API}/reports/provider-responsibility?from=0001-01-01", "from"),
        ("compliance", f"{API}/reports/denied-attempts?provider_id=a%00b", "provider_id"),
        ("compliance", f"/fhir/AuditEvent?_offset={10**30}", "_offset"),
        ("compliance", "/fhir/AuditEvent?_count=%EF%BC%95", "_count"),
        ("compliance", f"/fhir/AuditEvent?date={'9' * 5000}", "date"),
        ("compliance", "/fhir/AuditEvent?date=ge0000-01-01", "date"),
        ("compliance", "/fhir/Provenance?target=Encounter/%00", "target"),
        ("compliance", f"{API}/encounters/{'x' * 500}", "encounter_id"),
    ],
)
def test_reported_500s_are_4xx_naming_the_field(
    client: TestClient, org: dict[str, Any], role: str, url: str, field_name: str
) -> None:
    _assert_names(client.get(url, headers=org["headers"][role]), field_name, url[:80])


@pytest.mark.parametrize("value", ["ge0001-01-01", "le9999-12-31", "eq9999", "gt0001-01-01T00:00:00%2B01:00"])
def test_valid_fhir_dates_out_of_range_are_clamped(
    client: TestClient, org: dict[str, Any], value: str
) -> None:
    response = client.get(f"/fhir/AuditEvent?date={value}", headers=org["headers"]["compliance"])
    assert response.status_code == 200, response.text
    assert response.json()["resourceType"] == "Bundle"


def _date_query_params() -> Iterator[tuple[str, str, str]]:
    """(path, parameter, format) for every date or date-time query parameter the API documents."""
    schema = create_app().openapi()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method != "get":
                continue
            for param in operation.get("parameters", []):
                if param["in"] != "query":
                    continue
                kinds = [param["schema"], *param["schema"].get("anyOf", [])]
                formats = {k.get("format") for k in kinds} & {"date", "date-time"}
                if formats:
                    yield path, param["name"], formats.pop()


DATE_QUERY_PARAMS = sorted(_date_query_params())


def test_date_query_params_are_found() -> None:
    assert ("/api/v1/audit/events", "dos_to", "date") in DATE_QUERY_PARAMS


@pytest.mark.parametrize(("path", "name", "kind"), DATE_QUERY_PARAMS)
@pytest.mark.parametrize("value", ["0", "1700000000", "1e3"])
def test_a_number_is_not_a_date(
    client: TestClient, org: dict[str, Any], path: str, name: str, kind: str, value: str
) -> None:
    """A bare number must not be read as Unix time (schemathesis found `dos_to=0` answered 200)."""
    url = _path(path, {**org["values"], "name": "provider-responsibility"})
    response = client.get(url, params={name: value}, headers=org["headers"]["compliance"])
    _assert_names(response, name, f"{url}?{name}={value} ({kind})")
