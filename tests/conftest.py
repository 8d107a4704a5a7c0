"""Shared fixtures: one migrated database per run; every test inside a rolled-back transaction.

AUDIT_TEST_DATABASE_URL selects the database (default: a SQLite file in a temp dir). CI runs the
suite once on SQLite and once on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.config import get_settings
from audit.db import make_engine
from audit.deps import get_bind
from audit.main import create_app
from audit.migrate import upgrade
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.schemas import UserCreate
from audit.user.service import bootstrap_user
from tests.support import IS_POSTGRES, PASSWORD, TEST_DB_URL  # sets the test environment first


def reset_database(url: str) -> None:
    """Empty the database so the migrations run from nothing."""
    if url.startswith("postgresql"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        engine.dispose()
    else:
        Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)


@pytest.fixture(autouse=True)
def witness_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A witness file per test: each test's checkpoints are rolled back with its transaction, so a
    shared witness would hold notes over trees the next test's ledger never had."""
    path = tmp_path / "witness.txt"
    monkeypatch.setenv("AUDIT_WITNESS_FILE", str(path))
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    get_settings.cache_clear()
    reset_database(TEST_DB_URL)
    upgrade(TEST_DB_URL)
    eng = make_engine(TEST_DB_URL)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection in an outer transaction that is rolled back after the test."""
    conn = engine.connect()
    outer = conn.begin()
    yield conn
    outer.rollback()
    conn.close()


@pytest.fixture
def uow(connection: Connection) -> Callable[[], Any]:
    """unit_of_work bound to the test's connection: commits become savepoint releases."""
    return lambda: unit_of_work(connection)


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    with Session(connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as s:
        yield s


@pytest.fixture
def client(connection: Connection) -> Iterator[TestClient]:
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: connection
    with TestClient(app) as c:
        yield c


class People:
    """Makes users through the real service and signs them in through the real API."""

    def __init__(self, connection: Connection, client: TestClient | None) -> None:
        self.connection = connection
        self.client = client
        self._n = 0

    def make(
        self, *roles: str, npi: str | None = None, credential: str | None = None, name: str | None = None
    ) -> CurrentUser:
        from audit.ledger.events import Actor

        self._n += 1
        if "provider" in roles:
            npi = npi or "1234567893"
            credential = credential or "MD"
        username = f"{'-'.join(roles)}{self._n}".replace("_", "")
        with unit_of_work(self.connection) as s:
            user = bootstrap_user(
                s,
                data=UserCreate(
                    username=username,
                    password=PASSWORD,
                    display_name=name or f"Test {username}",
                    roles=list(roles),
                    npi=npi,
                    credential=credential,
                ),
                actor=Actor(id=None, role="test", username="test"),
            )
            return CurrentUser.of(user)

    def delegate(self, provider: CurrentUser, coder: CurrentUser, **fields: Any) -> str:
        """Grant `coder` a delegation from `provider` through the real service; returns its id."""
        from datetime import timedelta

        from audit.delegation.schemas import DelegationCreate
        from audit.delegation.service import grant_delegation
        from audit.models import utcnow

        body = {
            "coder_id": coder.id,
            "code_systems": ["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"],
            "valid_until": utcnow() + timedelta(days=30),
            **fields,
        }
        with unit_of_work(self.connection) as s:
            return grant_delegation(s, user=provider, data=DelegationCreate(**body)).id

    def engage(
        self,
        auditor: CurrentUser,
        officer: CurrentUser,
        date_from: str = "2026-01-01",
        date_to: str = "2026-06-30",
    ) -> None:
        """Open a ten-day engagement for `auditor` through the real API, as compliance officer `officer`."""
        from datetime import timedelta

        from audit.models import utcnow

        assert self.client is not None
        body = {
            "auditor_id": auditor.id,
            "date_from": date_from,
            "date_to": date_to,
            "expires_at": (utcnow() + timedelta(days=10)).isoformat(),
        }
        opened = self.client.post("/api/v1/engagements", headers=self.headers(officer), json=body)
        assert opened.status_code == 201, opened.text

    def headers(self, user: CurrentUser) -> dict[str, str]:
        assert self.client is not None
        response = self.client.post(
            "/api/v1/auth/token", data={"username": user.username, "password": PASSWORD}
        )
        assert response.status_code == 200, response.text
        return {"Authorization": f"Bearer {response.json()['access_token']}"}


@pytest.fixture
def people(connection: Connection, client: TestClient) -> People:
    return People(connection, client)


@contextmanager
def new_database(tmp_path: Path, stem: str) -> Iterator[str]:
    """A new, empty database of the backend under test (a SQLite file in `tmp_path`, or a PostgreSQL
    database dropped afterwards), for tests that need their own processes or a second database."""
    if not IS_POSTGRES:
        yield f"sqlite:///{tmp_path / f'{stem}.db'}"
        return
    import uuid

    from sqlalchemy.engine import make_url

    name = f"audit_{stem[0]}_{uuid.uuid4().hex[:10]}"
    admin = make_engine(TEST_DB_URL).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(TEST_DB_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def fresh_db_url(tmp_path: Path) -> Iterator[str]:
    """A new, empty database of the backend under test, for tests that need their own processes."""
    with new_database(tmp_path, "fresh") as url:
        yield url
