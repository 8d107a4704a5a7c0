"""The administrator's user pages: each change is decided by Cedar and is a ledger event the verifier
replays; other roles are refused; an admin never administers their own account this way."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.ledger.service import LEDGER
from audit.ledger.verification import verify_ledger
from audit.models import User
from tests.conftest import People
from tests.support import PASSWORD

NEW_PASSWORD = "a-new-temporary-pass"


def events(connection: Connection, type_: str, outcome: str = "allowed") -> int:
    stmt = select(func.count()).where(LEDGER.c.type == type_, LEDGER.c.outcome == outcome)
    return int(connection.execute(stmt).scalar_one())


def test_admin_manages_a_user_end_to_end(people: People, browser_for: Any, connection: Connection) -> None:
    admin = people.make("admin", name="Ada Admin")
    b = browser_for(admin)
    listing = b.get("/admin/users")
    assert listing.status_code == 200 and "Ada Admin" in listing.text
    made = b.submit("/admin/users", "/admin/users", {
        "username": "newcoder", "display_name": "Nora Coder", "password": PASSWORD, "roles": ["coder"]},
        follow_redirects=False)  # fmt: skip
    assert made.status_code == 303, made.text
    page = made.headers["location"]
    uid = page.rsplit("/", 1)[1]
    assert events(connection, "user.create") >= 1
    r = b.submit(page, f"{page}/roles", {"roles": ["coder", "provider"], "reason": "now also sees patients"},
                 follow_redirects=False)  # fmt: skip
    assert r.status_code == 303 and events(connection, "user.change_roles") == 1
    r = b.submit(page, f"{page}/password", {"new_password": NEW_PASSWORD}, follow_redirects=False)
    assert r.status_code == 303 and events(connection, "user.reset_password") == 1
    nora = browser_for()
    assert nora.submit("/signin", "/signin", {"username": "newcoder", "password": NEW_PASSWORD},
                       follow_redirects=False).status_code == 303  # fmt: skip
    r = b.submit(page, f"{page}/active", {"active": "no", "reason": "left"}, follow_redirects=False)
    assert r.status_code == 303 and events(connection, "user.deactivate") == 1
    assert nora.get("/", follow_redirects=False).status_code == 303  # the session ended
    refused = browser_for().submit("/signin", "/signin", {"username": "newcoder", "password": NEW_PASSWORD},
                                   follow_redirects=False)  # fmt: skip
    assert refused.status_code != 303
    r = b.submit(page, f"{page}/unlock", {"reason": "helpdesk ticket 42"}, follow_redirects=False)
    assert r.status_code == 303 and events(connection, "user.unlock") == 1
    with Session(connection) as s:
        row = s.get(User, uid)
        assert row is not None and row.roles == ["coder", "provider"] and not row.is_active
        result = verify_ledger(s)
    assert result.ok, result.problems[:3]


def test_admin_cannot_administer_themselves(people: People, browser_for: Any, connection: Connection) -> None:
    admin = people.make("admin", name="Ada Admin")
    b = browser_for(admin)
    page = f"/admin/users/{admin.id}"
    r = b.submit(page, f"{page}/active", {"active": "no", "reason": "oops"})
    assert r.status_code == 403 and events(connection, "user.deactivate", "denied") == 1
    r = b.submit(page, f"{page}/roles", {"roles": ["admin", "coder"], "reason": "self"})
    assert r.status_code == 403


@pytest.mark.parametrize("role", ["compliance", "coder", "provider", "auditor"])
def test_other_roles_are_refused(people: People, browser_for: Any, role: str) -> None:
    someone = people.make(role, name=f"Some {role}")
    assert browser_for(someone).get("/admin/users").status_code == 403


@pytest.mark.parametrize("query", ["sort=password_hash", "dir=up", "page=0", "per=7", "page=abc"])
def test_hostile_sort_and_page(people: People, browser_for: Any, query: str) -> None:
    admin = people.make("admin", name="Ada Admin")
    page = browser_for(admin).get(f"/admin/users?{query}")
    assert page.status_code == 422 and "<html" in page.text


def test_admin_has_no_clinical_or_oversight_pages(people: People, browser_for: Any) -> None:
    admin = people.make("admin", "coder", name="Ada Admin")
    b = browser_for(admin)
    assert b.get("/compliance").status_code == 403
    assert re.search(r"Users", b.get("/").text)
