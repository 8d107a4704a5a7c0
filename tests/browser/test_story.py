"""The coder's and provider's main tasks in headless Chromium against a real server: code with an
inline error corrected, attest, amend, see the change as added/struck/before → after, re-attest.
Every page visited is checked with axe-core (no serious or critical violation) at 1280 and 768 px."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

import httpx
import pytest

from audit.demo import DEMO_PASSWORDS, last_demo_day
from tests.browser.conftest import axe_violations
from tests.crash.servers import API, Server, sign_in

pytestmark = pytest.mark.browser


class Session:
    """One person's browser context: signs in through the page, checks every page it looks at."""

    def __init__(self, chromium: Any, base: str, username: str, password: str, problems: list[str]) -> None:
        self.context = chromium.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.base, self.username, self.password, self.problems = base, username, password, problems

    def open(self, path: str) -> Any:
        self.page.goto(self.base + path)
        if "/signin" in self.page.url:
            self.check()
            self.page.fill("#username", self.username)
            self.page.fill("#password", self.password)
            self.page.click("button:has-text('Sign in')")
            self.page.wait_for_load_state()
        assert "/signin" not in self.page.url, self.page.content()[:2000]
        return self.page

    def check(self) -> None:
        """axe-core at 1280 px and at 768 px, and no page wider than a 768 px tablet."""
        for width in (1280, 768):
            self.page.set_viewport_size({"width": width, "height": 900})
            where = f"{self.page.url} @{width}px"
            self.problems += [f"{where}: {v}" for v in axe_violations(self.page)]
            wide = self.page.evaluate("document.documentElement.scrollWidth")
            if wide > width + 1:
                self.problems.append(f"{where}: the page is {wide} px wide")
        self.page.set_viewport_size({"width": 1280, "height": 900})


def _encounter(base: str) -> tuple[str, str]:
    """A new open encounter of the demo provider dr.okafor, made by coder.chen through the API."""
    api = base.replace("localhost", "127.0.0.1")
    provider = httpx.get(
        f"{api}{API}/users/me", headers={"Authorization": f"Bearer {sign_in(api)}"}, timeout=30
    ).json()
    coder = {"Authorization": f"Bearer {sign_in(api, 'coder.chen', DEMO_PASSWORDS['coder'])}"}
    external = f"WEB-{uuid.uuid4().hex[:8]}"
    body = {"external_id": external, "patient_ref": "MRN-WEB-1", "rendering_provider_id": provider["id"],
            "date_of_service": last_demo_day(date.today()).isoformat()}  # fmt: skip
    made = httpx.post(f"{api}{API}/encounters", json=body, headers=coder, timeout=30)
    assert made.status_code == 201, made.text
    return str(made.json()["id"]), external


def test_code_attest_amend_and_reattest_in_a_real_browser(server: Server, chromium: Any) -> None:
    eid, external = _encounter(server.base)
    problems: list[str] = []
    coder = Session(chromium, server.base, "coder.chen", DEMO_PASSWORDS["coder"], problems)
    provider = Session(chromium, server.base, "dr.okafor", DEMO_PASSWORDS["provider"], problems)

    # 1. The coder finds the encounter on the worklist, enters codes, sees an inline error, corrects it.
    page = coder.open("/coder/worklist")
    coder.check()
    page.fill("#f-ext", external)
    page.click("button:has-text('Filter')")
    page.click(f"a:has-text('{external}')")
    assert f"/encounters/{eid}" in page.url
    page.select_option("#add-system", "ICD-10-CM")
    page.fill("#add-code", "E11")
    page.wait_for_selector('#add-check[data-state="bad"]')
    assert "not billable" in page.inner_text("#add-check")
    coder.check()
    page.fill("#add-code", "E11.9")
    page.wait_for_selector('#add-check[data-state="good"], #add-check[data-state="warn"]')
    page.click("button:has-text('Add line')")
    page.wait_for_selector("td:has-text('E11.9')")
    page.select_option("#add-system", "CPT")
    page.fill("#add-code", "99213")
    page.click("button:has-text('Add line')")
    page.wait_for_selector("td strong:has-text('99213')")
    assert "Wei Chen" in page.inner_text("#lines + .table-wrap")
    coder.check()

    # 2. The provider finds it in the sign-off queue, reads the meaning and digest, attests.
    page = provider.open("/provider/queue")
    provider.check()
    page.click(f"a:has-text('{external}')")
    assert "I attest that I am the rendering provider" in page.inner_text("#meaning")
    provider.check()
    page.fill("#attest-password", DEMO_PASSWORDS["provider"])
    page.click("button:has-text('Attest')")
    page.wait_for_selector("text=Signed by Adaeze Okafor")

    # 3. The coder amends the CPT line, with a reason.
    page = coder.open(f"/encounters/{eid}")
    page.click("summary:has-text('Change or void CPT 99213')")
    form = page.locator("details[open] form").first
    form.locator("input[name=code]").fill("99214")
    form.locator("input[name=reason]").fill("documentation supports a level 4 visit")
    form.locator("button:has-text('Save change')").click()
    page.wait_for_selector("td strong:has-text('99214')")

    # 4. The provider sees the change as before → after, with author and reason, and re-attests.
    page = provider.open(f"/encounters/{eid}")
    changes = page.inner_text("#changes + .table-wrap")
    assert "99213" in page.inner_text("#changes + .table-wrap del") and "99214" in changes
    assert "Wei Chen" in changes and "documentation supports a level 4 visit" in changes
    provider.check()
    page.fill("#attest-password", DEMO_PASSWORDS["provider"])
    page.click("button:has-text('Attest')")
    page.wait_for_selector("text=Signed by Adaeze Okafor")
    assert page.locator("#changes").count() == 0

    for session, path in ((provider, "/provider/delegations"), (provider, "/account/password"), (coder, "/")):
        session.open(path)
        session.check()
    assert not problems, "\n".join(problems)


def test_the_pages_work_without_javascript(server: Server, chromium: Any) -> None:
    """The same coding task with JavaScript off: the server's answer carries the error, then the fix."""
    eid, external = _encounter(server.base)
    context = chromium.new_context(java_script_enabled=False)
    page = context.new_page()
    page.goto(f"{server.base}/coder/worklist?external_id={external}")
    page.fill("#username", "coder.chen")
    page.fill("#password", DEMO_PASSWORDS["coder"])
    page.click("button:has-text('Sign in')")
    page.click(f"a:has-text('{external}')")
    page.select_option("#add-system", "ICD-10-CM")
    page.fill("#add-code", "E11")
    page.click("button:has-text('Add line')")
    assert "not billable" in page.inner_text("#form-error")
    assert page.input_value("#add-code") == "E11"  # what was entered comes back to be corrected
    page.fill("#add-code", "E11.9")
    page.click("button:has-text('Add line')")
    page.wait_for_selector("td strong:has-text('E11.9')")
    assert f"/encounters/{eid}" in page.url
    context.close()
