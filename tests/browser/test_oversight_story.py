"""Compliance's and the auditor's main tasks in headless Chromium against a real server: compliance sees a
change after attestation on the dashboard, opens the timeline and downloads its PDF, opens an
engagement; the auditor downloads the engagement's bundle, whose own verify.py accepts it (with the
organisation's published key). Every page visited (and the admin's) is checked with axe-core at 1280
and 768 px."""

from __future__ import annotations

import io
import subprocess
import sys
import uuid
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pypdf import PdfReader

from audit.demo import DEMO_PASSWORDS, last_demo_day
from tests.browser.conftest import axe_violations
from tests.crash.servers import API, Server, sign_in

pytestmark = pytest.mark.browser


class Person:
    """One person's browser context: signs in through the page, checks every page it looks at."""

    def __init__(self, chromium: Any, base: str, username: str, password: str, problems: list[str]) -> None:
        self.context = chromium.new_context(
            bypass_csp=True, viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        self.page = self.context.new_page()
        self.base, self.username, self.password, self.problems = base, username, password, problems

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        if "/signin" in self.page.url:
            self.page.fill("#username", self.username)
            self.page.fill("#password", self.password)
            self.page.click("button:has-text('Sign in')")
            self.page.wait_for_load_state()
        assert "/signin" not in self.page.url, self.page.content()[:2000]
        self.check()
        return self.page

    def check(self) -> None:
        for width in (1280, 768):
            self.page.set_viewport_size({"width": width, "height": 900})
            where = f"{self.page.url} @{width}px"
            self.problems += [f"{where}: {v}" for v in axe_violations(self.page)]
            wide = self.page.evaluate("document.documentElement.scrollWidth")
            if wide > width + 1:
                self.problems.append(f"{where}: the page is {wide} px wide")
        self.page.set_viewport_size({"width": 1280, "height": 900})


def amended_encounter(base: str) -> str:
    """Through the API: coder.chen codes a new encounter of dr.okafor, who attests; the coder then
    changes the line with a reason (a change after attestation). Returns the external id."""
    api = base.replace("localhost", "127.0.0.1")
    provider = {"Authorization": f"Bearer {sign_in(api)}"}
    coder = {"Authorization": f"Bearer {sign_in(api, 'coder.chen', DEMO_PASSWORDS['coder'])}"}
    me = httpx.get(f"{api}{API}/users/me", headers=provider, timeout=30).json()
    external = f"CMP-{uuid.uuid4().hex[:8]}"
    body = {"external_id": external, "patient_ref": "MRN-CMP-1", "rendering_provider_id": me["id"],
            "date_of_service": last_demo_day(date.today()).isoformat()}  # fmt: skip
    made = httpx.post(f"{api}{API}/encounters", json=body, headers=coder, timeout=30)
    assert made.status_code == 201, made.text
    eid = made.json()["id"]
    line = httpx.post(f"{api}{API}/encounters/{eid}/codes", json={"system": "CPT", "code": "99213"},
                      headers=coder, timeout=30)  # fmt: skip
    assert line.status_code == 201, line.text
    password = {"password": DEMO_PASSWORDS["provider"]}
    signed = httpx.post(
        f"{api}{API}/encounters/{eid}/attestations", json=password, headers=provider, timeout=60
    )
    assert signed.status_code == 201, signed.text
    changed = httpx.patch(f"{api}{API}/encounters/{eid}/codes/{line.json()['id']}",
                          json={"code": "99214", "reason": "exam documented in full"},
                          headers={**coder, "If-Match": '"1"'}, timeout=30)  # fmt: skip
    assert changed.status_code == 200, changed.text
    return external


def test_compliance_and_auditor_in_a_real_browser(server: Server, chromium: Any, tmp_path: Path) -> None:
    external = amended_encounter(server.base)
    problems: list[str] = []
    compliance = Person(chromium, server.base, "compliance.brooks", DEMO_PASSWORDS["compliance"], problems)

    # 5. Compliance sees the change on the dashboard, opens the timeline and downloads a PDF.
    page = compliance.open("/compliance")
    changes = page.locator("#changes + .table-wrap")
    assert external in changes.inner_text() and "Wei Chen" in changes.inner_text()
    assert page.locator("svg[role=img]").count() >= 3
    changes.locator(f"a:has-text('{external}')").first.click()
    page.wait_for_load_state()
    assert "/compliance/encounters/" in page.url and "exam documented in full" in page.content()
    compliance.check()
    with page.expect_download() as download:
        page.click("a:has-text('Download the timeline (PDF)')")
    pdf = tmp_path / "timeline.pdf"
    download.value.save_as(pdf)
    text = "".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf.read_bytes())).pages)
    assert external in text and "Wei Chen" in text
    page.fill("#flag-text", "level raised after attestation")
    page.click("button:has-text('Flag')")
    page.wait_for_load_state()
    assert "level raised after attestation" in page.content()
    compliance.check()
    compliance.open("/reports")
    compliance.open("/reports/changes-after-attestation")
    compliance.open("/reports/em-distribution")

    # Compliance opens an engagement for the external auditor over the last 90 days.
    page = compliance.open("/compliance/engagements")
    today = date.today()
    page.select_option("#auditor_id", label="Jordan Kim (external)")
    page.fill("#date_from", (today - timedelta(days=90)).isoformat())
    page.fill("#date_to", today.isoformat())
    page.fill("#expires_on", (today + timedelta(days=30)).isoformat())
    page.fill("#purpose", "Browser test review")
    page.click("button:has-text('Open engagement')")
    page.wait_for_load_state()
    assert "Browser test review" in page.content()

    # 6. The auditor downloads the engagement's bundle, which verifies with its own verify.py.
    auditor = Person(chromium, server.base, "auditor.kim", DEMO_PASSWORDS["auditor"], problems)
    page = auditor.open("/auditor")
    page.click("main a[href^='/auditor/engagements/']")
    page.wait_for_load_state()
    auditor.check()
    with page.expect_download() as download:
        page.click("button:has-text('Download the bundle')")
    bundle = tmp_path / "bundle.zip"
    download.value.save_as(bundle)
    with zipfile.ZipFile(bundle) as z:
        (tmp_path / "verify.py").write_bytes(z.read("verify.py"))
    key = httpx.get(
        server.base.replace("localhost", "127.0.0.1") + f"{API}/audit/public-key", timeout=30
    ).text
    run = subprocess.run([sys.executable, str(tmp_path / "verify.py"), "--key", key.strip(), str(bundle)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0 and run.stdout.startswith("OK"), run.stdout + run.stderr
    auditor.open("/reports/changes-after-attestation?from=" + (today - timedelta(days=90)).isoformat())

    # The administrator's pages meet the same bar.
    admin = Person(chromium, server.base, "admin.ops", DEMO_PASSWORDS["admin"], problems)
    page = admin.open("/admin/users")
    page.click("a:has-text('Wei Chen')")
    page.wait_for_load_state()
    admin.check()
    assert not problems, "\n".join(problems)
