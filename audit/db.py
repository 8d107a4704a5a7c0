"""Engine, naming convention and the one-transaction-per-unit-of-work session scope.

SQLite transactions start with BEGIN IMMEDIATE so the ledger head read and the append happen
under the database write lock (DESIGN.md section 5), except a read unit of work (an HTTP GET or HEAD,
`session_scope(write=False)`), which begins DEFERRED so it never queues behind writers; if it
writes after all, SQLite either upgrades it (nothing was committed since its snapshot) or refuses at
once with SQLITE_BUSY, which `audit.uow` turns into a retry as a writer (`lock_upgrade_refused`).
PostgreSQL runs READ COMMITTED; the ledger serialises appends with an advisory transaction lock.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import msgspec
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, SQLModel, create_engine

from audit.config import get_settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLModel.metadata.naming_convention = NAMING_CONVENTION
metadata: MetaData = SQLModel.metadata
READ_SNAPSHOT = "audit_read_snapshot"  # execution option: a consistent read-only transaction
DEFERRED = "audit_deferred"  # execution option: a SQLite unit of work that starts as a reader
_SQLITE_BUSY = 5  # the primary result code; SQLITE_BUSY_SNAPSHOT (517) and the others share it


_decode_json = msgspec.json.Decoder().decode


def json_loads(text: str | bytes) -> Any:
    """JSON columns as the standard parser reads them, about three times faster: msgspec first
    (code lines' modifiers and pointers are read on every page and by every verification), and the
    standard parser for what msgspec refuses (NaN, infinities), so both read every value alike."""
    try:
        return _decode_json(text)
    except msgspec.DecodeError:
        return json.loads(text)


def make_engine(url: str, **kwargs: Any) -> Engine:
    kwargs.setdefault("json_deserializer", json_loads)
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, hide_parameters=True, **kwargs
        )
        _configure_sqlite(engine, get_settings().sqlite_synchronous)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    # hide_parameters: a database error's message (logged) never carries a statement's values, so no
    # password hash, token digest or patient reference reaches the logs through it.
    return create_engine(
        url, isolation_level="READ COMMITTED", pool_pre_ping=True, hide_parameters=True, **kwargs
    )


def _configure_sqlite(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN IMMEDIATE is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            # 16 KiB pages for a NEW file (a no-op on an existing one, and it must precede WAL): a
            # ledger row is 1-2 KB, and 4 KiB pages left a fifth of each page unused (issue 12).
            cursor.execute("PRAGMA page_size=16384")
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        # FULL (the default, AUDIT_SQLITE_SYNCHRONOUS): each commit fsyncs the WAL, so an acknowledged
        # write survives power loss; NORMAL only survives a process crash.
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A read-only transaction (verification, checkpoint signing) or a read unit of work (a GET)
        # must not hold the write lock.
        options = conn.get_execution_options()
        reader = options.get(READ_SNAPSHOT) or options.get(DEFERRED)
        conn.exec_driver_sql("BEGIN" if reader else "BEGIN IMMEDIATE")


@lru_cache
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    return _engine_for(get_settings().database_url)


def is_sqlite(bind: Engine | Any) -> bool:
    return bool(bind.dialect.name == "sqlite")


@contextmanager
def read_snapshot(bind: Engine) -> Iterator[Session]:
    """A read-only transaction that sees one consistent state across many queries, without blocking
    writers: REPEATABLE READ on PostgreSQL (nothing is appended in it), a deferred BEGIN on SQLite
    (a WAL snapshot from the first read). Always rolled back."""
    conn = bind.connect().execution_options(**{READ_SNAPSHOT: True})
    if bind.dialect.name == "postgresql":
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    try:
        with conn.begin() as transaction, Session(conn, expire_on_commit=False) as session:
            if bind.dialect.name == "postgresql":
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            yield session
            transaction.rollback()
    finally:
        conn.close()


@lru_cache
def _deferred(engine: Engine) -> Engine:
    return engine.execution_options(**{DEFERRED: True})


def lock_upgrade_refused(exc: BaseException) -> bool:
    """True when SQLite refused a deferred transaction the write lock (SQLITE_BUSY): another
    connection wrote since its snapshot, or holds the lock. Waiting cannot help (SQLite does not
    call the busy handler for an upgrade); running the unit again as a writer does."""
    from sqlalchemy import exc as sa_exc

    if not isinstance(exc, sa_exc.OperationalError):
        return False
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == _SQLITE_BUSY


@contextmanager
def session_scope(bind: Engine | Connection | None = None, *, write: bool = True) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. Services never commit.

    Given a Connection already in a transaction (the tests' rolled-back outer transaction), the
    session works in a savepoint, so commit and rollback behave as they do on their own.
    `write=False` (a unit that expects only to read): on SQLite the transaction begins DEFERRED, so it
    takes no lock until (unless) it writes; it still commits what it wrote.
    """
    bind = bind or get_engine()
    if not write and isinstance(bind, Engine) and is_sqlite(bind):
        bind = _deferred(bind)
    # A Connection in a transaction: work in a savepoint. An AUTOCOMMIT one (the restore's
    # lock-holding connection) has no transaction to make a savepoint in.
    isolation = bind.get_execution_options().get("isolation_level") if isinstance(bind, Connection) else None
    joins = isinstance(bind, Connection) and isolation != "AUTOCOMMIT"
    options: dict[str, Any] = {"join_transaction_mode": "create_savepoint"} if joins else {}
    with Session(bind, expire_on_commit=False, **options) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_scope(bind: Engine | Connection | None = None) -> Iterator[Session]:
    """A read-only transaction, always rolled back. On SQLite it starts with a plain (deferred) BEGIN,
    so it never takes the write lock: in WAL mode it reads a snapshot while writers carry on."""
    bind = bind or get_engine()
    if isinstance(bind, Engine):
        bind = bind.execution_options(**{READ_SNAPSHOT: True})
    in_autocommit = isinstance(bind, Connection) and bind.get_execution_options().get("isolation_level") == (
        "AUTOCOMMIT"
    )  # no transaction to make a savepoint in (the restore's lock-holding connection)
    options: dict[str, Any] = (
        {"join_transaction_mode": "create_savepoint"}
        if isinstance(bind, Connection) and not in_autocommit
        else {}
    )
    with Session(bind, expire_on_commit=False, **options) as session:
        try:
            yield session
        finally:
            session.rollback()


def locked_row(session: Session, model: Any, values: dict[str, Any], key: str) -> Any:
    """The row of `model` whose `key` column equals values[key], created from `values` if missing,
    locked for this transaction (FOR UPDATE on PostgreSQL; SQLite transactions hold the write lock).

    Between the insert and the select a concurrent transaction may delete the row (pruning), so the
    pair is retried; under READ COMMITTED the next insert then creates it."""
    from sqlalchemy import select

    stmt = (
        select(model)
        .where(getattr(model, key) == values[key])
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    for _ in range(5):
        insert_missing(session, model.__table__, values, [key])
        row = session.scalars(stmt).first()
        if row is not None:
            return row
    raise RuntimeError(f"{model.__tablename__} row {values[key]!r} kept disappearing")


def conflict_insert(dialect_name: str, table: Any) -> Any:
    """An INSERT into `table` that takes ON CONFLICT clauses (`on_conflict_do_nothing`,
    `on_conflict_do_update`), for the named database: both speak them, through their own constructs."""
    from sqlalchemy.dialects import postgresql, sqlite

    return (postgresql if dialect_name == "postgresql" else sqlite).insert(table)


def insert_missing(session: Session, table: Any, values: dict[str, Any], key: list[str]) -> None:
    """INSERT the row unless one with the same `key` exists (ON CONFLICT DO NOTHING on both databases),
    so concurrent first writers of a counter row never fail on its primary key."""
    stmt = conflict_insert(session.get_bind().dialect.name, table).values(**values)
    session.execute(stmt.on_conflict_do_nothing(index_elements=key))


# PostgreSQL SQLSTATE classes that mean "not now" rather than "wrong": connection exceptions (08),
# insufficient resources such as a full disk (53), operator intervention such as a shutdown (57),
# and a read-only transaction on a standby (25006).
_UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
_UNAVAILABLE_SQLSTATES = ("25006",)


def is_unavailable(exc: BaseException) -> bool:
    """True when a database error means the database cannot serve now (down, unreachable, full,
    read-only, locked too long), so the client should retry later (503), not that the request is bad."""
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return True
    if isinstance(exc, sa_exc.DBAPIError):
        state = getattr(exc.orig, "sqlstate", None) or ""
        return state.startswith(_UNAVAILABLE_SQLSTATE_CLASSES) or state in _UNAVAILABLE_SQLSTATES
    return False
