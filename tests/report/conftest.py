"""The report tests' shared organisation: codes, attestations, changes after them, denied attempts, a
failed signing and an import. A module that needs a different organisation defines its own `org`."""

from __future__ import annotations

import io

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection

from audit.imports.feed import Rejection
from audit.imports.service import run_import
from audit.principal import host_operator
from tests.conftest import People
from tests.imports.test_import_service import as_csv
from tests.report.scenario import API, Org, build, today


@pytest.fixture
def org(client: TestClient, people: People, connection: Connection) -> Org:
    org = build(client, people)  # codes, attestations, changes after them, denied attempts
    u = org.users
    wrong = {"password": "not the password"}  # a failed signing
    url = f"{API}/encounters/{org.encounters['E3']}/attestations"
    assert client.post(url, json=wrong, headers=org.headers["P1"]).status_code in (401, 403, 422)
    feed = [
        {"external_id": f"IMP-{n // 2}", "patient_ref": f"MRN-I{n // 2}", "date_of_service": str(today()),
         "rendering_npi": "1987654328", "entered_by": u["K1"].username, "system": "CPT",
         "code": "99213" if n % 2 else "99214", "modifiers": "", "units": "1", "diagnosis_pointers": "",
         "line_ref": f"L-{n}"}
        for n in range(6)
    ]  # fmt: skip
    other = {"external_id": "IMP-P2", "entered_by": u["K2"].username, "rendering_npi": "1234567893"}
    feed.append({**feed[0], **other})
    rejected: list[Rejection] = []
    stream = io.BytesIO(as_csv(feed))
    run_import(
        connection, submitter=host_operator(), stream=stream, batch_rows=3, on_rejection=rejected.append
    )
    assert rejected == []
    return org
