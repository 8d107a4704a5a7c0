"""POST /api/v1/codesets/check: the decision a write would get, for inline validation; it records
nothing, needs a signed-in user, and a malformed request is a 422 naming the field."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from tests.conftest import People

URL = "/api/v1/codesets/check"


def ledger_size(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(LEDGER)).scalar_one())


@pytest.fixture
def headers(people: People) -> dict[str, str]:
    return people.headers(people.make("coder"))


def check(client: TestClient, headers: dict[str, str], **body: Any) -> Any:
    return client.post(URL, json=body, headers=headers)


def test_decisions_match_the_write_path(
    client: TestClient, headers: dict[str, str], connection: Connection
) -> None:
    before = ledger_size(connection)
    ok = check(client, headers, system="icd10cm", code="e119", date_of_service="2025-11-15")
    assert ok.status_code == 200
    body = ok.json()
    assert body["decision"] == "accepted" and body["status"] == "valid" and body["code"] == "E11.9"
    assert body["system"] == "ICD-10-CM" and body["findings"] == [] and body["blocks_attestation"] is False
    assert body["release"]["label"] == "FY2026 (built-in)" and body["release"]["builtin"] is True
    assert (
        body["release"]["effective_from"] == "2025-10-01" and "simple-icd-10-cm" in body["release"]["source"]
    )

    header = check(client, headers, system="ICD-10-CM", code="E11", date_of_service="2025-11-15").json()
    assert header["decision"] == "refused" and header["field"] == "code" and "header" in header["message"]
    assert header["blocks_attestation"] is True

    new = check(client, headers, system="ICD-10-CM", code="Z99.999", date_of_service="2026-11-15").json()
    assert new["decision"] == "accepted" and new["status"] == "unverified" and new["blocks_attestation"]
    assert new["findings"][0]["import_command"] == "audit codesets import icd10cm icd10cm_order_2027.txt"
    assert new["release"]["label"] == "FY2026 (built-in)"

    bad_format = check(
        client, headers, system="CPT", code="\uff19\uff19\uff12\uff11\uff13", date_of_service="2025-01-02"
    )
    assert bad_format.status_code == 200 and bad_format.json()["decision"] == "refused"
    assert bad_format.json()["field"] == "code" and "ASCII" in bad_format.json()["message"]

    modifier = check(
        client, headers, system="CPT", code="99213", modifiers=["25", "34"], date_of_service="2025-01-02"
    ).json()
    assert modifier["decision"] == "refused" and modifier["field"] == "modifiers[1]"
    unchecked = check(
        client, headers, system="CPT", code="99213", modifiers=["lt"], date_of_service="2025-01-02"
    )
    assert unchecked.json()["modifiers"] == ["LT"] and unchecked.json()["status"] == "unchecked"
    assert unchecked.json()["release"] is None

    assert ledger_size(connection) == before  # records nothing


def test_requires_a_signed_in_user(client: TestClient) -> None:
    anonymous = client.post(URL, json={"system": "CPT", "code": "99213", "date_of_service": "2025-01-02"})
    assert anonymous.status_code == 401
    forged = client.post(
        URL,
        json={"system": "CPT", "code": "99213", "date_of_service": "2025-01-02"},
        headers={"Authorization": "Bearer not-a-token"},
    )
    assert forged.status_code == 401


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": "99213", "date_of_service": "2025-01-02"}, "system"),
        ({"system": "SNOMED", "code": "99213", "date_of_service": "2025-01-02"}, "system"),
        ({"system": "\uff23\uff30\uff34", "code": "99213", "date_of_service": "2025-01-02"}, "system"),
        ({"system": "C" * 33, "code": "99213", "date_of_service": "2025-01-02"}, "system"),
        ({"system": "CPT", "code": "9" * 17, "date_of_service": "2025-01-02"}, "code"),
        ({"system": "CPT", "code": "", "date_of_service": "2025-01-02"}, "code"),
        ({"system": "CPT", "code": "99213", "date_of_service": "2025-02-30"}, "date_of_service"),
        ({"system": "CPT", "code": "99213", "date_of_service": "0001-01-01"}, "date_of_service"),
        ({"system": "CPT", "code": "99213", "date_of_service": "9999-12-31"}, "date_of_service"),
        ({"system": "CPT", "code": "99213"}, "date_of_service"),
        (
            {"system": "CPT", "code": "99213", "date_of_service": "2025-01-02", "modifiers": ["25"] * 5},
            "modifiers",
        ),
        (
            {"system": "CPT", "code": "99213", "date_of_service": "2025-01-02", "modifiers": ["x" * 9]},
            "modifiers[0]",
        ),
        (
            {"system": "CPT", "code": "99213", "date_of_service": "2025-01-02", "patient_ref": "MRN-1"},
            "patient_ref",
        ),
        ({"system": ["CPT"], "code": "99213", "date_of_service": "2025-01-02"}, "system"),
    ],
)
def test_malformed_requests_are_422_naming_the_field(
    client: TestClient, headers: dict[str, str], connection: Connection, body: dict[str, Any], field: str
) -> None:
    before = ledger_size(connection)
    response = client.post(URL, json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "InvalidInput" and response.json()["field"] == field
    assert ledger_size(connection) == before
