"""A read unit of work (an HTTP GET) takes no write lock on SQLite, and one that writes after all is
either upgraded or run again as a writer: never a deadlock, never a lost or forked write."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from audit.db import make_engine, session_scope
from audit.middleware import AS_WRITER, RetryAsWriter
from audit.uow import WriteLockNeeded, unit_of_work
from tests.support import IS_POSTGRES

pytestmark = pytest.mark.skipif(IS_POSTGRES, reason="SQLite's lock; PostgreSQL takes none at BEGIN")


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'locks.db'}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
        conn.execute(text("INSERT INTO t VALUES (1)"))
    yield engine
    engine.dispose()


def _hold_write_lock(engine: Engine, held: threading.Event, release: threading.Event) -> None:
    with session_scope(engine) as session:  # a writer: BEGIN IMMEDIATE
        session.execute(text("INSERT INTO t VALUES (2)"))
        held.set()
        release.wait(20)


def test_a_read_unit_does_not_wait_for_a_writer(lite: Engine) -> None:
    held, release = threading.Event(), threading.Event()
    writer = threading.Thread(target=_hold_write_lock, args=(lite, held, release))
    writer.start()
    try:
        assert held.wait(10)
        started = time.perf_counter()
        with unit_of_work(lite, write=False) as session:
            rows = session.execute(text("SELECT count(*) FROM t")).scalar_one()
        waited = time.perf_counter() - started
        assert rows == 1  # the snapshot before the writer's uncommitted row
        assert waited < 2, f"the read waited {waited:.1f} s behind the writer"
        other = sqlite3.connect(str(lite.url.database), timeout=0.2, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other.execute("BEGIN IMMEDIATE")  # whereas a writer still queues behind the writer
        other.close()
    finally:
        release.set()
        writer.join()


def test_a_read_unit_that_writes_alone_commits(lite: Engine) -> None:
    with unit_of_work(lite, write=False) as session:
        session.execute(text("SELECT count(*) FROM t")).scalar_one()
        session.execute(text("INSERT INTO t VALUES (3)"))
    with lite.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t WHERE n = 3")).scalar_one() == 1


def test_a_stale_read_unit_is_refused_the_write_and_keeps_nothing(lite: Engine) -> None:
    with pytest.raises(WriteLockNeeded), unit_of_work(lite, write=False) as session:
        seen = session.execute(text("SELECT count(*) FROM t")).scalar_one()
        with session_scope(lite) as other:  # another connection writes after our snapshot
            other.execute(text("INSERT INTO t VALUES (4)"))
        session.execute(text("INSERT INTO t VALUES (:n)"), {"n": 100 + seen})
    with lite.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t WHERE n >= 100")).scalar_one() == 0


def test_a_refused_get_runs_again_as_a_writer(lite: Engine) -> None:
    """The middleware runs the GET again with a writer's unit, which sees the other write first."""
    attempts: list[bool] = []

    def page(request: Request) -> PlainTextResponse:
        as_writer = bool(request.scope.get(AS_WRITER))
        attempts.append(as_writer)
        with unit_of_work(lite, write=as_writer) as session:
            seen = session.execute(text("SELECT count(*) FROM t")).scalar_one()
            if not as_writer:
                with session_scope(lite) as other:
                    other.execute(text("INSERT INTO t VALUES (5)"))
            session.execute(text("INSERT INTO t VALUES (:n)"), {"n": 100 + seen})
        return PlainTextResponse(str(seen))

    app = Starlette(routes=[Route("/view", page)], middleware=[Middleware(RetryAsWriter)])
    response = TestClient(app).get("/view")
    assert response.status_code == 200
    assert attempts == [False, True]
    assert response.text == "2"  # the writer's run saw the row committed during the first try
    with lite.connect() as conn:
        assert conn.execute(text("SELECT n FROM t WHERE n >= 100")).scalars().all() == [102]
