"""/healthz, /readyz and /metrics through the real app; the structured logs of real requests."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text
from sqlalchemy.engine import Connection

from audit.config import get_settings
from audit.ledger import checkpoints
from audit.ops.logs import JsonFormatter, scrub
from tests.conftest import People
from tests.support import PASSWORD

API = "/api/v1"
PATIENT = "MRN-LOGTEST-991"
SERIES = {
    "audit_http_requests": "counter",
    "audit_http_request_duration_seconds": "histogram",
    "audit_ledger_head_seq": "gauge",
    "audit_checkpoint_age_seconds": "gauge",
    "audit_verification_ok": "gauge",
    "audit_verification_timestamp_seconds": "gauge",
    "audit_checkpoint_signer": "gauge",
    "audit_denied_attempts": "counter",
    "audit_failed_attempts": "counter",
    "audit_database_up": "gauge",
}


def test_healthz_answers_without_the_database(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}
    assert len(response.headers["x-request-id"]) == 32


def test_readyz_checks_database_migrations_and_policy(client: TestClient, connection: Connection) -> None:
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "migrations": "ok", "policy": "ok"}}
    connection.execute(text("UPDATE alembic_version SET version_num = '0001_initial'"))  # rolled back
    stale = client.get("/readyz")
    assert stale.status_code == 503 and stale.headers["retry-after"]
    assert "0001_initial" in stale.json()["checks"]["migrations"]
    assert "audit db upgrade" in stale.json()["checks"]["migrations"]


def _families(body: str) -> dict[str, Any]:
    return {f.name: f for f in text_string_to_metric_families(body)}


def test_metrics_has_every_named_series_and_nothing_sensitive(
    client: TestClient, people: People, session: Any
) -> None:
    provider, coder = people.make("provider"), people.make("coder")
    hp = people.headers(provider)
    made = client.post(
        f"{API}/encounters",
        json={"external_id": "M-1", "patient_ref": PATIENT, "date_of_service": "2026-11-02",
              "rendering_provider_id": provider.id},
        headers=hp,
    )  # fmt: skip
    assert made.status_code == 201, made.text
    eid = made.json()["id"]
    assert client.get(f"{API}/encounters/{eid}", headers=hp).status_code == 200
    assert client.get(f"{API}/encounters/{eid}", headers=people.headers(coder)).status_code == 403  # denied
    wrong = client.post(f"{API}/auth/token", data={"username": coder.username, "password": "wrong pass"})
    assert wrong.status_code == 401  # failed
    checkpoints.create(session)
    session.commit()

    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)
    for name, kind in SERIES.items():
        assert name in families and families[name].type == kind, name
    value = {f.name: f.samples[0].value for f in families.values() if len(f.samples) == 1}
    assert value["audit_database_up"] == 1
    assert value["audit_denied_attempts"] >= 1 and value["audit_failed_attempts"] >= 1
    assert value["audit_ledger_head_seq"] >= 5
    assert 0 <= value["audit_checkpoint_age_seconds"] < 60
    routes = {s.labels["route"] for s in families["audit_http_requests"].samples}
    assert "/api/v1/encounters/{encounter_id}" in routes and "/api/v1/encounters" in routes
    statuses = {(s.labels["route"], s.labels["status"]) for s in families["audit_http_requests"].samples}
    assert ("/api/v1/encounters/{encounter_id}", "403") in statuses
    for secret in (eid, PATIENT, provider.id, provider.username, coder.username, "M-1"):
        assert secret not in response.text


def test_unknown_paths_and_methods_make_no_new_series(client: TestClient) -> None:
    client.get("/no/such/path/MRN-123")
    client.request("BREW", "/healthz")
    body = client.get("/metrics").text
    assert "MRN-123" not in body and "BREW" not in body
    assert 'route="unmatched"' in body


def test_metrics_token_restricts_the_scrape(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_METRICS_TOKEN", "scrape-secret-123")
    get_settings.cache_clear()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer scrape-secret-123"})
    assert ok.status_code == 200 and "audit_http_requests_total" in ok.text


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """Every log record at INFO and above, formatted as the server formats them."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(lambda r: not r.name.startswith("httpx"))  # the test client's own log, not ours
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield out
    root.removeHandler(handler)
    root.setLevel(old)


def test_logs_are_json_with_request_ids_and_no_secrets(
    client: TestClient, people: People, captured: io.StringIO
) -> None:
    provider = people.make("provider")
    signed_in = client.post(f"{API}/auth/token", data={"username": provider.username, "password": PASSWORD})
    token = signed_in.json()["access_token"]
    auth = {"Authorization": f"Bearer {token}", "X-Request-ID": "trace-abc.1"}
    made = client.post(
        f"{API}/encounters",
        json={"external_id": "L-1", "patient_ref": PATIENT, "date_of_service": "2026-11-02",
              "rendering_provider_id": provider.id},
        headers=auth,
    )  # fmt: skip
    assert made.status_code == 201 and made.headers["x-request-id"] == "trace-abc.1"
    bad = client.post(
        f"{API}/encounters",
        json={"external_id": "L-2", "patient_ref": PATIENT + "\x07", "date_of_service": "2026-11-02",
              "rendering_provider_id": provider.id},
        headers={"Authorization": f"Bearer {token}", "X-Request-ID": "bad id with spaces"},
    )  # fmt: skip
    assert bad.status_code == 422 and bad.headers["x-request-id"] != "bad id with spaces"
    client.post(f"{API}/auth/token", data={"username": provider.username, "password": "Wrong-Secret-77"})
    client.get(
        f"{API}/encounters/{made.json()['id']}", headers={"Authorization": "Bearer not-a-real-token-xyz"}
    )

    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    access = [e for e in lines if e["logger"] == "audit.access"]
    assert len(access) >= 5
    assert {"ts", "level", "msg", "request_id", "method", "route", "status", "ms"} <= set(access[0])
    assert any(e["request_id"] == "trace-abc.1" and e["route"] == "/api/v1/encounters" for e in access)
    assert any(e["request_id"] == bad.headers["x-request-id"] and e["status"] == 422 for e in access)
    text_out = captured.getvalue()
    for secret in (token, PASSWORD, "Wrong-Secret-77", PATIENT, "not-a-real-token-xyz", made.json()["id"]):
        assert secret not in text_out, secret


def test_scrub_removes_what_exceptions_can_quote() -> None:
    assert "abc.def" not in scrub("Authorization: Bearer abc.def")
    assert "hunter2" not in scrub("password=hunter2&x=1") and "hunter2" not in scrub(
        '{"password": "hunter2"}'
    )
    assert "MRN-1" not in scrub("1 validation error: input_value='MRN-1', input_type=str")
    assert "MRN-2" not in scrub("(psycopg.Error) boom [SQL: INSERT ...] [parameters: ('MRN-2', 3)]")
