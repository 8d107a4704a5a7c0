"""Compliance and auditor pages through the real sign-in: the right role sees them, others are refused
(with a denied event), hostile sort/page values are a 4xx page, every view is an audit event."""

from __future__ import annotations

import io
import re
import zipfile
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from tests.conftest import People
from tests.report.scenario import API, Org, ago, build
from tests.web.conftest import csrf_of

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def events(connection: Connection, type_: str, outcome: str = "allowed") -> int:
    stmt = select(func.count()).where(LEDGER.c.type == type_, LEDGER.c.outcome == outcome)
    return int(connection.execute(stmt).scalar_one())


def visible_text(html: str) -> str:
    body = re.sub(r"<(script|style|svg)\b.*?</\1>", "", html, flags=re.S)
    body = re.sub(r"<[^>]+>", " ", body)
    return body


def test_dashboard_for_compliance_with_names_counts_and_charts(
    org: Org, browser_for: Any, connection: Connection
) -> None:
    b = browser_for(org.users["C"])
    before = events(connection, "report.view")
    page = b.get("/compliance")
    assert page.status_code == 200, page.text
    assert events(connection, "report.view") == before + 2  # the dashboard and its coding-audit follow-up
    html = page.text
    assert "Changes after attestation" in html and "Wei Chen" in html and "Dr Ada Okafor" in html
    assert 'role="img"' in html and "Changes after attestation per week" in html
    assert not UUID.search(visible_text(html)), "a raw id is shown as text"


@pytest.mark.parametrize("role", ["coder", "provider", "auditor", "admin"])
def test_dashboard_refuses_other_roles(
    org: Org, people: People, browser_for: Any, connection: Connection, role: str
) -> None:
    other = people.make(role, name=f"Some {role}")
    before = events(connection, "web.page", "denied")
    page = browser_for(other).get("/compliance")
    assert page.status_code == 403 and "<html" in page.text
    assert events(connection, "web.page", "denied") == before + 1


@pytest.mark.parametrize(
    "query",
    ["changes_sort=payload", "aging_sort=1;DROP", "flags_page=0", "late_page=-1", "attempts_per=1000",
     "codes_dir=sideways", "from=yesterday", "provider_id=" + "x" * 80, "changes_page=99999999999"],
)  # fmt: skip
def test_hostile_dashboard_parameters_are_a_4xx_page(org: Org, browser_for: Any, query: str) -> None:
    page = browser_for(org.users["C"]).get(f"/compliance?{query}")
    assert page.status_code == 422, (query, page.status_code)
    assert "<html" in page.text and "Traceback" not in page.text


def test_sorting_and_paging_on_the_dashboard(org: Org, browser_for: Any) -> None:
    b = browser_for(org.users["C"])
    html = b.get("/compliance?aging_sort=provider&aging_dir=desc&aging_per=10").text
    aging = html[html.index('id="aging"') : html.index('id="attempts"')]
    assert aging.index("V-E5") < aging.index("V-E3")  # Dr Ben Stone before Dr Ada Okafor, descending


