"""The checkpoint signer election: one holder of the advisory lock at a time, and takeover."""

from __future__ import annotations

import time
import uuid

import pytest
from sqlalchemy import text

from audit.db import make_engine
from audit.ledger.signer import SignerLease
from tests.support import IS_POSTGRES, TEST_DB_URL


def test_sqlite_has_one_process_which_always_signs() -> None:
    if IS_POSTGRES:
        pytest.skip("SQLite only")
    assert SignerLease(TEST_DB_URL, "x").held()


@pytest.mark.skipif(not IS_POSTGRES, reason="the election runs on PostgreSQL")
def test_one_holder_and_takeover_when_its_connection_dies() -> None:
    log_id = f"signer-{uuid.uuid4().hex[:8]}"
    first, second = SignerLease(TEST_DB_URL, log_id), SignerLease(TEST_DB_URL, log_id)
    try:
        assert first.held() and not second.held()
        assert first.held() and not second.held()  # renewal keeps it
        assert first._conn is not None
        pid = first._conn.execute(text("SELECT pg_backend_pid()")).scalar()
        admin = make_engine(TEST_DB_URL)
        with admin.begin() as conn:  # the holder's backend dies, as when its process is killed
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        admin.dispose()
        # pg_terminate_backend only sends the signal: wait (bounded) until the backend is gone and its
        # session lock with it, as the next renewal tick would in service.
        waiter = make_engine(TEST_DB_URL)
        with waiter.connect() as conn:
            for _ in range(100):
                gone = "SELECT 1 FROM pg_stat_activity WHERE pid = :p"
                alive = conn.execute(text(gone), {"p": pid}).first()
                if alive is None:
                    break
                time.sleep(0.05)
        waiter.dispose()
        assert second.held(), "the other process takes over at its next try"
        assert not first.held(), "the old holder notices its connection is gone and stands down"
    finally:
        first.release()
        second.release()
