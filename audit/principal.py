"""Who is acting: the signed-in user as the services see them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from audit.ledger.events import Actor
from audit.models import User

ROLES = ("provider", "coder", "compliance", "auditor", "admin", "integration")


@dataclass(frozen=True)
class CurrentUser:
    id: str
    username: str
    display_name: str
    roles: frozenset[str]
    npi: str | None = None
    credential: str | None = None
    credential_active: bool = True
    locked_until: datetime | None = None
    signing_locked_until: datetime | None = None

    @classmethod
    def of(cls, user: User) -> CurrentUser:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            roles=frozenset(user.roles),
            npi=user.npi,
            credential=user.credential,
            credential_active=user.credential_active,
            locked_until=user.locked_until,
            signing_locked_until=user.signing_locked_until,
        )

    def has(self, role: str) -> bool:
        return role in self.roles

    def actor(self, role: str | None = None) -> Actor:
        """The audit actor; `role` is the capacity the user acted in (all roles when unknown)."""
        return Actor(id=self.id, role=role or ",".join(sorted(self.roles)), username=self.username)


@dataclass(frozen=True)
class Operator(CurrentUser):
    """The person at the host's shell running an ``audit`` command, named by the OS user. Not a
    database user: the role ``operator`` cannot be granted through the API (see ``ROLES``), and the
    audit actor carries no user id."""

    def actor(self, role: str | None = None) -> Actor:
        return Actor(id=None, role="operator", username=self.username)


def host_operator() -> Operator:
    """The OS user running this process (``getpass.getuser``; the numeric uid when it has no name)."""
    import getpass
    import os

    try:
        name = getpass.getuser()
    except (OSError, KeyError):
        name = f"uid-{os.getuid()}"
    name = name[:64]
    return Operator(id=f"os:{name}"[:36], username=name, display_name=name, roles=frozenset({"operator"}))
