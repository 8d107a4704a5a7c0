"""Which process signs checkpoints: one at a time, elected through PostgreSQL.

With several API processes on one PostgreSQL (``audit serve --workers N``, or several hosts), each
runs a `Checkpointer`, but only the holder of a session-level advisory lock signs. The lock is taken
with ``pg_try_advisory_lock`` on a connection of its own that is kept open (autocommit, so it never
idles in a transaction); when the holder dies, its connection closes, PostgreSQL releases the lock,
and the next process to try (every checkpoint interval) takes over. A lease whose connection fails is
given up at once.

Election is for economy and a clear "who signs" (the ``audit_checkpoint_signer`` metric), not for
safety: two signers would still be harmless, since a witness refuses a note no larger than the newest
it holds and the unique (log_id, tree_size) keeps one row. On SQLite there is one process (``serve``
refuses ``--workers > 1``), which is always the signer.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import struct
import threading
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

from audit.config import get_settings

log = logging.getLogger(__name__)


def signer_key(log_id: str) -> int:
    """The advisory lock key of the signer of `log_id` (apart from the ledger's append lock)."""
    digest = hashlib.sha256(b"checkpoint-signer\x00" + log_id.encode()).digest()
    return int(struct.unpack(">q", digest[:8])[0])


class SignerLease:
    """Whether this process is the elected checkpoint signer (`held()`, asked before each signing)."""

    def __init__(self, url: str | None = None, log_id: str | None = None) -> None:
        settings = get_settings()
        self.url = url or settings.database_url
        self.key = signer_key(log_id or settings.log_id)
        self._engine: Engine | None = None
        self._conn: Connection | None = None
        self._held = False
        self._lock = threading.Lock()

    @property
    def is_postgres(self) -> bool:
        return self.url.startswith("postgresql")

    def held(self) -> bool:
        """True when this process signs: on SQLite always; on PostgreSQL when it holds (or now takes)
        the advisory lock and its connection still answers."""
        if not self.is_postgres:
            return True
        with self._lock:
            try:
                if self._held:
                    self._ping()
                else:
                    self._try_take()
            except Exception as exc:  # the connection broke: the lock is gone with it
                if self._held:
                    log.warning("checkpoint signer lease lost: %s", type(exc).__name__)
                self._drop()
            return self._held

    @property
    def holding(self) -> bool:
        """The last answer of `held()`, without asking the database (for metrics)."""
        return self._held if self.is_postgres else True

    def release(self) -> None:
        with self._lock:
            if self._held and self._conn is not None:
                with contextlib.suppress(Exception):  # closing the connection releases it anyway
                    self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            self._drop()
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None

    def _connection(self) -> Connection:
        if self._conn is None:
            if self._engine is None:
                from audit.db import make_engine

                # Named so an operator (and the crash test) can see which process signs:
                # pg_stat_activity.application_name of the lock holder's backend.
                name = {"application_name": f"audit-signer-{os.getpid()}"}
                self._engine = make_engine(self.url, poolclass=NullPool, connect_args=name)
            conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._conn = conn
        return self._conn

    def _try_take(self) -> None:
        got = self._connection().execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
        if got:
            log.info("this process now signs checkpoints")
        self._held = bool(got)

    def _ping(self) -> None:
        self._connection().execute(text("SELECT 1")).scalar()

    def _drop(self) -> None:
        self._held = False
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.invalidate()
                conn.close()


_lease: SignerLease | None = None


def lease() -> SignerLease:
    """This process's lease (one per process, made on first use)."""
    global _lease
    if _lease is None:
        _lease = SignerLease()
    return _lease


def reset_lease(value: Any = None) -> None:
    """Release and forget this process's lease (shutdown; tests)."""
    global _lease
    if _lease is not None:
        _lease.release()
    _lease = value
