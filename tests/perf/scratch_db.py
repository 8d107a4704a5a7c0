"""A scratch PostgreSQL database for one benchmark run: made fresh from a maintenance URL, dropped after.

Each benchmark takes its name (`--pg-name`), so tests/perf/run_all.py can give every benchmark, and every
person running them, a database of their own on a shared server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url


@contextmanager
def pg_database(admin_url: str, name: str) -> Iterator[str]:
    """Yield the URL of a fresh, empty database `name` on admin_url's server; drop it afterwards."""
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
