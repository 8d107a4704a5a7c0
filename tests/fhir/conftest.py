"""Fixtures for the FHIR tests: the app with the FHIR router, a coded and attested encounter, and a
checker that passes every resource through both validators."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from audit.deps import get_bind
from audit.main import create_app
from tests.conftest import People
from tests.fhir.validators import FhirCheck
from tests.support import PASSWORD

API = "/api/v1"


@pytest.fixture
def client(connection: Connection) -> Iterator[TestClient]:
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: connection
    with TestClient(app) as c:
        yield c


@pytest.fixture
def check() -> Iterator[FhirCheck]:
    """Validates each resource with the R4B models as it is seen, and all of them with the npm
    validator when the test ends."""
    checker = FhirCheck()
    yield checker
    checker.node()


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
    bad = client.post(f"{API}/auth/token", data={"username": coder.username, "password": "wrong"})
    assert bad.status_code == 401
    compliance = people.make("compliance", name="Carla Compliance")
    return {
        "provider": provider,
        "coder": coder,
        "compliance": compliance,
        "hcomp": people.headers(compliance),
        "hc": hc,
        "hp": hp,
        "eid": eid,
        "delegation_id": delegation_id,
        "line_id": line.json()["id"],
        "first": first.json(),
        "second": second.json(),
        "dos": dos,
    }
