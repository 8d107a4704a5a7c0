"""The compliance dashboard shows coding-audit follow-up: the education task, the re-audit and the
overpayment clock (60 days from identification, 42 CFR 401.305) with the days left, and records the
view like any report view."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection

from tests.coding_audit.world import build, run_loop, settle_and_sign
from tests.conftest import People


def test_dashboard_lists_follow_up_with_days_left(
    client: TestClient,
    people: People,
    connection: Connection,
    browser_for,  # type: ignore[no-untyped-def]
) -> None:
    w = build(client, people)
    aid, found = run_loop(w)
    settle_and_sign(w, aid, found)
    page = browser_for(w.users["C"]).get("/compliance")
    assert page.status_code == 200, page.text
    section = page.text.split('id="follow-up"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr><td>(\w+)</td><td>([^<]*)</td>.*?<td>(-?\d+)</td></tr>", section, re.S)
    assert sorted((kind, int(days)) for kind, _, days in rows) == [
        ("education", 45), ("overpayment", 60), ("reaudit", 45),
    ]  # fmt: skip
    assert {name for _, name, _ in rows} == {w.users["P1"].display_name}
    assert f'href="/audits/{aid}"' in section
    payloads = connection.execute(text("SELECT payload FROM ledger_event ORDER BY seq DESC LIMIT 50"))
    details = [json.loads(p).get("detail") or {} for (p,) in payloads]
    shown = [d for d in details if d.get("view") == "dashboard" and d.get("name") == "follow-up"]
    assert len(shown) == 1 and shown[0]["row_count"] == 3, "the follow-up shown is recorded"


def test_dashboard_without_audits_says_so(browser_for, people: People) -> None:  # type: ignore[no-untyped-def]
    page = browser_for(people.make("compliance")).get("/compliance")
    assert page.status_code == 200 and "No open follow-up from coding audits." in page.text
