"""Unit of work: one transaction per request or command, plus the record of a refusal.

When a service refuses (a domain error that carries a `record` callback), the refused unit of work
rolls back first and the refusal's audit event is then written and committed in its own short
transaction, so a denied attempt leaves evidence but never a partial change.

Every unit holds the events its services append and appends them, in order, under one lock and one
head read, when its work is done (`_holding_events`).

A read unit of work (`write=False`, an HTTP GET) begins as a reader on SQLite. If it writes (a page
view's audit event) after another connection wrote, SQLite refuses the upgrade at once; the unit is
rolled back and `WriteLockNeeded` asks the caller to run it again as a writer, which then waits its
turn for the lock like any write. So a read never blocks writers, and no upgrade can deadlock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.db import get_engine, is_sqlite, lock_upgrade_refused, session_scope
from audit.errors import DomainError


class WriteLockNeeded(Exception):
    """A read unit of work wrote and SQLite refused it the write lock: run it again with write=True.
    Nothing of it was committed."""


@contextmanager
def unit_of_work(bind: Engine | Connection | None = None, *, write: bool = True) -> Iterator[Session]:
    held: list[Any] = []
    separate = not write and _snapshot_reader(bind)
    try:
        with session_scope(bind, write=write) as session:
            with _holding_events(session, held):
                yield session
            if held and not separate:
                _append(session, held)
        if held and separate:
            with session_scope(bind) as writer:
                _append(writer, held)
    except DomainError as error:
        if error.record is not None:
            record, error.record = error.record, None
            with session_scope(bind) as session:
                record(session)
        raise
    except Exception as exc:
        if not write and lock_upgrade_refused(exc):
            raise WriteLockNeeded() from exc
        raise


def _snapshot_reader(bind: Engine | Connection | None) -> bool:
    """A read unit on its own SQLite connection reads a snapshot that cannot become a writer once
    another connection has written: its events are appended in a writer transaction after it."""
    engine = bind if bind is not None else get_engine()
    return isinstance(engine, Engine) and is_sqlite(engine)


@contextmanager
def _holding_events(session: Session, held: list[Any]) -> Iterator[None]:
    """Hold the events a unit appends and append them when it ends, just before it commits.

    A write unit then takes the log's lock (PostgreSQL's advisory lock) for the append and the commit
    only, not from its first event to its commit: with several requests in flight, the lock is no
    longer held while the holder's thread waits for the GIL through the rest of its request (issue
    14). A service that needs an event's seq appends it at once (`ledger.append_now`).

    A long read (the compliance dashboard over a million events) would otherwise ask SQLite for the
    write lock at its end, be refused whenever the checkpointer or a request wrote meanwhile, and run
    again from the start as a writer. Held events are appended after the reading, in the same
    transaction (PostgreSQL, or a connection already in a transaction) or, on SQLite, in a short
    writer transaction of their own. The response is sent only after they commit, so no view goes
    unrecorded; an error before the end appends nothing, as a rolled-back unit would."""
    from audit.ledger import service as ledger

    with ledger.one_append(session, append=False) as pending:
        yield
        held.extend(pending)


def _append(session: Session, held: list[Any]) -> None:
    from audit.ledger import service as ledger

    ledger.append_timed(session, held)
