"""Unit of work: one transaction per request or command, plus the record of a refusal.

When a service refuses (a domain error that carries a `record` callback), the refused unit of work
rolls back first and the refusal's audit event is then written and committed in its own short
transaction, so a denied attempt leaves evidence but never a partial change.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.db import session_scope
from audit.errors import DomainError


@contextmanager
def unit_of_work(bind: Engine | Connection | None = None) -> Iterator[Session]:
    try:
        with session_scope(bind) as session:
            yield session
    except DomainError as error:
        if error.record is not None:
            record, error.record = error.record, None
            with session_scope(bind) as session:
                record(session)
        raise
