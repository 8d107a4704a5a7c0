"""A coding audit in headless Chromium against a real server (the demo organisation): the auditor
opens the audit and draws its sample from the audits page, records a finding beside the coded line
(original on the left, revision on the right), the provider disputes it, compliance upholds it, and
the auditor signs. Every page is checked with axe-core."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from audit.demo import DEMO_PASSWORDS, last_demo_day
from audit.migrate import upgrade
from tests.browser.test_oversight_story import Person
from tests.crash.servers import Server, start_server

pytestmark = pytest.mark.browser
PORT = 9551  # a port of its own, apart from the other browser stories


@pytest.fixture
def audit_server(fresh_db_url: str, tmp_path: Path) -> Iterator[Server]:
    upgrade(fresh_db_url)
    started = start_server(fresh_db_url, tmp_path, port=PORT)
    started.base = started.base.replace("127.0.0.1", "localhost")
    try:
        yield started
    finally:
        started.stop()


def sampled_audit(auditor: Person) -> str:
    """From the pages: auditor.kim opens a probe of the engagement's encounters on /audits, then
    draws its sample with the button on the audit's page."""
    last = last_demo_day(date.today())
    page = auditor.open("/audits")
    page.fill("#name", "E/M probe (browser)")
    page.fill("#date_from", (last - timedelta(days=120)).isoformat())
    page.fill("#date_to", last.isoformat())
    page.select_option("#method", "probe")
    page.fill("#n", "2")
    page.fill("#seed", "7")
    page.click("button:has-text('Open audit')")
    page.wait_for_load_state()
    auditor.check()
    aid = page.url.split("#")[0].rsplit("/", 1)[-1]
    assert "The sample has not been drawn yet" in page.content()
    page.click("button:has-text('Draw the sample')")
    page.wait_for_load_state()
    auditor.check()
    assert page.locator("table.side-by-side").count() > 0
    listed = auditor.open("/audits").locator("#audits tbody tr", has_text="E/M probe (browser)")
    assert "yes" in listed.locator("td").nth(4).inner_text()
    return aid


def test_auditor_records_provider_disputes_compliance_decides(audit_server: Server, chromium: Any) -> None:
    base, problems = audit_server.base, []
    auditor = Person(chromium, base, "auditor.kim", DEMO_PASSWORDS["auditor"], problems)
    aid = sampled_audit(auditor)
    page = auditor.open(f"/audits/{aid}")
    row = page.locator("table.side-by-side tbody tr", has_text="CPT 992").first
    original = row.locator("td").first.inner_text()
    row.locator("select[name=verdict]").select_option("disagree")
    row.locator("input[name=code]").fill("99212")
    row.locator("select[name=category]").select_option("upcoded")
    row.locator("input[name=rationale]").fill("History and exam support a lower level")
    row.locator("button:has-text('Record finding')").click()
    page.wait_for_load_state()
    auditor.check()
    judged = page.locator("table.side-by-side tbody tr", has_text="99212").first
    cells = [c.inner_text() for c in judged.locator("td").all()]
    assert cells[0] == original and cells[4] == "disagree" and cells[5].startswith("99212"), cells
    assert cells[6] == "upcoded"

    provider = Person(chromium, base, "dr.okafor", DEMO_PASSWORDS["provider"], problems)
    page = provider.open("/audits")  # the provider reaches the audit from the findings addressed to them
    page.locator("#findings-for-me tbody a", has_text="E/M probe (browser)").first.click()
    page.wait_for_load_state()
    assert f"/audits/{aid}" in page.url
    finding = page.locator("article.finding").first
    finding.locator("select[name=response]").select_option("dispute")
    finding.locator("input[name=comment]").fill("Medical decision making was moderate")
    finding.locator("button:has-text('Send answer')").click()
    page.wait_for_load_state()
    provider.check()
    assert "(disputed)" in page.locator("article.finding").first.inner_text()
    assert page.locator("#open-disputes").inner_text() == "1"

    officer = Person(chromium, base, "compliance.brooks", DEMO_PASSWORDS["compliance"], problems)
    page = officer.open(f"/audits/{aid}")
    finding = page.locator("article.finding").first
    finding.locator("select[name=decision]").select_option("upheld")
    finding.locator("input[name=comment]").fill("The note supports 99212")
    finding.locator("button:has-text('Decide')").click()
    page.wait_for_load_state()
    officer.check()
    assert "(upheld)" in page.locator("article.finding").first.inner_text()

    page = auditor.open(f"/audits/{aid}")
    page.fill("#sign-password", DEMO_PASSWORDS["auditor"])
    page.click("button:has-text('Sign the audit report')")
    page.wait_for_load_state()
    auditor.check()
    assert page.locator("#audit-status").inner_text() == "signed"
    assert "(valid)" in page.locator("p.signature").first.inner_text()
    assert not problems, "\n".join(problems)
