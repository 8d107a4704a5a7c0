"""While serving, report closed windows of failed sign-ins even when nobody signs in afterwards."""

from __future__ import annotations

from audit.models import utcnow
from audit.periodic import Periodic
from audit.policy.runtime import get_compliance
from audit.uow import unit_of_work
from audit.user import backoff, signin_events


def sweep_in_own_transaction() -> int:
    """Prune forgotten back-off keys, then append the summaries of closed windows; returns summaries.

    Two transactions, pruning first: a sign-in locks its back-off rows before it may wait for the
    ledger, so holding the ledger while waiting for those rows could deadlock."""
    now = utcnow()
    with unit_of_work() as session:
        backoff.prune(session, get_compliance().signin, now)
    with unit_of_work() as session:
        return signin_events.sweep(session, now)


class SigninSweeper(Periodic):
    def __init__(self, interval: float) -> None:
        super().__init__("signin-sweeper", interval, sweep_in_own_transaction)
