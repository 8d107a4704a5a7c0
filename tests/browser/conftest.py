"""A real server (`audit serve --demo` on a fresh database) and headless Chromium driven by
Playwright, with axe-core (tests/browser/node, `npm ci` there) injected to check accessibility."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from audit.migrate import upgrade
from tests.crash.servers import Server, start_server

CHROMIUM = "/usr/bin/chromium"
AXE = Path(__file__).parent / "node/node_modules/axe-core/axe.min.js"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(fresh_db_url: str, tmp_path: Path) -> Iterator[Server]:
    upgrade(fresh_db_url)
    started = start_server(fresh_db_url, tmp_path, port=free_port())
    # `localhost` (not 127.0.0.1): a secure context, so Chromium keeps the Secure session cookie on http.
    started.base = started.base.replace("127.0.0.1", "localhost")
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def chromium() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium")
    if not AXE.exists():
        pytest.fail(f"{AXE} is missing: (cd tests/browser/node && npm ci)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


SERIOUS = ("serious", "critical")


def axe_violations(page: Any) -> list[dict[str, Any]]:
    """axe-core's serious and critical violations on the page as it stands."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => JSON.stringify(await axe.run(document))")
    violations = json.loads(result)["violations"]
    return [
        {
            "id": v["id"],
            "impact": v["impact"],
            "help": v["help"],
            "nodes": [n["target"] for n in v["nodes"]][:3],
        }
        for v in violations
        if v["impact"] in SERIOUS
    ]
