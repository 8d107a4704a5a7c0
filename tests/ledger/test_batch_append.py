"""`ledger.one_append`: the events appended inside are held and appended at once when it closes (one
lock, one head read), each with its own time; nothing is appended when the block raises. A unit of
work holds its events the same way and appends them just before it commits; `ledger.append_now`
appends at once, after what was held, for a caller that needs the seq."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.db import session_scope
from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from audit.models import utcnow
from audit.uow import unit_of_work

ACTOR = Actor(id=None, role="test", username="test")


def _draft(n: int) -> EventDraft:
    return EventDraft(type="test.batch", actor=ACTOR, subject_type="test", subject_id=str(n))


def test_held_events_are_appended_in_order_with_their_own_times(connection: Connection) -> None:
    early = utcnow() - timedelta(minutes=5)
    with session_scope(connection) as session:
        start = ledger.head(session)[0]
        with ledger.one_append(session) as pending:
            assert ledger.append_one(session, _draft(1), now=early) == -1  # not known yet
            assert ledger.append(session, [_draft(2), _draft(3)]) == [-1, -1]
            assert ledger.head(session)[0] == start and len(pending) == 3  # nothing written yet
        assert ledger.head(session)[0] == start + 3
    rows = connection.execute(
        select(ledger.LEDGER.c.seq, ledger.LEDGER.c.payload).where(ledger.LEDGER.c.seq > start)
    ).all()
    bodies = [json.loads(bytes(p)) for _, p in sorted(rows)]
    assert [b["subject"]["id"] for b in bodies] == ["1", "2", "3"]
    assert bodies[0]["ts"].startswith(early.strftime("%Y-%m-%dT%H:%M:%S"))
    assert bodies[1]["ts"] == bodies[2]["ts"] != bodies[0]["ts"]
    with unit_of_work(connection) as session:
        assert ledger.verify(session).ok


def test_nothing_is_appended_when_the_block_raises_and_it_does_not_nest(connection: Connection) -> None:
    with session_scope(connection) as session:
        start = ledger.head(session)[0]
        with pytest.raises(ValueError), ledger.one_append(session):
            ledger.append_one(session, _draft(1))
            raise ValueError("undone")
        assert ledger.head(session)[0] == start
        with pytest.raises(RuntimeError), ledger.one_append(session), ledger.one_append(session):
            pass


def _subjects_after(connection: Connection, start: int) -> list[tuple[int, str]]:
    rows = connection.execute(
        select(ledger.LEDGER.c.seq, ledger.LEDGER.c.payload).where(ledger.LEDGER.c.seq > start)
    ).all()
    return [(seq, json.loads(bytes(p))["subject"]["id"]) for seq, p in sorted(rows)]


def test_a_unit_of_work_appends_its_events_when_its_work_is_done(connection: Connection) -> None:
    with session_scope(connection) as session:
        start = ledger.head(session)[0]
    with unit_of_work(connection) as session:
        assert ledger.append_one(session, _draft(1)) == -1
        assert ledger.head(session)[0] == start  # held: the log is not locked yet
        seq = ledger.append_now(session, _draft(2))  # a caller that stores the seq
        assert seq == start + 2 and ledger.head(session)[0] == seq  # after the event held before it
        assert ledger.append_one(session, _draft(3)) == -1  # held again
    assert _subjects_after(connection, start) == [(start + 1, "1"), (start + 2, "2"), (start + 3, "3")]


def test_a_unit_of_work_that_raises_appends_nothing(connection: Connection) -> None:
    with session_scope(connection) as session:
        start = ledger.head(session)[0]
    with pytest.raises(ValueError), unit_of_work(connection) as session:
        ledger.append_one(session, _draft(1))
        raise ValueError("undone")
    assert _subjects_after(connection, start) == []
