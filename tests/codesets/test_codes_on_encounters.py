"""Code-set validation on the real write path: releases by date of service, NCCI/MUE findings,
bypasses recorded in the ledger, and edits blocking attestation."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.codesets.service import import_release
from audit.ledger.service import LEDGER
from audit.principal import host_operator
from audit.uow import unit_of_work
from tests.codesets.test_edits import MUE_TEXT, PTP_TEXT
from tests.conftest import People
from tests.support import HCPCS_2020, PASSWORD

API = "/api/v1"


def load(connection: Connection, system: str, path: Path, start: date, end: date, label: str) -> None:
    with unit_of_work(connection) as s:
        import_release(
            s,
            user=host_operator(),
            system=system,
            path=path,
            label=label,
            effective_from=start,
            effective_until=end,
        )


def encounter(client: TestClient, people: People, dos: str) -> tuple[str, dict[str, str], dict[str, str]]:
    provider, coder = people.make("provider"), people.make("coder")
    people.delegate(provider, coder)
    hc = people.headers(coder)
    body = {
        "external_id": f"CS-{people._n}",
        "patient_ref": "MRN-4",
        "date_of_service": dos,
        "rendering_provider_id": provider.id,
    }
    created = client.post(f"{API}/encounters", json=body, headers=hc)
    assert created.status_code == 201, created.text
    return created.json()["id"], hc, people.headers(provider)


def add(client: TestClient, eid: str, headers: dict[str, str], **line: Any) -> Any:
    return client.post(f"{API}/encounters/{eid}/codes", json=line, headers=headers)


def test_icd10cm_headers_are_refused_and_billable_codes_pass_on_the_builtin_release(
    client: TestClient, people: People
) -> None:
    eid, hc, _ = encounter(client, people, "2026-05-04")
    header = add(client, eid, hc, system="ICD-10-CM", code="E11")
    assert header.status_code == 422 and header.json()["field"] == "code"
    assert "not billable" in header.json()["detail"] and "built-in" in header.json()["release"]
    leaf = add(client, eid, hc, system="ICD-10-CM", code="e119")
    assert leaf.status_code == 201 and leaf.json()["code"] == "E11.9" and leaf.json()["findings"] == []
    missing = add(client, eid, hc, system="ICD-10-CM", code="E11.99")
    assert missing.status_code == 422 and "does not exist" in missing.json()["detail"]


def test_a_date_after_the_builtin_year_still_refuses_headers_and_warns(
    client: TestClient, people: People
) -> None:
    eid, hc, _ = encounter(client, people, "2026-11-02")
    (finding,) = add(client, eid, hc, system="ICD-10-CM", code="I10").json()["findings"]
    assert finding["kind"] == "codeset_fallback" and finding["severity"] == "warning"
    assert "FY2026" in finding["checked_against"] and finding["required_release"] == "ICD-10-CM FY2027"
    header = add(client, eid, hc, system="ICD-10-CM", code="J45")
    assert header.status_code == 422 and "loaded latest before" in header.json()["detail"]


def test_a_date_before_every_release_is_unverified(client: TestClient, people: People) -> None:
    eid, hc, _ = encounter(client, people, "2019-06-03")
    response = add(client, eid, hc, system="ICD-10-CM", code="E11")
    assert response.status_code == 201
    (finding,) = response.json()["findings"]
    assert finding["kind"] == "codeset_unverified" and finding["required_release"] == "ICD-10-CM FY2019"


@pytest.mark.skipif(not HCPCS_2020.exists(), reason="shared HCPCS 2020 fixture not present")
def test_hcpcs_termination_and_level_ii_modifiers_follow_the_release(
    client: TestClient, people: People, connection: Connection
) -> None:
    load(connection, "hcpcs", HCPCS_2020, date(2019, 10, 1), date(2020, 3, 31), "HCPCS 2020 annual")
    before, hc, _ = encounter(client, people, "2019-12-31")
    assert add(client, before, hc, system="HCPCS", code="C9043").status_code == 201
    after, hc2, _ = encounter(client, people, "2020-01-02")
    refused = add(client, after, hc2, system="HCPCS", code="C9043")
    assert refused.status_code == 422 and "terminated" in refused.json()["detail"]
    assert refused.json()["release"] == "HCPCS 2020 annual"
    assert add(client, after, hc2, system="HCPCS", code="J1100", modifiers=["JW"]).status_code == 201
    bad_modifier = add(client, after, hc2, system="HCPCS", code="J1100", modifiers=["ZZ"])
    assert bad_modifier.status_code == 422 and bad_modifier.json()["field"] == "modifiers[0]"


def test_cpt_existence_is_checked_only_with_an_imported_list(
    client: TestClient, people: People, connection: Connection, tmp_path: Path
) -> None:
    eid, hc, _ = encounter(client, people, "2025-02-03")
    unlisted = add(client, eid, hc, system="CPT", code="99299")
    assert (
        unlisted.status_code == 201 and "existence not checked" in unlisted.json()["findings"][0]["message"]
    )
    cpt = tmp_path / "cpt_2025.csv"
    cpt.write_text("code,effective_from,effective_until\n99213,2025-01-01,\n99214,2025-01-01,\n")
    load(connection, "cpt", cpt, date(2025, 1, 1), date(2025, 12, 31), "CPT 2025 (licensed list)")
    listed = add(client, eid, hc, system="CPT", code="99213").json()["findings"]
    assert [f for f in listed if f["kind"].startswith("codeset")] == []
    refused = add(client, eid, hc, system="CPT", code="99299")
    assert refused.status_code == 422 and "CPT 2025" in refused.json()["detail"]


@pytest.fixture
def edit_tables(connection: Connection, tmp_path: Path) -> None:
    ptp, mue = tmp_path / "ccipra-v310r0-f1.TXT", tmp_path / "MCR_MUE_PractitionerServices_Eff_01-01-2025.csv"
    ptp.write_text(PTP_TEXT)
    mue.write_text(MUE_TEXT)
    load(connection, "ncci-ptp", ptp, date(2025, 1, 1), date(2025, 3, 31), "NCCI PTP v31.0")
    load(connection, "mue", mue, date(2025, 1, 1), date(2025, 3, 31), "MUE 2025 Q1")


def ledger_detail(connection: Connection, line_id: str) -> dict[str, Any]:
    row = connection.execute(
        select(LEDGER.c.payload).where(LEDGER.c.subject_id == line_id).order_by(LEDGER.c.seq.desc())
    ).first()
    assert row is not None
    return dict(json.loads(bytes(row[0]))["detail"])


@pytest.mark.usefixtures("edit_tables")
def test_ptp_findings_bypass_recorded_and_attestation_blocked(
    client: TestClient, people: People, connection: Connection
) -> None:
    eid, hc, hp = encounter(client, people, "2025-03-03")
    add(client, eid, hc, system="CPT", code="36591")
    exclusive = add(client, eid, hc, system="CPT", code="36592")
    (finding,) = [f for f in exclusive.json()["findings"] if f["kind"] == "ncci_ptp"]
    assert finding["severity"] == "error" and finding["indicator"] == 0
    blocked = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert blocked.status_code == 409 and "NCCI" in blocked.json()["detail"]
    assert blocked.json()["findings"][0]["codes"] == ["36591", "36592"]

    other, hc2, hp2 = encounter(client, people, "2025-03-03")
    add(client, other, hc2, system="CPT", code="11042")
    bypass = add(client, other, hc2, system="CPT", code="97597", modifiers=["59"])
    (finding,) = [f for f in bypass.json()["findings"] if f["kind"] == "ncci_ptp"]
    assert finding["bypassed"] is True and finding["modifier"] == "59"
    (recorded,) = [
        f for f in ledger_detail(connection, bypass.json()["id"])["findings"] if f["kind"] == "ncci_ptp"
    ]
    assert (
        recorded["modifier"] == "59" and recorded["line_id"] == bypass.json()["id"] and recorded["bypassed"]
    )
    signed = client.post(f"{API}/encounters/{other}/attestations", json={"password": PASSWORD}, headers=hp2)
    assert signed.status_code == 201, signed.text

    third, hc3, _ = encounter(client, people, "2025-03-03")
    add(client, third, hc3, system="CPT", code="11042")
    not_a_bypass = add(client, third, hc3, system="CPT", code="97597", modifiers=["26"])
    (finding,) = [f for f in not_a_bypass.json()["findings"] if f["kind"] == "ncci_ptp"]
    assert finding["severity"] == "error" and not finding.get("bypassed")


@pytest.mark.usefixtures("edit_tables")
def test_mue_over_the_limit_warns_and_does_not_block_in_warn_mode(client: TestClient, people: People) -> None:
    eid, hc, hp = encounter(client, people, "2025-03-03")
    over = add(client, eid, hc, system="CPT", code="97110", units=7)
    (finding,) = [f for f in over.json()["findings"] if f["kind"] == "mue"]
    assert finding["indicator"] == 1 and finding["limit"] == 6
    signed = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=hp)
    assert signed.status_code == 201  # compliance.yaml: mue_mode warn
