"""One settings object, read through one cached function (never at import time)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEV_SECRET = "dev-only-secret-change-me"
PACKAGE_DIR = Path(__file__).resolve().parent


def default_policies_dir() -> Path:
    """The policies that ship with the code (`audit/_policies` links to the repo's `policies/`
    and is a real folder in an installed wheel), so any working directory works."""
    return (PACKAGE_DIR / "_policies").resolve()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="AUDIT_", extra="ignore")

    env: Literal["development", "production", "test"] = "development"
    database_url: str = "sqlite:///./audit.db"
    secret_key: str = DEV_SECRET
    signing_key_file: Path = Path("./audit-signing.key")
    policies_dir: Path | None = None
    log_id: str = "coding-audit"
    checkpoint_timer: bool = True  # sign checkpoints periodically while serving (off in tests)
    checkpoint_origin: str | None = None

    @model_validator(mode="after")
    def _refuse_default_secrets(self) -> Settings:
        if self.env == "production" and self.secret_key == DEV_SECRET:
            raise ValueError("AUDIT_SECRET_KEY must be set to a real secret when AUDIT_ENV=production")
        return self

    @property
    def resolved_policies_dir(self) -> Path:
        return self.policies_dir or default_policies_dir()

    @property
    def origin(self) -> str:
        return self.checkpoint_origin or self.log_id

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
