"""User creation decides `user.create` in the service; the host's bootstrap path is the only way in
without a decision, and its event says so (no policy)."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Connection

from audit.errors import Forbidden
from audit.uow import unit_of_work
from audit.user.schemas import UserCreate
from audit.user.service import bootstrap_user, create_user
from tests.conftest import People
from tests.user.test_auth import events


def _data(username: str, roles: list[str]) -> UserCreate:
    return UserCreate(
        username=username, password="a long enough password", display_name=username, roles=roles
    )


def test_an_admin_creates_a_user_under_the_policy(people: People, connection: Connection) -> None:
    admin = people.make("admin")
    with unit_of_work(connection) as session:
        made = create_user(session, user=admin, data=_data("svc.coder", ["coder"]))
    event = next(e for e in events(connection, "user.create") if e["subject"]["id"] == made.id)
    assert event["outcome"] == "allowed"
    assert event["actor"] == {"id": admin.id, "role": "admin", "username": admin.username}
    assert "users.admin_manages_users" in event["policy"]["rule_ids"] and event["policy"]["version"]


def test_a_coder_is_refused_in_the_service_and_the_refusal_recorded(
    people: People, connection: Connection
) -> None:
    coder = people.make("coder")
    with pytest.raises(Forbidden), unit_of_work(connection) as session:
        create_user(session, user=coder, data=_data("svc.sneaky", ["admin"]))
    created = events(connection, "user.create")
    assert not [e for e in created if e["after"] and e["after"]["username"] == "svc.sneaky"]
    denied = [e for e in created if e["outcome"] == "denied" and e["actor"]["id"] == coder.id]
    assert len(denied) == 1 and denied[0]["policy"]["rule_ids"] is not None


def test_bootstrap_records_the_host_actor_and_no_policy(connection: Connection) -> None:
    with unit_of_work(connection) as session:
        made = bootstrap_user(session, data=_data("svc.root", ["admin"]))
    event = next(e for e in events(connection, "user.create") if e["subject"]["id"] == made.id)
    assert event["actor"] == {"id": None, "role": "cli", "username": "cli"}
    assert event["policy"] is None and event["after"]["roles"] == ["admin"]
