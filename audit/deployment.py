"""Start-up checks of how the service is deployed: refuse to run in production when something that
protects the trail is exposed."""

from __future__ import annotations

import stat

from audit.config import Settings


class DeploymentError(RuntimeError):
    """The service refuses to start; the message says what to fix."""


def check_deployment(settings: Settings) -> None:
    if settings.env != "production":
        return
    path = settings.signing_key_file
    if not path.exists():
        return  # created 0600 on first use
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise DeploymentError(
            f"the signing key {path} is readable or writable by group or others (mode {mode:04o}): "
            f"whoever reads it can sign checkpoints. Run: chmod 600 {path}"
        )
