"""One settings object, read through one cached function (never at import time)."""

from __future__ import annotations

import re
import socket
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"
MIN_SECRET_LENGTH = 32
PACKAGE_DIR = Path(__file__).resolve().parent
# C2SP signed-note key names (and, as tlog-checkpoint recommends, origins): no Unicode space, no "+",
# and (as nothing in a note may be) no control character.
_NAME_RE = re.compile(r"[^\s+\x00-\x1f\x7f]+")


def default_policies_dir() -> Path:
    """The policies that ship with the code (`audit/_policies` links to the repo's `policies/`
    and is a real folder in an installed wheel), so any working directory works."""
    return (PACKAGE_DIR / "_policies").resolve()


POOL_CONNECTIONS = 15  # SQLAlchemy's default pool per engine: 5 kept, 10 more on demand


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore", populate_by_name=True)

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./audit.db"
    secret_key: str = DEV_SECRET
    signing_key_file: Path = Path("./audit-signing.key")
    policies_dir: Path | None = None
    log_id: str = "coding-audit"
    checkpoint_timer: bool = True  # sign checkpoints periodically while serving (off in tests)
    # The checkpoint origin line (AUDIT_LOG_ORIGIN; AUDIT_CHECKPOINT_ORIGIN is its older name).
    log_origin: str | None = Field(
        default=None, validation_alias=AliasChoices("AUDIT_LOG_ORIGIN", "AUDIT_CHECKPOINT_ORIGIN")
    )
    # The signed-note key name; kept apart from the origin so that a new origin leaves every earlier
    # checkpoint, bundle and pinned verifier key valid.
    log_key_name: str | None = None
    # Seconds between checkpoints while events arrive: the most an attacker who deletes the newest
    # events together with their checkpoint rows can remove unnoticed. Idle ticks cost one head read.
    checkpoint_interval: float = Field(default=1.0, gt=0, le=3600)
    witness_file: Path | None = None  # default: audit-witness.txt beside the signing key
    signin_sweep_timer: bool = True  # report closed windows of failed sign-ins while serving
    docs: bool = True  # serve /docs, /redoc and /openapi.json (production may turn them off)
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)  # routes may allow more (x-max-body-bytes)
    # Requests a process works on at once, interactive and long-running (reports, exports, imports,
    # verification); more wait their turn (audit.deps.request_gate). Together below the database pool's
    # 15 connections, so that no request waits for a connection while holding a thread another needs
    # (past capacity that stalled the service for the pool's 30 s timeout).
    max_concurrent_requests: int = Field(default=2, gt=0, le=14)
    max_concurrent_long_requests: int = Field(default=4, gt=0, le=14)
    retry_after_seconds: int = Field(default=5, gt=0)  # told to clients when the database is unavailable
    # SQLite only: FULL fsyncs the WAL on every commit, so an acknowledged write survives power loss;
    # NORMAL survives a process crash only (the last commits may roll back after a power cut).
    sqlite_synchronous: Literal["FULL", "NORMAL", "EXTRA"] = "FULL"
    # /metrics: when set, a scrape must send `Authorization: Bearer <token>` (else it is open; it
    # holds only aggregate counts, see docs/deploy.md).
    metrics_token: str | None = None
    # Seconds between the signer's incremental verifications (the /metrics verification status); 0: off.
    verify_interval: float = Field(default=300.0, ge=0, le=86400)

    @model_validator(mode="after")
    def _refuse_unsafe_settings(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("AUDIT_SECRET_KEY must be set to a real secret when AUDIT_ENV=production")
        if self.env == "production" and len(self.secret_key) < MIN_SECRET_LENGTH:
            raise ValueError(
                f"AUDIT_SECRET_KEY must be at least {MIN_SECRET_LENGTH} characters in production "
                "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(48))')"
            )
        if self.env == "production" and self.log_origin is None:
            raise ValueError(
                "AUDIT_LOG_ORIGIN must be set when AUDIT_ENV=production: it names the log in every signed "
                f"checkpoint, so it must be the same on every host and never change (for example "
                f"audit.example.org/{self.log_id}; set it to {self.log_id} to keep the origin of checkpoints "
                "signed before it existed)"
            )
        if self.log_origin is not None:
            _check_origin(self.log_origin, self.log_id)
        if self.max_concurrent_requests + self.max_concurrent_long_requests > POOL_CONNECTIONS:
            raise ValueError(
                "AUDIT_MAX_CONCURRENT_REQUESTS + AUDIT_MAX_CONCURRENT_LONG_REQUESTS must be at most "
                f"{POOL_CONNECTIONS}, the database pool's connections per process"
            )
        if self.log_key_name is not None and not _NAME_RE.fullmatch(self.log_key_name):
            raise ValueError(
                "AUDIT_LOG_KEY_NAME must be non-empty, with no spaces and no '+' (C2SP signed-note)"
            )
        return self

    @property
    def resolved_policies_dir(self) -> Path:
        return self.policies_dir or default_policies_dir()

    @property
    def resolved_witness_file(self) -> Path:
        return self.witness_file or self.signing_key_file.parent / "audit-witness.txt"

    @property
    def origin(self) -> str:
        """The checkpoint origin: AUDIT_LOG_ORIGIN, else ``<host name>/<log id>`` (a schema-less URL-like
        name, as C2SP tlog-checkpoint recommends). Production requires it to be set explicitly."""
        return self.log_origin or f"{_host_name()}/{self.log_id}"

    @property
    def key_name(self) -> str:
        """The checkpoint key name: AUDIT_LOG_KEY_NAME, else the log id (what every earlier release
        signed with, so existing checkpoints and exported verifier keys stay valid)."""
        return self.log_key_name or self.log_id

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def _check_origin(origin: str, log_id: str) -> None:
    if not _NAME_RE.fullmatch(origin):
        raise ValueError(
            f"AUDIT_LOG_ORIGIN {origin!r} must be non-empty, with no spaces, no control characters and no '+'"
        )
    if origin != log_id and not origin.endswith("/" + log_id):
        raise ValueError(
            f"AUDIT_LOG_ORIGIN {origin!r} must be the log id {log_id!r} or end with '/{log_id}' "
            f"(for example audit.example.org/{log_id}), so that bundle verifiers can match it to the log"
        )


def _host_name() -> str:
    """This machine's name, lower case, reduced to DNS characters (no DNS lookup)."""
    name = re.sub(r"[^a-z0-9.-]", "", socket.gethostname().lower()).strip(".-")
    return name or "localhost"


@lru_cache
def get_settings() -> Settings:
    return Settings()
