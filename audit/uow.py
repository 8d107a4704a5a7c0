"""Unit of work: one transaction per request or command, plus the record of a refusal.

When a service refuses (a domain error that carries a `record` callback), the refused unit of work
rolls back first and the refusal's audit event is then written and committed in its own short
transaction, so a denied attempt leaves evidence but never a partial change.

A read unit of work (`write=False`, an HTTP GET) begins as a reader on SQLite. If it writes (a page
view's audit event) after another connection wrote, SQLite refuses the upgrade at once; the unit is
rolled back and `WriteLockNeeded` asks the caller to run it again as a writer, which then waits its
turn for the lock like any write. So a read never blocks writers, and no upgrade can deadlock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.db import lock_upgrade_refused, session_scope
from audit.errors import DomainError


class WriteLockNeeded(Exception):
    """A read unit of work wrote and SQLite refused it the write lock: run it again with write=True.
    Nothing of it was committed."""


@contextmanager
def unit_of_work(bind: Engine | Connection | None = None, *, write: bool = True) -> Iterator[Session]:
    try:
        with session_scope(bind, write=write) as session:
            yield session
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
