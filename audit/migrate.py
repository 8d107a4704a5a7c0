"""Bring a database's schema up to date with Alembic (used by `audit db upgrade` and `serve`)."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config

from alembic import command
from audit.config import PACKAGE_DIR, get_settings


def migrations_dir() -> Path:
    """`audit/_alembic` links to the repo's `alembic/` and is a real folder in an installed wheel."""
    return (PACKAGE_DIR / "_alembic").resolve()


def alembic_config(url: str | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().database_url).replace("%", "%%"))
    return cfg


def upgrade(url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)
