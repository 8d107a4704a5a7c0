"""Sign-in as units of work, for the entrypoints (the API's token route and the CLI's exports and
samples). Services never commit; these run each step of audit.user.signin in its own transaction,
so the attempt is counted before the slow password check, which holds no lock.
"""

from __future__ import annotations

from sqlalchemy.engine import Connection, Engine

from audit.models import User
from audit.uow import unit_of_work
from audit.user.signin import Attempt, admit, conclude, issue_token, password_matches

CLI_ADDRESS = "local command line"  # the back-off key of sign-ins made by `audit export`, `audit sample`
Bind = Engine | Connection | None


def _checked(bind: Bind, username: str, password: str, address: str) -> tuple[Attempt, bool]:
    """Admit the attempt (committed: counted, or refused with 429), then check its password."""
    with unit_of_work(bind) as session:
        attempt = admit(session, username=username, address=address)
    return attempt, password_matches(attempt, password)


def authenticate(bind: Bind, *, username: str, password: str, address: str) -> User:
    """The user whose password this is (the CLI's check before an export or a sample)."""
    attempt, ok = _checked(bind, username, password, address)
    with unit_of_work(bind) as session:
        return conclude(session, attempt=attempt, password_ok=ok)


def sign_in(
    bind: Bind,
    *,
    username: str,
    password: str,
    address: str,
    lifetime: int | None = None,
    channel: str = "api",
) -> tuple[str, int]:
    """The API's (and the web pages') sign-in: a token, issued in the same unit of work as the
    conclusion. The same back-off rules hold for both channels."""
    attempt, ok = _checked(bind, username, password, address)
    with unit_of_work(bind) as session:
        user = conclude(session, attempt=attempt, password_ok=ok)
        return issue_token(
            session, user=user, source=attempt.claimant.source, lifetime=lifetime, channel=channel
        )
