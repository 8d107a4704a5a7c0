"""Engine, naming convention and the one-transaction-per-unit-of-work session scope.

SQLite transactions start with BEGIN IMMEDIATE so the ledger head read and the append happen
under the database write lock (DESIGN.md section 5). PostgreSQL runs READ COMMITTED; the ledger
serialises appends with an advisory transaction lock.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

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


def make_engine(url: str, **kwargs: Any) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)
        _configure_sqlite(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, isolation_level="READ COMMITTED", pool_pre_ping=True, **kwargs)


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from pysqlite so BEGIN IMMEDIATE is ours to issue.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


@lru_cache
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    return _engine_for(get_settings().database_url)


def is_sqlite(bind: Engine | Any) -> bool:
    return bool(bind.dialect.name == "sqlite")


@contextmanager
def session_scope(bind: Engine | Connection | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any error. Services never commit.

    Given a Connection already in a transaction (the tests' rolled-back outer transaction), the
    session works in a savepoint, so commit and rollback behave as they do on their own.
    """
    bind = bind or get_engine()
    options: dict[str, Any] = (
        {"join_transaction_mode": "create_savepoint"} if isinstance(bind, Connection) else {}
    )
    with Session(bind, expire_on_commit=False, **options) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
