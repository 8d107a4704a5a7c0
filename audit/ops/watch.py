"""A timer in every serving process that keeps the process's own metrics current: whether it holds
the checkpoint signer lease and, in the signer only, the result of a periodic incremental
verification (chain and indexed columns after the latest checkpoint, `AUDIT_VERIFY_INTERVAL`)."""

from __future__ import annotations

import logging
import time

from audit.config import get_settings
from audit.ledger.signer import lease
from audit.ops.metrics import SIGNER, VERIFICATION_AT, VERIFICATION_OK
from audit.periodic import Periodic

log = logging.getLogger(__name__)
TICK_SECONDS = 5.0


def verify_now() -> bool:
    """Run an incremental verification and publish its result; True when it found no problem."""
    from audit.db import get_engine, read_snapshot
    from audit.ledger import verification

    with read_snapshot(get_engine()) as session:
        result = verification.verify_ledger(session, checks=verification.INCREMENTAL)
    VERIFICATION_OK.set(1 if result.ok else 0)
    VERIFICATION_AT.set(time.time())
    if not result.ok:
        log.error(
            "verification found %d problems; first bad seq %s: %s",
            result.problem_count,
            result.first_bad_seq,
            result.problem,
        )
    return result.ok


class Watch(Periodic):
    def __init__(self) -> None:
        super().__init__("ops-watch", TICK_SECONDS, self._tick)
        self.interval_s = get_settings().verify_interval
        self._last = 0.0

    def _tick(self) -> None:
        signing = lease().holding
        SIGNER.set(1 if signing else 0)
        due = self.interval_s and time.monotonic() - self._last >= self.interval_s
        if signing and due:
            self._last = time.monotonic()
            verify_now()
