"""The coding-audit pages beyond one audit: the list at /audits (each row judged by the same
`coding_audit.read` rule and context as the audit page), the form that opens an audit and the button
that draws its sample (the API's services, recorded through `authorize()`), and the menu link."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from audit.coding_audit.models import CodingAudit
from tests.coding_audit.world import World, ago, build
from tests.conftest import People
from tests.web.test_pages import events

AUDIT_LINK = re.compile(r'href="/audits/([0-9a-f-]{36})"')
FORM = {"name": "Page probe", "date_from": ago(30), "date_to": ago(0), "method": "probe", "n": "3",
        "seed": "42", "strata": ""}  # fmt: skip


def listed(b: Any, query: str = "") -> set[str]:
    page = b.get(f"/audits{query}")
    assert page.status_code == 200, page.text
    return set(AUDIT_LINK.findall(page.text))


@pytest.fixture
def w(client: TestClient, people: People) -> World:
    return build(client, people)


def test_each_role_lists_only_the_audits_it_may_read(w: World, people: People, browser_for: Any) -> None:
    a2 = w.user("A2", "auditor")
    people.engage(a2, w.users["C"], date_from=ago(60), date_to=ago(0))
    w.headers["A2"] = people.headers(a2)
    by_a = w.open_audit("A").json()["id"]
    by_a2 = w.open_audit("A2", name="Other firm's audit").json()["id"]
    by_c = w.open_audit("C", name="Compliance's own").json()["id"]
    assert listed(browser_for(w.users["C"])) == {by_a, by_a2, by_c}
    assert listed(browser_for(w.users["A"])) == {by_a}
    assert listed(browser_for(w.users["A2"])) == {by_a2}
    admin = people.make("admin")
    assert listed(browser_for(admin)) == set()


def findings_for_me(b: Any) -> set[tuple[str, str]]:
    page = b.get("/audits")
    assert page.status_code == 200 and "Audit findings for me" in page.text, page.text
    return set(re.findall(r'href="/audits/([0-9a-f-]{36})#finding-([0-9a-f-]{36})"', page.text))


def test_providers_and_coders_list_the_findings_addressed_to_them(
    w: World, browser_for: Any, connection: Connection
) -> None:
    aid = w.open_audit("A").json()["id"]
    w.call("POST", f"/audits/{aid}/sample", "A", 200)
    p1, k1, p2, k2 = (browser_for(w.users[k]) for k in ("P1", "K1", "P2", "K2"))
    assert findings_for_me(p1) == set()
    on_p1 = w.finding(aid, "A", w.encounters["P1"][1], "disagree", revised={"code": "99213"},
                      category="upcoded").json()["id"]  # fmt: skip
    on_p2 = w.finding(aid, "A", w.encounters["P2"][0], "agree").json()["id"]
    assert findings_for_me(p1) == findings_for_me(k1) == {(aid, on_p1)}
    assert findings_for_me(p2) == findings_for_me(k2) == {(aid, on_p2)}
    for key in ("audit", "encounter", "dos", "code", "verdict", "category", "status", "recorded"):
        assert p1.get(f"/audits?sort={key}&dir=desc").status_code == 200, key
    assert p1.get("/audits?sort=name").status_code == 422
    assert "Open an audit" not in p1.get("/audits").text
    views = [e for e in events(connection, "coding_audit.read") if e["detail"].get("view") == "list"]
    mine = [e for e in views if e["actor"]["id"] == w.users["P1"].id]
    assert mine and mine[-1]["detail"]["page"] == "audits.findings_for_me"
    assert mine[-1]["detail"]["scope"] == {"everything": False, "audits": 1}


def test_an_auditor_whose_engagement_ended_lists_nothing(w: World, browser_for: Any) -> None:
    aid = w.open_audit("A").json()["id"]
    b = browser_for(w.users["A"])
    assert listed(b) == {aid}
    engagement = w.call("GET", "/engagements", "C", 200).json()
    eid = (engagement["items"] if isinstance(engagement, dict) else engagement)[0]["id"]
    w.call("POST", f"/engagements/{eid}/revoke", "C", 200, json={"reason": "engagement over"})
    assert listed(b) == set()


def test_the_list_names_people_sorts_every_column_pages_and_records_the_view(
    w: World, browser_for: Any, connection: Connection
) -> None:
    ids = [w.open_audit("C", name=f"Audit {i:02d}", seed=i).json()["id"] for i in range(12)]
    b = browser_for(w.users["C"])
    page = b.get("/audits")
    assert "Test C" in page.text and w.users["C"].id not in page.text.replace("/audits/", "")
    for key in ("name", "scope", "method", "n", "sampled", "signed", "disputes", "created_by", "opened"):
        for direction in ("asc", "desc"):
            assert b.get(f"/audits?sort={key}&dir={direction}").status_code == 200, key
    first = listed(b, "?sort=name&dir=asc&per=10")
    second = listed(b, "?sort=name&dir=asc&per=10&page=2")
    assert len(first) == 10 and len(second) == 2 and first | second == set(ids)
    assert "Audit 00" in b.get("/audits?sort=name&dir=asc&per=10").text
    assert "Audit 00" not in b.get("/audits?sort=name&dir=desc&per=10").text
    for bad in ("?sort=auditor_id", "?dir=up", "?page=0", "?per=7"):
        refused = b.get(f"/audits{bad}")
        assert refused.status_code == 422 and re.search(r"sort|dir|page|per", refused.text), bad
    views = [e for e in events(connection, "coding_audit.read") if e["detail"].get("view") == "list"]
    assert views and views[-1]["actor"]["id"] == w.users["C"].id
    assert views[0]["detail"]["scope"]["everything"] is True and views[0]["detail"]["row_count"] == 12


def _count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(CodingAudit.__table__)).scalar_one())  # type: ignore[attr-defined]


def test_an_auditor_opens_an_audit_and_draws_its_sample_from_the_pages(
    w: World, browser_for: Any, connection: Connection
) -> None:
    b = browser_for(w.users["A"])
    p1 = w.users["P1"].id
    opened = b.submit("/audits", "/audits", {**FORM, "provider_ids": [p1], "code_systems": ["CPT"]},
                      follow_redirects=False)  # fmt: skip
    assert opened.status_code == 303, opened.text
    aid = opened.headers["location"].removeprefix("/audits/")
    audit = w.call("GET", f"/audits/{aid}", "A", 200).json()
    assert audit["name"] == "Page probe" and audit["scope"]["provider_ids"] == [p1]
    assert audit["sampling"] == {"method": "probe", "n": 3, "strata": None} and audit["seed"] == 42
    page = b.get(f"/audits/{aid}")
    assert "Draw the sample" in page.text
    drawn = b.submit(f"/audits/{aid}", f"/audits/{aid}/sample", {}, follow_redirects=False)
    assert drawn.status_code == 303 and drawn.headers["location"] == f"/audits/{aid}#sample"
    sample = w.call("GET", f"/audits/{aid}", "A", 200).json()["sample"]
    assert len(sample) == 3 and {e["provider_id"] for e in sample} == {p1}
    assert "Draw the sample" not in b.get(f"/audits/{aid}").text
    again = b.submit(f"/audits/{aid}", f"/audits/{aid}/sample", {}, follow_redirects=False)
    assert again.status_code == 303
    assert w.call("GET", f"/audits/{aid}", "A", 200).json()["sample"] == sample
    opens = [e for e in events(connection, "coding_audit.open") if e["subject"]["id"] == aid]
    samples = [e for e in events(connection, "coding_audit.sample") if e["subject"]["id"] == aid]
    assert len(opens) == 1 and opens[0]["outcome"] == "allowed"
    rule = ["coding_audits.auditor_within_engagement"]
    assert opens[0]["policy"]["rule_ids"] == rule
    assert len(samples) == 1 and samples[0]["policy"]["rule_ids"] == rule


def test_outside_the_engagement_or_role_the_forms_are_refused_and_recorded(
    w: World, browser_for: Any, connection: Connection
) -> None:
    before = _count(connection)
    a = browser_for(w.users["A"])
    outside = a.submit("/audits", "/audits", {**FORM, "date_from": ago(400), "date_to": ago(300)})
    assert outside.status_code == 403
    provider = browser_for(w.users["P1"])
    refused = provider.submit("/audits", "/audits", FORM)
    assert refused.status_code == 403
    assert _count(connection) == before
    denied = [e for e in events(connection, "coding_audit.open") if e["outcome"] == "denied"]
    assert {e["actor"]["id"] for e in denied} == {w.users["A"].id, w.users["P1"].id}
    aid = w.open_audit("C", name="Compliance's").json()["id"]
    assert a.submit("/audits", f"/audits/{aid}/sample", {}).status_code == 403
    assert w.call("GET", f"/audits/{aid}", "C", 200).json()["sample"] is None


def test_forms_without_the_csrf_token_are_refused_and_recorded(
    w: World, browser_for: Any, connection: Connection
) -> None:
    aid = w.open_audit("A").json()["id"]
    b = browser_for(w.users["A"])
    before = _count(connection)
    assert b.client.post("/audits", data=FORM).status_code == 403
    assert b.client.post(f"/audits/{aid}/sample", data={"csrf_token": "0" * 64}).status_code == 403
    assert _count(connection) == before
    assert w.call("GET", f"/audits/{aid}", "A", 200).json()["sample"] is None
    csrf = [e for e in events(connection, "web.csrf") if e["actor"]["id"] == w.users["A"].id]
    assert len(csrf) == 2 and all(e["outcome"] == "denied" for e in csrf)


@pytest.mark.parametrize(
    ("who", "label"), [("C", "Audits"), ("A", "Audits"), ("P1", "Audit findings"), ("K1", "Audit findings")]
)
def test_the_menu_links_audits_for_compliance_and_auditors_and_findings_for_the_others(
    w: World, people: People, browser_for: Any, who: str, label: str
) -> None:
    home = browser_for(w.users[who]).get("/").text
    assert re.search(rf'href="/audits"[^>]*>\s*{label}\s*<', home), home
    assert 'href="/audits"' not in browser_for(people.make("admin")).get("/").text
