"""Each report's figures over a scenario with known counts, in JSON, CSV and PDF."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import People
from tests.report.scenario import Org, build


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def by(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, Any]]:
    return {row[key]: row for row in rows}


def test_provider_responsibility_json(org: Org) -> None:
    body = org.report("C", "provider-responsibility").json()
    assert body["report"] == "provider-responsibility" and body["generated_at"].endswith("Z")
    rows = by(body["rows"], "provider")
    p1, p2 = rows["Dr Ada Okafor"], rows["Dr Ben Stone"]
    assert p1["npi"] == "1987654328"
    assert {k: p1[k] for k in ("encounters", "attested", "unattested", "attested_late")} == {
        "encounters": 3,
        "attested": 1,
        "unattested": 1,
        "attested_late": 1,
    }
    assert (
        p1["amended_not_reattested"] == 1 and p1["lines_by_provider"] == 1 and p1["lines_by_delegates"] == 2
    )
    assert (
        p1["changes_after_attestation"] == 1 and p1["denied_attempts"] == 1 and p1["active_delegations"] == 2
    )
    assert p1["delegate_lines"] == "Maria Lopez: 1; Wei Chen: 1"
    assert (p2["encounters"], p2["attested"], p2["unattested"], p2["attested_late"]) == (2, 1, 1, 0)
    assert (p2["amended_not_reattested"], p2["lines_by_provider"], p2["lines_by_delegates"]) == (0, 1, 2)
    assert (p2["changes_after_attestation"], p2["denied_attempts"], p2["active_delegations"]) == (1, 1, 1)
    detail = body["sections"]["delegate_lines"]["rows"]
    assert {(r["provider"], r["entered_by"], r["lines"]) for r in detail} == {
        ("Dr Ada Okafor", "Maria Lopez", 1),
        ("Dr Ada Okafor", "Wei Chen", 1),
        ("Dr Ben Stone", "Maria Lopez", 2),
    }


def test_filters_narrow_by_date_of_service_and_provider(org: Org) -> None:
    from tests.report.scenario import ago

    body = org.report("C", "provider-responsibility", **{"from": ago(30), "to": ago(0)}).json()
    rows = by(body["rows"], "provider")
    assert rows["Dr Ada Okafor"]["encounters"] == 2 and rows["Dr Ben Stone"]["encounters"] == 1
    assert rows["Dr Ada Okafor"]["attested_late"] == 0 and body["filters"]["from"] == ago(30)
    only = org.report("C", "provider-responsibility", provider_id=org.users["P2"].id).json()
    assert [r["provider"] for r in only["rows"]] == ["Dr Ben Stone"]


def test_provider_responsibility_csv_and_pdf(org: Org) -> None:
    response = org.report("C", "provider-responsibility", format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert "\r\n" in response.text
    table = list(csv.reader(io.StringIO(response.text)))
    assert table[0][:4] == ["provider_id", "provider", "npi", "encounters"] and len(table) == 3
    p1 = next(row for row in table if row[1] == "Dr Ada Okafor")
    assert p1[3:8] == ["3", "1", "1", "1", "1"] and p1[-1] == "Maria Lopez: 1; Wei Chen: 1"
    delegates = org.report("C", "provider-responsibility", format="csv", section="delegate_lines")
    assert len(list(csv.reader(io.StringIO(delegates.text)))) == 4
    assert_pdf(org.report("C", "provider-responsibility", format="pdf").content, "Provider responsibility")


def assert_pdf(content: bytes, title: str) -> None:
    assert content.startswith(b"%PDF")
    try:
        from pypdf import PdfReader
    except ImportError:  # no text extraction available: the page count is the check
        assert content.count(b"/Type /Page") > 0
        return
    reader = PdfReader(io.BytesIO(content))
    assert len(reader.pages) > 0 and title in reader.pages[0].extract_text()


def test_changes_after_attestation(org: Org) -> None:
    rows = org.report("C", "changes-after-attestation").json()["rows"]
    assert [(r["external_id"], r["type"], r["actor"]) for r in rows] == [
        ("V-E1", "code.change", "Wei Chen"),
        ("V-E4", "code.add", "Maria Lopez"),
    ]
    assert rows[0]["before"] == "CPT 99214 x1" and rows[0]["after"] == "CPT 99215 x1"
    assert rows[0]["reason"] == "documentation supports level 5"
    table = list(csv.reader(io.StringIO(org.report("C", "changes-after-attestation", format="csv").text)))
    assert len(table) == 3
    assert_pdf(
        org.report("C", "changes-after-attestation", format="pdf").content, "Changes after attestation"
    )


def test_unattested_aging(org: Org) -> None:
    rows = by(org.report("C", "unattested-aging").json()["rows"], "provider")
    p1, p2 = rows["Dr Ada Okafor"], rows["Dr Ben Stone"]
    assert (p1["open"], p1["amended"], p1["0-7"], p1["8-14"], p1["61+"], p1["total"]) == (1, 1, 1, 1, 0, 2)
    assert (p2["open"], p2["0-7"], p2["15-30"], p2["31-60"], p2["61+"], p2["total"]) == (1, 0, 0, 0, 1, 1)
    table = list(csv.reader(io.StringIO(org.report("C", "unattested-aging", format="csv").text)))
    assert table[0][5:10] == ["0-7", "8-14", "15-30", "31-60", "61+"] and len(table) == 3
    assert_pdf(org.report("C", "unattested-aging", format="pdf").content, "Unattested encounters")


def test_late_attestations(org: Org) -> None:
    rows = org.report("C", "late-attestations").json()["rows"]
    assert len(rows) == 1 and rows[0]["external_id"] == "V-E2" and rows[0]["signed_by"] == "Dr Ada Okafor"
    assert rows[0]["days_after_service"] == 45 and rows[0]["status"] == "valid"
    assert len(org.report("C", "late-attestations", format="csv").text.strip().split("\r\n")) == 2
    assert_pdf(org.report("C", "late-attestations", format="pdf").content, "Late attestations")


def test_coder_activity(org: Org) -> None:
    rows = by(org.report("C", "coder-activity").json()["rows"], "coder")
    wei, maria = rows["Wei Chen"], rows["Maria Lopez"]
    assert (wei["lines_added"], wei["lines_changed"], wei["lines_voided"]) == (1, 1, 0)
    assert (wei["encounters_touched"], wei["providers_served"]) == (1, 1)
    assert (maria["lines_added"], maria["encounters_touched"], maria["providers_served"]) == (3, 2, 2)
    assert len(org.report("C", "coder-activity", format="csv").text.strip().split("\r\n")) == 3
    assert_pdf(org.report("C", "coder-activity", format="pdf").content, "Coder activity")


def test_delegation_register(org: Org) -> None:
    rows = org.report("C", "delegation-register").json()["rows"]
    assert sorted((r["provider"], r["coder"], r["status"]) for r in rows) == [
        ("Dr Ada Okafor", "Maria Lopez", "active"),
        ("Dr Ada Okafor", "Wei Chen", "active"),
        ("Dr Ben Stone", "Maria Lopez", "active"),
        ("Dr Ben Stone", "Wei Chen", "revoked"),
    ]
    revoked = next(r for r in rows if r["status"] == "revoked")
    assert revoked["reason"] == "left the team"
    assert len(org.report("C", "delegation-register", format="csv").text.strip().split("\r\n")) == 5
    assert_pdf(org.report("C", "delegation-register", format="pdf").content, "Delegation register")


def test_denied_attempts(org: Org) -> None:
    rows = org.report("C", "denied-attempts").json()["rows"]
    assert [(r["actor"], r["action"], r["provider"]) for r in rows] == [
        ("Wei Chen", "code.add", "Dr Ben Stone"),
        ("Wei Chen", "encounter.attest", "Dr Ada Okafor"),
    ]
    assert all(r["rule_ids"] and r["at"].endswith("Z") for r in rows)
    assert len(org.report("C", "denied-attempts", format="csv").text.strip().split("\r\n")) == 3
    assert_pdf(org.report("C", "denied-attempts", format="pdf").content, "Denied attempts")


def test_em_distribution(org: Org) -> None:
    rows = org.report("C", "em-distribution").json()["rows"]
    cells = {(r["provider"], r["code"]): r for r in rows}
    assert cells[("Dr Ada Okafor", "99215")]["lines"] == 2
    assert cells[("Dr Ada Okafor", "99215")]["provider_share_pct"] == "66.7"
    assert cells[("Dr Ada Okafor", "99215")]["group_share_pct"] == "50.0"
    assert cells[("Dr Ada Okafor", "99213")]["provider_share_pct"] == "33.3"
    assert cells[("Dr Ben Stone", "99212")]["provider_share_pct"] == "100.0"
    assert cells[("Dr Ben Stone", "99212")]["group_share_pct"] == "25.0"
    assert cells[("Dr Ben Stone", "99203")]["group_share_pct"] == "100.0"
    narrowed = org.report("C", "em-distribution", provider_id=org.users["P1"].id).json()["rows"]
    assert {r["provider"] for r in narrowed} == {"Dr Ada Okafor"}
    assert next(r for r in narrowed if r["code"] == "99215")["group_share_pct"] == "50.0"
    assert_pdf(org.report("C", "em-distribution", format="pdf").content, "E/M level distribution")


def test_encounter_timeline(org: Org) -> None:
    eid = org.encounters["E1"]
    body = org.report("P1", "encounter-timeline", encounter_id=eid).json()
    types = [r["type"] for r in body["rows"]]
    assert types == [
        "encounter.create",
        "code.add",
        "encounter.attest",
        "code.change",
        "attestation.supersede",
    ]
    change = body["rows"][3]
    assert change["before"].startswith("CPT 99214 x1 (v1)") and change["after"].startswith(
        "CPT 99215 x1 (v2)"
    )
    assert change["actor"] == "Wei Chen" and change["reason"] == "documentation supports level 5"
    signatures = body["sections"]["signatures"]["rows"]
    assert len(signatures) == 1 and signatures[0]["printed_name"] == "Dr Ada Okafor"
    assert signatures[0]["meaning"] and signatures[0]["status"] == "superseded" and signatures[0]["signed_at"]
    assert len(org.report("C", "encounter-timeline", encounter_id=eid, format="csv").text.split("\r\n")) == 7
    assert_pdf(
        org.report("C", "encounter-timeline", encounter_id=eid, format="pdf").content, "Encounter timeline"
    )
    missing = org.report("C", "encounter-timeline", expect=422).json()
    assert missing["field"] == "encounter_id"
