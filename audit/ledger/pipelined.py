"""PostgreSQL: the statements an append runs under the log's lock, sent in as few round trips as
possible (psycopg's pipeline mode, on the session's own connection and transaction).

Why: the advisory lock is held from the moment it is granted until the commit. Every round trip in
between makes the holding thread give up the GIL and wait for it again, behind the process's other
request threads, while every other writer of the log waits on the lock (issue 14: the lock, not the
CPU, bounded two workers). The server runs pipelined statements one after another, in order, each
with its own READ COMMITTED snapshot, so a head read queued after the lock still reads the head as
the lock's previous holder committed it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import psycopg
from sqlalchemy import exc as sa_exc
from sqlmodel import Session

from audit.ledger.chain import ZERO_HASH

LOCK_AND_HEAD = (
    "SELECT pg_advisory_xact_lock(%(key)s)",
    "SELECT seq, chain_hash FROM ledger_event WHERE log_id = %(log_id)s ORDER BY seq DESC LIMIT 1",
)


def driver_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's current transaction."""
    raw = session.connection().connection.driver_connection
    assert isinstance(raw, psycopg.Connection)
    return raw


@contextmanager
def as_sqlalchemy_errors(statement: str) -> Iterator[None]:
    """A psycopg error raised here becomes the SQLAlchemy error the rest of the service expects (a
    deadlock or a lost connection is then `audit.db.is_unavailable`, a 503, as from any statement)."""
    try:
        yield
    except psycopg.Error as error:
        wrapped = sa_exc.DBAPIError.instance(statement, None, error, psycopg.Error, hide_parameters=True)
        raise wrapped from error


def locked_head(session: Session, key: int, log_id: str) -> tuple[int, bytes]:
    """Take the log's advisory lock and read its head in one round trip: (seq, chain_hash) of the
    last event, or (-1, zeros) for an empty log."""
    raw = driver_connection(session)
    lock, head = LOCK_AND_HEAD
    with as_sqlalchemy_errors(head), raw.pipeline():
        raw.execute(lock, {"key": key})
        row = raw.execute(head, {"log_id": log_id}).fetchone()
    return (int(row[0]), bytes(row[1])) if row else (-1, ZERO_HASH)


@contextmanager
def pipeline(session: Session) -> Iterator[None]:
    """On PostgreSQL, the statements run inside are sent without waiting for their results, and the
    block's end (or the first result a `scalars` call fetches) waits for all of them at once. Only
    statements that return no rows may run inside through the session; `scalars` fetches rows.
    Elsewhere (SQLite) the statements simply run one after another."""
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    raw = driver_connection(session)
    with as_sqlalchemy_errors("pipelined append"), raw.pipeline():
        yield


def scalars(session: Session, statement: Any, params: dict[str, Any]) -> list[Any]:
    """The first column of a statement's rows, also inside a `pipeline`: on PostgreSQL the statement,
    compiled once, runs on the driver's connection (SQLAlchemy's own result reads no rows there)."""
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        return list(session.execute(statement, params).scalars())
    sql, fixed = _compiled(statement, dialect)
    with as_sqlalchemy_errors(sql):
        return [row[0] for row in driver_connection(session).execute(sql, {**fixed, **params}).fetchall()]


@lru_cache(maxsize=16)
def _compiled(statement: Any, dialect: Any) -> tuple[str, dict[str, Any]]:
    """The statement's SQL and its fixed parameters (every bind parameter needs a default value),
    kept per statement object: callers pass statements they build once."""
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    return str(compiled), dict(compiled.params)
