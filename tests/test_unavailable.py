"""A database that cannot serve gives 503 with Retry-After and the error JSON, never a 500, and loses
nothing: each case makes a real database really unavailable (a read-only SQLite file, a SQLite file
that is full, a PostgreSQL URL whose port is closed, a read-only PostgreSQL session), no mocks."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select, text
from sqlalchemy.engine import Engine

from audit.db import make_engine
from audit.deps import get_bind
from audit.ledger import service as ledger
from audit.main import create_app
from audit.migrate import upgrade
from audit.models import Encounter
from audit.uow import unit_of_work
from tests.conftest import People
from tests.support import IS_POSTGRES, PASSWORD

API = "/api/v1"


@dataclass
class Org:
    url: str
    engine: Engine
    headers: dict[str, str]
    provider_id: str
    username: str


def client_on(engine: Engine) -> TestClient:
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: engine
    return TestClient(app, raise_server_exceptions=False)


def signed_in_provider(url: str) -> Org:
    """Migrate `url`, make a provider and sign them in while the database still works."""
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        provider = People(conn, None).make("provider")  # type: ignore[arg-type]
    with client_on(engine) as client:
        token = client.post(f"{API}/auth/token", data={"username": provider.username, "password": PASSWORD})
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    return Org(url, engine, headers, provider.id, provider.username)


@pytest.fixture
def org(tmp_path: Any) -> Iterator[Org]:
    """A migrated SQLite file with a provider who is signed in."""
    made = signed_in_provider(f"sqlite:///{tmp_path / 'outage.db'}")
    yield made
    made.engine.dispose()


def encounter(provider_id: str, n: int) -> dict[str, Any]:
    return {"external_id": f"OUT-{n}", "patient_ref": f"MRN-{n}", "date_of_service": "2026-01-05",
            "rendering_provider_id": provider_id}  # fmt: skip


def assert_503(response: Any, *, fhir: bool = False) -> None:
    assert response.status_code == 503, response.text
    body = response.json()
    if fhir:  # an OperationOutcome under /fhir
        issue = body["issue"][0]
        assert issue["code"] == "transient" and issue["details"]["text"] == "ServiceUnavailable"
        assert int(response.headers["Retry-After"]) >= 1
    else:
        assert body["error"] == "ServiceUnavailable" and body["retry_after"] >= 1
        assert int(response.headers["Retry-After"]) == body["retry_after"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def assert_intact(engine: Engine, encounters: int) -> None:
    """The ledger verifies and every stored encounter has its event: nothing half-written."""
    with unit_of_work(engine) as session:
        assert ledger.verify(session).ok
        stored = session.execute(select(func.count()).select_from(Encounter)).scalar_one()
        created = session.execute(
            select(func.count()).select_from(ledger.LEDGER).where(
                ledger.LEDGER.c.type == "encounter.create", ledger.LEDGER.c.outcome == "allowed"
            )
        ).scalar_one()  # fmt: skip
    assert stored == created == encounters


def test_a_read_only_sqlite_file_is_503_for_writes(org: Org) -> None:
    read_only = make_engine(f"sqlite:///file:{org.url.removeprefix('sqlite:///')}?mode=ro&uri=true")
    with client_on(read_only) as client:
        assert_503(client.post(f"{API}/encounters", json=encounter(org.provider_id, 1), headers=org.headers))
        assert_503(client.post(f"{API}/auth/token", data={"username": org.username, "password": PASSWORD}))
    read_only.dispose()
    assert_intact(org.engine, 0)


def test_a_full_sqlite_database_is_503_and_keeps_what_it_acknowledged(org: Org) -> None:
    full = make_engine(org.url)

    @event.listens_for(full, "connect")
    def _no_more_pages(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        pages = cursor.execute("PRAGMA page_count").fetchone()[0]
        cursor.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite answers SQLITE_FULL past it
        cursor.close()

    acknowledged, answer = 0, None
    with client_on(full) as client:
        for n in range(400):
            answer = client.post(f"{API}/encounters", json=encounter(org.provider_id, n), headers=org.headers)
            if answer.status_code != 201:
                break
            acknowledged += 1
    full.dispose()
    assert answer is not None and acknowledged < 400, "the database never filled up"
    assert_503(answer)
    assert_intact(org.engine, acknowledged)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when the socket is


def test_a_postgresql_server_that_is_not_there_is_503() -> None:
    gone = make_engine(
        f"postgresql://postgres@127.0.0.1:{closed_port()}/audit", connect_args={"connect_timeout": 2}
    )
    with client_on(gone) as client:
        assert_503(client.get(f"{API}/users/me", headers={"Authorization": "Bearer some-token"}))
        assert_503(client.post(f"{API}/auth/token", data={"username": "someone", "password": "whatever"}))
        assert_503(client.get("/fhir/AuditEvent", headers={"Authorization": "Bearer some-token"}), fhir=True)
    gone.dispose()


@pytest.mark.skipif(not IS_POSTGRES, reason="needs the PostgreSQL test server")
def test_a_read_only_postgresql_session_is_503_for_writes(fresh_db_url: str) -> None:
    org = signed_in_provider(fresh_db_url)
    standby = make_engine(fresh_db_url, connect_args={"options": "-c default_transaction_read_only=on"})
    with standby.connect() as conn:
        assert conn.execute(text("SHOW default_transaction_read_only")).scalar_one() == "on"
    with client_on(standby) as client:
        assert client.get(f"{API}/users/me", headers=org.headers).status_code == 200
        assert_503(client.post(f"{API}/encounters", json=encounter(org.provider_id, 1), headers=org.headers))
    standby.dispose()
    assert_intact(org.engine, 0)
    org.engine.dispose()


@pytest.mark.skipif(not IS_POSTGRES, reason="a deadlock between two PostgreSQL transactions")
def test_a_transaction_rolled_back_to_break_a_deadlock_means_retry_not_a_fault(engine: Engine) -> None:
    """PostgreSQL breaks a deadlock by rolling one transaction back (40P01): nothing of it was kept and
    the same request succeeds when retried, so it answers 503 with Retry-After, not 500."""
    import threading

    from audit.db import is_unavailable

    first, second = engine.connect(), engine.connect()
    lock = "SELECT pg_advisory_xact_lock(:key)"
    errors: list[BaseException] = []
    try:
        first.begin(), second.begin()
        first.execute(text(lock), {"key": 41_001})
        second.execute(text(lock), {"key": 41_002})

        def take(conn: Any, key: int) -> None:
            try:
                conn.execute(text(lock), {"key": key})
            except Exception as exc:  # the one PostgreSQL chose to roll back
                errors.append(exc)
                conn.rollback()

        crossing = [threading.Thread(target=take, args=a) for a in ((first, 41_002), (second, 41_001))]
        for t in crossing:
            t.start()
        for t in crossing:
            t.join(timeout=30)
    finally:
        first.close(), second.close()
    assert len(errors) == 1, errors
    assert getattr(getattr(errors[0], "orig", None), "sqlstate", None) == "40P01"
    assert is_unavailable(errors[0])