def test_timeline_flag_and_resolve(org: Org, browser_for: Any, connection: Connection) -> None:
    b = browser_for(org.users["C"])
    enc = org.encounters["E1"]
    page = b.get(f"/compliance/encounters/{enc}")
    assert page.status_code == 200 and "V-E1" in page.text and "Wei Chen" in page.text
    r = b.submit(f"/compliance/encounters/{enc}", f"/compliance/encounters/{enc}/flags",
                 {"text": "level 5 after attestation"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    page = b.get(f"/compliance/encounters/{enc}").text
    flag_id = re.search(r"/compliance/flags/([0-9a-f-]{36})/resolve", page)
    assert flag_id and "level 5 after attestation" in page
    r = b.submit(f"/compliance/encounters/{enc}", f"/compliance/flags/{flag_id.group(1)}/resolve",
                 {"reason": "documentation supports 99215"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert events(connection, "encounter.resolve_flag") == 1
    assert "resolved" in b.get(f"/compliance/encounters/{enc}").text
    no_token = b.client.post(f"/compliance/encounters/{enc}/flags", data={"text": "x"})
    assert no_token.status_code == 403


def test_report_page_and_downloads(org: Org, browser_for: Any, connection: Connection) -> None:
    b = browser_for(org.users["C"])
    page = b.get("/reports/changes-after-attestation?changes_sort=actor&changes_dir=asc")
    assert page.status_code == 200 and page.text.index("Maria Lopez") < page.text.index("Wei Chen")
    before = events(connection, "report.view")
    pdf = b.get("/reports/changes-after-attestation/download?format=pdf")
    assert pdf.headers["content-type"] == "application/pdf"
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.content)).pages)
    assert "Wei Chen" in text
    csv = b.get("/reports/unattested-aging/download?format=csv")
    assert csv.status_code == 200 and "Dr Ben Stone" in csv.text
    assert events(connection, "report.view") == before + 2
    assert b.get("/reports/nope").status_code == 404
    assert b.get("/reports/changes-after-attestation/download?format=exe").status_code == 422
    assert b.get("/reports/changes-after-attestation?changes_sort=payload").status_code == 422


def test_engagement_pages_and_auditor_bundle(org: Org, browser_for: Any, connection: Connection) -> None:
    c = browser_for(org.users["C"])
    assert "Otto Auditor" in c.get("/compliance/engagements").text
    r = c.submit("/compliance/engagements", "/compliance/engagements", {
        "auditor_id": org.users["A"].id, "date_from": ago(30), "date_to": ago(0), "expires_on": "2099-01-01",
        "provider_ids": [org.users["P1"].id], "purpose": "Q4 review"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    a = browser_for(org.users["A"])
    home = a.get("/auditor").text
    link = re.search(r'href="/auditor/engagements/([0-9a-f-]{36})"', home)
    assert link, home
    eng = f"/auditor/engagements/{link.group(1)}"
    assert "Dr Ada Okafor" in a.get(eng).text
    bundle = a.submit(eng, f"{eng}/bundle", {})
    assert bundle.status_code == 200 and bundle.headers["content-type"] == "application/zip"
    names = zipfile.ZipFile(io.BytesIO(bundle.content)).namelist()
    assert "verify.py" in names or any(n.endswith("verify.py") for n in names)
    inside = a.get(f"/reports/changes-after-attestation?from={ago(30)}&to={ago(0)}")
    assert inside.status_code == 200 and "V-E1" in inside.text and "V-E4" not in inside.text
    assert "/compliance/encounters/" not in inside.text  # no links to pages an auditor may not open
    before = events(connection, "report.view", "denied")
    outside = a.get(f"/reports/changes-after-attestation?from={ago(90)}&to={ago(0)}")
    assert outside.status_code == 403
    assert events(connection, "report.view", "denied") == before + 1
    assert a.get("/compliance").status_code == 403
    assert c.get(eng).status_code == 403  # compliance has no auditor pages
    sample = a.submit(eng, f"{eng}/sample", {"n": "2", "seed": "7"})
    assert sample.status_code == 200 and "V-E" in sample.text


def test_auditor_cannot_open_another_auditors_engagement(org: Org, people: People, browser_for: Any) -> None:
    other = people.make("auditor", name="Other Auditor")
    body = {
        "auditor_id": other.id,
        "date_from": ago(30),
        "date_to": ago(0),
        "expires_at": "2099-01-01T00:00:00Z",
    }
    made = org.client.post(f"{API}/engagements", json=body, headers=org.headers["C"])
    assert made.status_code == 201, made.text
    page = browser_for(org.users["A"]).get(f"/auditor/engagements/{made.json()['id']}")
    assert page.status_code == 404
    assert csrf_of(browser_for(org.users["A"]).get("/auditor").text)


def test_timeline_and_report_pages_show_no_whole_ids(org: Org, browser_for: Any) -> None:
    b = browser_for(org.users["C"])
    for path in (f"/compliance/encounters/{org.encounters['E1']}", "/reports/denied-attempts",
                 "/reports/late-attestations", "/reports/delegation-register"):  # fmt: skip
        page = b.get(path)
        assert page.status_code == 200
        assert not UUID.search(visible_text(page.text)), path
    late = b.get("/reports/late-attestations").text  # links keep the whole id
    assert f'href="/compliance/encounters/{org.encounters["E2"]}"' in late
