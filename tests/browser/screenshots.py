"""Screenshots of every page, per role, at 1280 and 768 px.

    .venv/bin/python -m tests.browser.screenshots OUTDIR

Starts `audit serve --demo` on a new SQLite database in a temporary folder, makes one change after
attestation and one engagement through the API (so the compliance and auditor pages have something
to show), then signs in as each demo user in headless Chromium (/usr/bin/chromium) and writes
OUTDIR/<role>/<page>-<width>.png (full page). Prints the files written.
"""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx

from audit.demo import DEMO_PASSWORDS
from audit.migrate import upgrade
from tests.browser.conftest import CHROMIUM, free_port
from tests.browser.test_oversight_story import amended_encounter
from tests.crash.servers import API, start_server

WIDTHS = (1280, 768)
REPORTS = (
    "provider-responsibility", "changes-after-attestation", "unattested-aging", "late-attestations",
    "coder-activity", "delegation-register", "denied-attempts", "em-distribution", "codes-invalid-for-date",
    "retention",
)  # fmt: skip
Finder = Callable[[Any], list[tuple[str, str]]]


def first_link(prefix: str, name: str) -> Finder:
    """The first link on the page whose path starts with `prefix`, as page `name`."""

    def find(page: Any) -> list[tuple[str, str]]:
        hrefs = page.eval_on_selector_all("main a[href]", "els => els.map(e => e.getAttribute('href'))")
        wanted = [h for h in hrefs if h.startswith(prefix) and not h.endswith("/download")]
        return [(name, wanted[0])] if wanted else []

    return find


PAGES: dict[str, tuple[str, str, list[tuple[str, str]], list[tuple[str, Finder]]]] = {
    # role: (username, password, [(name, path)], [(path of a list page, finder of a detail page)])
    "provider": ("dr.okafor", DEMO_PASSWORDS["provider"],
                 [("home", "/"), ("queue", "/provider/queue"), ("delegations", "/provider/delegations"),
                  ("password", "/account/password"), ("audit-findings", "/audits")],
                 [("/provider/queue", first_link("/encounters/", "encounter"))]),
    "coder": ("coder.chen", DEMO_PASSWORDS["coder"],
              [("home", "/"), ("worklist", "/coder/worklist"), ("audit-findings", "/audits")],
              [("/coder/worklist", first_link("/encounters/", "encounter"))]),
    "compliance": ("compliance.brooks", DEMO_PASSWORDS["compliance"],
                   [("home", "/"), ("dashboard", "/compliance"), ("engagements", "/compliance/engagements"),
                    ("audits", "/audits"), ("reports", "/reports"),
                    *[(f"report-{r}", f"/reports/{r}") for r in REPORTS]],
                   [("/compliance", first_link("/compliance/encounters/", "timeline"))]),
    "auditor": ("auditor.kim", DEMO_PASSWORDS["auditor"],
                [("home", "/"), ("engagements", "/auditor"), ("audits", "/audits")],
                [("/auditor", first_link("/auditor/engagements/", "engagement"))]),
    "admin": ("admin.ops", DEMO_PASSWORDS["admin"], [("home", "/"), ("users", "/admin/users")],
              [("/admin/users", first_link("/admin/users/", "user"))]),
}  # fmt: skip
ANONYMOUS = [("signin", "/signin"), ("docs", "/docs"), ("redoc", "/redoc")]


def open_engagement(base: str) -> None:
    api = base.replace("localhost", "127.0.0.1")

    def token(user: str, role: str) -> dict[str, str]:
        r = httpx.post(f"{api}{API}/auth/token", data={"username": user, "password": DEMO_PASSWORDS[role]})
        r.raise_for_status()
        return {"Authorization": f"Bearer {r.json()['access_token']}"}

    compliance = token("compliance.brooks", "compliance")
    auditor = httpx.get(f"{api}{API}/users/me", headers=token("auditor.kim", "auditor")).json()
    today = date.today()
    expires = (today + timedelta(days=30)).isoformat() + "T00:00:00Z"
    body = {"auditor_id": auditor["id"], "date_from": (today - timedelta(days=120)).isoformat(),
            "date_to": today.isoformat(), "expires_at": expires, "purpose": "Screenshot review"}  # fmt: skip
    httpx.post(f"{api}{API}/engagements", json=body, headers=compliance).raise_for_status()


def shoot(page: Any, out: Path, name: str) -> list[Path]:
    written = []
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        path = out / f"{re.sub(r'[^a-z0-9-]+', '-', name.lower())}-{width}.png"
        page.screenshot(path=str(path), full_page=True)
        written.append(path)
    return written


def sign_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(base + "/signin")
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button:has-text('Sign in')")
    page.wait_for_load_state()


def take_all(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        anonymous = browser.new_context().new_page()
        (out / "anonymous").mkdir(parents=True, exist_ok=True)
        for name, path in ANONYMOUS:
            anonymous.goto(base + path)
            anonymous.wait_for_load_state("networkidle")
            written += shoot(anonymous, out / "anonymous", name)
        for role, (username, password, pages, details) in PAGES.items():
            folder = out / role
            folder.mkdir(parents=True, exist_ok=True)
            page = browser.new_context().new_page()
            sign_in(page, base, username, password)
            for name, path in pages:
                page.goto(base + path)
                written += shoot(page, folder, name)
            for list_path, find in details:
                page.goto(base + list_path)
                for name, path in find(page):
                    page.goto(base + path)
                    written += shoot(page, folder, name)
        browser.close()
    return written


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__)
        return 2
    out = Path(argv[0]).resolve()
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'screens.db'}"
        upgrade(url)
        server = start_server(url, Path(tmp), port=free_port())
        base = server.base.replace("127.0.0.1", "localhost")  # a secure context keeps the Secure cookie
        try:
            amended_encounter(base)
            open_engagement(base)
            written = take_all(base, out)
        finally:
            server.stop()
    for path in written:
        print(path)
    print(f"{len(written)} screenshots in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
