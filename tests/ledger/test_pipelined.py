"""PostgreSQL's pipelined append (audit.ledger.pipelined): an error the server answers inside a pipeline
reaches the service as the SQLAlchemy error any statement would raise (a deadlock on the log's lock is
then a 503, retry, not a 500), and the transaction rolls back cleanly with nothing kept."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.config import get_settings
from audit.db import is_unavailable
from audit.ledger import pipelined
from audit.ledger import service as ledger
from tests.support import IS_POSTGRES

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="psycopg's pipeline mode: PostgreSQL only")


def test_an_error_inside_the_pipeline_is_a_sqlalchemy_error_and_keeps_nothing(engine: Engine) -> None:
    with Session(engine) as session:
        before = session.execute(select(func.count()).select_from(ledger.LEDGER)).scalar_one()
        with pytest.raises(sa_exc.DataError) as raised, pipelined.pipeline(session):
            session.execute(text("CREATE TEMP TABLE pipelined_probe (n int)"))
            session.execute(text("INSERT INTO pipelined_probe VALUES (1)"))
            session.execute(text("SELECT 1 / 0"))  # answered only when the pipeline syncs
        assert getattr(raised.value.orig, "sqlstate", None) == "22012"
        session.rollback()
        assert session.execute(select(func.count()).select_from(ledger.LEDGER)).scalar_one() == before
        kept = session.execute(text("SELECT to_regclass('pg_temp.pipelined_probe')")).scalar()
        assert kept is None  # the whole transaction rolled back: the table made inside it is gone


def test_a_deadlock_on_the_logs_lock_is_unavailable_not_a_fault(engine: Engine) -> None:
    """One transaction waits on the log's lock (taken with the head read, pipelined) while holding
    another lock the log's holder then asks for: PostgreSQL rolls back the one that waited first."""
    log_id = get_settings().log_id
    other_key = 41_003
    first, second = Session(engine), Session(engine)
    errors: list[BaseException] = []
    try:
        first.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": other_key})
        pipelined.locked_head(second, ledger.advisory_key(log_id), log_id)

        def run(action: Any, session: Session) -> None:
            try:
                action()
            except Exception as exc:  # the one PostgreSQL chose to roll back
                errors.append(exc)
                session.rollback()

        waiting_first = threading.Thread(
            target=run,
            args=(lambda: pipelined.locked_head(first, ledger.advisory_key(log_id), log_id), first),
        )
        waiting_first.start()
        threading.Event().wait(0.3)  # `first` is queued on the log's lock before `second` asks for its key
        crossing = threading.Thread(
            target=run,
            args=(lambda: second.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": other_key}), second),
        )
        crossing.start()
        waiting_first.join(timeout=30), crossing.join(timeout=30)
    finally:
        first.close(), second.close()
    assert len(errors) == 1, errors
    assert isinstance(errors[0], sa_exc.DBAPIError)
    assert errors[0].statement == pipelined.LOCK_AND_HEAD[1]  # the victim is the pipelined lock and read
    assert getattr(errors[0].orig, "sqlstate", None) == "40P01"
    assert is_unavailable(errors[0])
