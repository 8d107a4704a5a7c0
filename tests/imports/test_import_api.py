"""POST /api/v1/imports: the feed as a streamed request body, for people and integration accounts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from audit.principal import CurrentUser
from tests.conftest import People
from tests.imports.test_import_service import as_csv, events, row, verified

API = "/api/v1/imports"


@pytest.fixture
def org(people: People) -> dict[str, Any]:
    provider = people.make("provider", npi="1987654328")
    coder = people.make("coder")
    feed = people.make("integration")
    people.delegate(provider, coder)
    return {"provider": provider, "coder": coder, "feed": feed, "people": people}


def chunks(data: bytes, size: int = 1000) -> Iterator[bytes]:
    """The body as a stream (chunked transfer encoding, no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


def post(client: TestClient, headers: dict[str, str], data: bytes, media: str = "text/csv") -> Any:
    return client.post(API, content=chunks(data), headers={**headers, "Content-Type": media})


def test_a_coder_streams_their_own_feed(
    client: TestClient, connection: Connection, org: dict[str, Any]
) -> None:
    coder: CurrentUser = org["coder"]
    data = as_csv([row(coder, n) for n in range(7)] + [row(coder, 7, code="ZZZZZ")])
    response = post(client, org["people"].headers(coder), data)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["counts"]["created"] == 7 and body["counts"]["rejected"] == 1
    assert body["rejections"] == [{"line": 9, "field": "code", "reason": body["rejections"][0]["reason"]}]
    assert {e["actor"]["id"] for e in events(connection, "code.add")} == {coder.id}
    again = post(client, org["people"].headers(coder), data).json()
    assert again["counts"]["unchanged"] == 7 and again["counts"]["created"] == 0
    verified(connection)


def test_an_integration_account_streams_ndjson_for_a_coder(
    client: TestClient, connection: Connection, org: dict[str, Any]
) -> None:
    coder, feed = org["coder"], org["feed"]
    data = "".join(json.dumps(row(coder, n)) + "\n" for n in range(5)).encode()
    response = post(client, org["people"].headers(feed), data, "application/x-ndjson")
    assert response.status_code == 200, response.text
    assert response.json()["format"] == "ndjson" and response.json()["counts"]["created"] == 5
    adds = events(connection, "code.add")
    assert {(e["actor"]["id"], e["on_behalf_of"]["user_id"]) for e in adds} == {(feed.id, coder.id)}
    verified(connection)


def test_anonymous_is_401_and_compliance_is_403(
    client: TestClient, connection: Connection, org: dict[str, Any]
) -> None:
    data = as_csv([row(org["coder"], 0)])
    anonymous = post(client, {}, data)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "NotAuthenticated"
    officer = org["people"].make("compliance")
    refused = post(client, org["people"].headers(officer), data)
    assert (
        refused.status_code == 403
        and "segregation.compliance_no_clinical_write" in refused.json()["rule_ids"]
    )
    assert events(connection, "code.add") == []
    verified(connection)


def test_bad_files_are_4xx_naming_the_field(
    client: TestClient, connection: Connection, org: dict[str, Any]
) -> None:
    headers = org["people"].headers(org["feed"])
    wrong_type = post(client, headers, b"{}", "application/xml")
    assert wrong_type.status_code == 415 and wrong_type.json()["field"] == "Content-Type"
    no_columns = post(client, headers, b"external_id,code\nV-1,99213\n")
    assert no_columns.status_code == 422 and no_columns.json()["field"] == "header"
    assert "missing column(s)" in no_columns.json()["detail"]
    verified(connection)


def test_hostile_bodies_are_rejected_rows_never_500(
    client: TestClient, connection: Connection, org: dict[str, Any]
) -> None:
    coder = org["coder"]
    headers = org["people"].headers(org["feed"])
    good = as_csv([row(coder, 0)])
    hostile = [
        good + b"V-1,MRN-1,2026-11-02,1987654328,a\x00b,CPT,99213,,1,,L-1\n",
        good + b"\xc3\x28\xa0\xa1,,,,,,,,,,\n",
        good + b"V-1," + b"B" * (10 * 1024 * 1024) + b"\n",
        good + b'"' * 70000 + b"\n",
        b'{"external_id": ' + b"[" * 100_000 + b"\n",
        b'{"external_id": "' + b"x" * 60000 + b'"}\n',
        b"\xef\xbb\xbf" + good,  # a byte-order mark is fine
    ]
    for n, data in enumerate(hostile):
        media = "application/x-ndjson" if data.startswith(b"{") else "text/csv"
        response = post(client, headers, data, media)
        assert response.status_code in (200, 422), (n, response.status_code, response.text[:300])
        if response.status_code == 200 and n < 4:
            assert response.json()["counts"]["rejected"] == 1, (n, response.json())
            assert response.json()["rejections"][0]["field"], n
    verified(connection)
