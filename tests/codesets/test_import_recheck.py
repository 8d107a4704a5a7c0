"""Importing a release re-checks the lines it can judge; the changed ones get an event each and show
in the codes-invalid-for-date report. With the real CMS HCPCS 2020 file, a terminated code is refused
on every path: adding, changing, the re-check on import, the check endpoint and the fallback."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.codesets.service import ImportResult, import_release
from audit.ledger.service import LEDGER
from audit.ledger.service import verify as verify_ledger
from audit.principal import host_operator
from audit.uow import unit_of_work
from tests.conftest import People
from tests.support import HCPCS_2020, PASSWORD

API = "/api/v1"
needs_hcpcs = pytest.mark.skipif(not HCPCS_2020.exists(), reason=f"{HCPCS_2020} not present")


def load(connection: Connection, system: str, path: Path) -> ImportResult:
    with unit_of_work(connection) as s:
        return import_release(s, user=host_operator(), system=system, path=path)


class Org:
    def __init__(self, client: TestClient, people: People) -> None:
        self.client, self.people = client, people
        provider, coder = people.make("provider"), people.make("coder")
        people.delegate(provider, coder)
        self.provider = provider
        self.hc, self.hp = people.headers(coder), people.headers(provider)
        self.hcomp = people.headers(people.make("compliance"))

    def encounter(self, dos: str) -> str:
        body = {
            "external_id": f"RC-{dos}-{self.people._n}-{id(self)}",
            "patient_ref": "MRN-SECRET-77",
            "date_of_service": dos,
            "rendering_provider_id": self.provider.id,
        }
        self.people._n += 1
        created = self.client.post(f"{API}/encounters", json=body, headers=self.hc)
        assert created.status_code == 201, created.text
        return str(created.json()["id"])

    def add(self, eid: str, system: str, code: str, **more: Any) -> Any:
        line = {"system": system, "code": code, **more}
        return self.client.post(f"{API}/encounters/{eid}/codes", json=line, headers=self.hc)

    def check(self, system: str, code: str, dos: str) -> Any:
        body = {"system": system, "code": code, "date_of_service": dos}
        return self.client.post(f"{API}/codesets/check", json=body, headers=self.hc).json()

    def report(self, **params: str) -> Any:
        return self.client.get(f"{API}/reports/codes-invalid-for-date", params=params, headers=self.hcomp)


def rechecks(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(LEDGER.c.payload).where(LEDGER.c.type == "codeset.recheck").order_by(LEDGER.c.seq)
    )
    return [json.loads(bytes(r[0])) for r in rows]


@needs_hcpcs
def test_hcpcs_termination_is_refused_on_every_path(
    client: TestClient, people: People, connection: Connection
) -> None:
    org = Org(client, people)
    # Before any HCPCS release is loaded: format checked only.
    in_2020, in_2027 = org.encounter("2020-06-01"), org.encounter("2027-02-01")
    early = org.add(in_2020, "HCPCS", "A4466")  # terminated 2016-12-31 in the CMS file
    assert early.status_code == 201 and early.json()["findings"][0]["kind"] == "codeset_not_loaded"
    good = org.add(in_2020, "HCPCS", "J1100")
    with_modifier = org.add(in_2020, "HCPCS", "J1100", modifiers=["JW"])
    cpt_line = org.add(in_2020, "CPT", "29540", modifiers=["RT"])
    later = org.add(in_2027, "HCPCS", "A4466")
    assert good.status_code == with_modifier.status_code == cpt_line.status_code == later.status_code == 201

    result = load(connection, "hcpcs", HCPCS_2020)
    # The CPT line is re-checked for its Level II modifier, but stays unchecked (no CPT list): no event.
    assert result.release.label == "HCPCS 2020" and result.recheck.checked == 5
    assert (result.recheck.invalid, result.recheck.verified, result.recheck.events) == (2, 2, 4)

    # Re-check on import: one event per changed line, named by the line, never the patient.
    events = {e["subject"]["id"]: e for e in rechecks(connection)}
    assert set(events) == {
        early.json()["id"],
        good.json()["id"],
        with_modifier.json()["id"],
        later.json()["id"],
    }
    terminated = events[early.json()["id"]]
    assert (
        terminated["detail"]["status"] == "invalid" and terminated["detail"]["previous_status"] == "unchecked"
    )
    assert (
        "2016-12-31" in terminated["detail"]["message"] and terminated["detail"]["import_seq"] == result.seq
    )
    assert terminated["actor"]["role"] == "operator" and terminated["encounter_id"] == in_2020
    assert events[good.json()["id"]]["detail"]["status"] == "valid"
    assert events[with_modifier.json()["id"]]["detail"]["status"] == "valid"
    fallback = events[later.json()["id"]]["detail"]  # 2027: judged by the latest earlier release
    assert fallback["status"] == "invalid" and "judged by" in fallback["message"]
    assert "MRN-SECRET-77" not in json.dumps(list(events.values()))

    # Adding and changing refuse it; the check endpoint refuses it, in the period and after it.
    for eid in (in_2020, in_2027):
        refused = org.add(eid, "HCPCS", "A4466")
        assert refused.status_code == 422 and "terminated" in refused.json()["detail"], refused.text
    url = f"{API}/encounters/{in_2020}/codes/{good.json()['id']}"
    changed = client.patch(url, json={"code": "A4466"}, headers={**org.hc, "If-Match": '"1"'})
    assert changed.status_code == 422 and "2016-12-31" in changed.json()["detail"]
    for dos in ("2020-06-01", "2027-02-01"):
        checked = org.check("HCPCS", "A4466", dos)
        assert checked["decision"] == "refused" and checked["release"]["label"] == "HCPCS 2020"

    # The attestation of an encounter holding a line that is now invalid is refused, naming it.
    blocked = client.post(
        f"{API}/encounters/{in_2020}/attestations", json={"password": PASSWORD}, headers=org.hp
    )
    assert blocked.status_code == 409
    assert [(x["line_id"], x["status"]) for x in blocked.json()["lines"]] == [(early.json()["id"], "invalid")]

    # The report: invalid lines first, then the lines the import confirmed.
    rows = org.report().json()["rows"]
    assert [(r["line_id"], r["status"]) for r in rows[:2]] == [
        (early.json()["id"], "invalid"),
        (later.json()["id"], "invalid"),
    ]
    assert {r["status"] for r in rows[2:]} == {"valid"} and len(rows) == 4
    scoped = org.report(**{"from": "2027-01-01", "to": "2027-12-31"}).json()["rows"]
    assert [r["line_id"] for r in scoped] == [later.json()["id"]]
    text = org.report(format="csv").text
    table = list(csv.DictReader(io.StringIO(text)))
    assert (
        table[0]["code"] == "A4466"
        and table[0]["status"] == "invalid"
        and table[0]["release"] == "HCPCS 2020"
    )
    pdf = org.report(format="pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")

    # Voiding the invalid line takes it off the report; the ledger verifies.
    void = client.post(
        f"{API}/encounters/{in_2020}/codes/{early.json()['id']}/void",
        json={"reason": "terminated code"},
        headers=org.hc,
    )
    assert void.status_code == 200, void.text
    assert early.json()["id"] not in [r["line_id"] for r in org.report().json()["rows"]]
    with unit_of_work(connection) as s:
        assert verify_ledger(s).ok


def order_file(path: Path, rows: list[tuple[str, bool]]) -> Path:
    lines = [
        f"{n:05d} {code:<7} {int(billable)} {'short':<60} long" for n, (code, billable) in enumerate(rows, 1)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_importing_fy2027_settles_unverified_lines_and_unblocks_attestation(
    client: TestClient, people: People, connection: Connection, tmp_path: Path
) -> None:
    """FY2027 is not built in: its lines are judged by FY2026 until it is imported. The file here
    stands in for CMS's FY2027 order file (not available to the tests): E11.B new, E11.9 gone."""
    org = Org(client, people)
    eid = org.encounter("2026-11-15")
    new_code = org.add(eid, "ICD-10-CM", "E11.B")
    assert new_code.json()["findings"][0]["kind"] == "codeset_unverified"
    other = org.encounter("2026-12-01")
    gone = org.add(other, "ICD-10-CM", "E11.9")
    invented = org.add(other, "ICD-10-CM", "Z99.999")
    unaffected = org.add(other, "CPT", "99213")
    fy2026 = org.encounter("2026-09-30")
    before_period = org.add(fy2026, "ICD-10-CM", "E11.9")
    blocked = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=org.hp)
    assert blocked.status_code == 409

    fy2027 = order_file(
        tmp_path / "icd10cm_order_2027.txt",
        [("E11", False), ("E11B", True), ("I10", True), ("Z99", False), ("Z990", True)],
    )
    result = load(connection, "icd10cm", fy2027)
    assert (result.release.effective_from, result.release.effective_until) == (
        date(2026, 10, 1),
        date(2027, 9, 30),
    )
    assert result.counts == {"records": 5, "codes": 5, "headers": 2, "terminated": 0, "modifiers": 0}
    assert result.recheck.checked == 3  # the FY2026 line and the CPT line are not this release's to judge
    statuses = {
        e["subject"]["id"]: (e["detail"]["previous_status"], e["detail"]["status"])
        for e in rechecks(connection)
    }
    assert statuses == {
        new_code.json()["id"]: ("unverified", "valid"),
        gone.json()["id"]: ("fallback", "invalid"),
        invented.json()["id"]: ("unverified", "invalid"),
    }
    assert unaffected.json()["id"] not in statuses and before_period.json()["id"] not in statuses
    signed = client.post(f"{API}/encounters/{eid}/attestations", json={"password": PASSWORD}, headers=org.hp)
    assert signed.status_code == 201, signed.text

    # Importing the same release again changes no decision, so it records no re-check.
    again = load(connection, "icd10cm", fy2027)
    assert again.recheck.checked == 3 and again.recheck.events == 0
    imports = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == "codeset.import")).all()
    assert len(imports) == 2
