"""The pages show nothing outside the reader's ReadScope: the scope walk's world and expectations
(tests/policy/test_scope_walk.py), each persona signed in through the sign-in page, every page that
shows encounter data walked and scanned for the ids, names, NPIs and references it must not show."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.models import User
from audit.principal import CurrentUser
from tests.conftest import People
from tests.policy.test_scope_walk import PERSONAS, World, build, content_of, expectation, leaks, ledger_events

PAGES = (
    "/provider/queue?per=100",
    "/coder/worklist?per=100",
    "/coder/worklist?per=100&status=attested",
    "/coder/worklist?per=100&sort=provider&dir=desc",
    "/coder/worklist?per=100&external_id=EXT",
    "/coder/worklist?per=100&from=2000-01-01&to=2100-01-01",
)


@pytest.fixture
def world(client: TestClient, people: People) -> World:
    return build(client, people)


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_no_page_shows_anything_outside_the_scope(
    world: World, connection: Connection, persona: str, browser_for: Any
) -> None:
    p = PERSONAS[persona]
    exp = expectation(world, p.encounter_view, ledger_events(connection))
    with Session(connection) as s:
        user = s.get(User, world.ids[p.user])
        assert user is not None
        me = CurrentUser.of(user)
    b = browser_for(me)
    problems: list[str] = []
    shown = 0
    urls = [*PAGES, *(f"/encounters/{e['id']}" for e in world.enc.values())]
    for url in urls:
        r = b.get(url)
        assert r.status_code in (200, 403), (persona, url, r.status_code, r.text[:300])
        if r.status_code == 403:  # the refusal names what was asked for (as the API's), nothing else
            assert "Forbidden" in r.text
            continue
        shown += 1
        problems += [f"{url}: {leak}" for leak in leaks(content_of(r), exp)]
    assert not problems, f"{persona} sees outside its scope:\n" + "\n".join(sorted(set(problems))[:40])
    visible = [e for k, e in world.enc.items() if k in p.encounter_view.encounters]
    assert shown >= len(visible) >= 1  # non-vacuity: the pages did show data
    pages = "".join(b.get(f"/encounters/{e['id']}").text for e in visible)
    assert all(e["external_id"] in pages for e in visible)


REPORT_PAGES = (
    "/compliance", "/compliance/engagements", "/reports", "/auditor", "/admin/users",
    *(f"/reports/{name}?{sec}_per=100" for name, sec in (
        ("provider-responsibility", "providers"), ("changes-after-attestation", "changes"),
        ("unattested-aging", "aging"), ("late-attestations", "late"), ("coder-activity", "coders"),
        ("delegation-register", "delegations"), ("denied-attempts", "denied"), ("em-distribution", "em"),
    )),
    *(f"/reports/{name}/download?format=csv" for name in (
        "changes-after-attestation", "denied-attempts", "unattested-aging", "late-attestations",
    )),
)  # fmt: skip


@pytest.mark.parametrize("persona", sorted(PERSONAS))
def test_report_and_oversight_pages_show_nothing_outside_the_scope(
    world: World, connection: Connection, persona: str, browser_for: Any
) -> None:
    """Compliance, auditor, admin and report pages as each scoped persona: refused, or nothing outside
    the scope (an auditor's reports are cut to the engagement; a provider's to their own encounters)."""
    p = PERSONAS[persona]
    exp = expectation(world, p.encounter_view, ledger_events(connection))
    with Session(connection) as s:
        user = s.get(User, world.ids[p.user])
        assert user is not None
        me = CurrentUser.of(user)
    b = browser_for(me)
    problems: list[str] = []
    shown = 0
    timelines = [f"/compliance/encounters/{e['id']}" for e in world.enc.values()]
    for url in [*REPORT_PAGES, *timelines]:
        r = b.get(url)
        assert r.status_code in (200, 403), (persona, url, r.status_code, r.text[:300])
        if r.status_code == 403:
            continue
        shown += 1
        problems += [f"{url}: {leak}" for leak in leaks(content_of(r), exp)]
    assert not problems, f"{persona} sees outside its scope:\n" + "\n".join(sorted(set(problems))[:40])
    assert shown >= 1  # non-vacuity: /reports at least
