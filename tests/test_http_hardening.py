"""Security headers on every response, request body limits, production start-up refusals, and an
OpenAPI document that states every error and link."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from pydantic import ValidationError

from audit.config import MIN_SECRET_LENGTH, Settings, get_settings
from audit.deployment import DeploymentError, check_deployment
from audit.deps import get_bind
from audit.main import create_app
from audit.middleware import MAX_BODY_KEY
from tests.conftest import People

API = "/api/v1"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """Change AUDIT_* settings for one test (the cached settings are rebuilt before and after)."""
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def assert_secure(response: Any, *, hsts: bool = True) -> None:
    h = response.headers
    assert "frame-ancestors 'none'" in h["Content-Security-Policy"], response.request.url
    assert h["X-Content-Type-Options"] == "nosniff" and h["Referrer-Policy"] == "no-referrer"
    assert ("Strict-Transport-Security" in h) is hsts


def test_every_kind_of_response_carries_the_security_headers(client: TestClient, people: People) -> None:
    headers = people.headers(people.make("coder"))
    responses = [
        client.get(f"{API}/users/me", headers=headers),  # 200
        client.get(f"{API}/users/me"),  # 401
        client.get(f"{API}/no-such-thing"),  # 404 from the router
        client.put(f"{API}/users/me", headers=headers),  # 405
        client.get(f"{API}/encounters?offset=-1", headers=headers),  # 422
        client.post(f"{API}/encounters", content=b"x" * (2 << 20), headers=headers),  # 413
        client.get(f"{API}/audit/public-key"),  # text/plain
        client.get("/openapi.json"),
    ]
    for response in responses:
        assert_secure(response)
        assert response.headers["Content-Type"].startswith(("application/json", "text/plain"))
    api = responses[0].headers["Content-Security-Policy"]
    assert "default-src 'none'" in api and responses[0].headers["Cache-Control"] == "no-store"
    assert [r.status_code for r in responses[:6]] == [200, 401, 404, 405, 422, 413]
    assert responses[2].json()["error"] == "NotFound" and responses[3].json()["error"] == "MethodNotAllowed"


def test_docs_pages_get_a_page_policy_that_still_forbids_framing(client: TestClient) -> None:
    docs = client.get("/docs")
    assert docs.status_code == 200
    policy = docs.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "object-src 'none'" in policy
    assert_secure(client.get("/redoc"))


def test_no_hsts_in_development(env: pytest.MonkeyPatch) -> None:
    env.setenv("AUDIT_ENV", "development")
    with TestClient(create_app()) as client:
        assert_secure(client.get(f"{API}/audit/public-key"), hsts=False)


def test_unexpected_errors_still_answer_in_the_error_format_with_headers(connection: Any) -> None:
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: connection

    @app.get("/boom")
    def boom(_request: Request) -> None:
        raise RuntimeError("a bug")

    @app.get("/fhir/boom")
    def fhir_boom(_request: Request) -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        fhir = client.get("/fhir/boom")
    assert response.status_code == 500 and response.json()["error"] == "InternalError"
    assert "a bug" not in response.text
    assert_secure(response)
    # FHIR clients get an OperationOutcome
    assert fhir.status_code == 500 and fhir.headers["content-type"] == "application/fhir+json"
    assert fhir.json()["issue"][0]["code"] == "exception" and "a bug" not in fhir.text
    assert_secure(fhir)


def test_body_limits_are_per_route(connection: Any) -> None:
    app = create_app()
    app.dependency_overrides[get_bind] = lambda: connection

    @app.post("/tiny", openapi_extra={MAX_BODY_KEY: 10})
    async def tiny(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    @app.post("/large", openapi_extra={MAX_BODY_KEY: 4 << 20})
    async def large(request: Request) -> dict[str, int]:
        return {"read": len(await request.body())}

    with TestClient(app) as client:
        assert client.post("/tiny", content=b"x" * 10).json() == {"read": 10}
        refused = client.post("/tiny", content=b"x" * 11)
        assert refused.status_code == 413 and refused.json()["field"] == "body"
        assert refused.json()["limit"] == 10
        assert client.post("/large", content=b"x" * (3 << 20)).json() == {"read": 3 << 20}

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
            yield from (b"y" * 1024 for _ in range(2048))

        streamed = client.post(f"{API}/encounters", content=chunks())
        assert streamed.status_code == 413 and streamed.json()["error"] == "PayloadTooLarge"
        assert client.post("/large", content=chunks()).json() == {"read": 2 << 20}


def test_production_refuses_the_default_and_short_secrets() -> None:
    with pytest.raises(ValidationError, match="AUDIT_SECRET_KEY must be set"):
        Settings(env="production", log_origin="coding-audit")
    with pytest.raises(ValidationError, match=f"at least {MIN_SECRET_LENGTH}"):
        Settings(env="production", log_origin="coding-audit", secret_key="short-but-not-default")
    assert Settings(
        env="production", log_origin="coding-audit", secret_key="s" * MIN_SECRET_LENGTH
    ).secret_key


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660, 0o600, 0o400])
def test_production_refuses_a_signing_key_others_can_read(tmp_path: Path, mode: int) -> None:
    key = tmp_path / "audit-signing.key"
    key.write_bytes(b"not checked here")
    os.chmod(key, mode)
    settings = Settings(
        env="production", log_origin="coding-audit", secret_key="s" * 40, signing_key_file=key
    )
    if mode & 0o077:
        with pytest.raises(DeploymentError, match="chmod 600"):
            check_deployment(settings)
    else:
        check_deployment(settings)
    check_deployment(Settings(env="development", signing_key_file=key))  # development only warns nobody


def test_production_does_not_start_with_an_exposed_key(env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    key = tmp_path / "exposed.key"
    key.write_bytes(b"-")
    os.chmod(key, 0o644)
    env.setenv("AUDIT_ENV", "production")
    env.setenv("AUDIT_SECRET_KEY", "p" * 48)
    env.setenv("AUDIT_LOG_ORIGIN", "coding-audit")
    env.setenv("AUDIT_SIGNING_KEY_FILE", str(key))
    with pytest.raises(DeploymentError), TestClient(create_app()):
        pass


def test_docs_and_schema_can_be_turned_off(env: pytest.MonkeyPatch) -> None:
    env.setenv("AUDIT_DOCS", "false")
    with TestClient(create_app()) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 404


# --- the OpenAPI document ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return create_app().openapi()


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in schema["paths"].items():
        for method, op in item.items():
            yield method.upper(), path, op


def test_every_error_response_uses_the_error_schema(schema: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for method, path, op in operations(schema):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        # Only answers that cannot fail may document no error: the public key, "the process is up" and
        # the FHIR CapabilityStatement (public, built without the database).
        assert errors or path in (f"{API}/audit/public-key", "/healthz", "/fhir/metadata"), (
            f"{method} {path} documents no error"
        )
        for status, response in errors.items():
            if path.startswith("/fhir/"):  # FHIR clients get an OperationOutcome, and 400 for bad input
                ref = response["content"]["application/fhir+json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/OperationOutcome", (method, path, status)
                assert status != "422", (method, path)
                continue
            ref = response["content"]["application/json"]["schema"]["$ref"]
            assert ref == "#/components/schemas/Error", (method, path, status)
        if "503" in errors or "429" in errors:
            assert all("Retry-After" in errors[s]["headers"] for s in ("503", "429") if s in errors)


def test_statuses_follow_what_each_route_is(schema: dict[str, Any]) -> None:
    ops = {(m, p): set(op["responses"]) for m, p, op in operations(schema)}
    change = ops[("PATCH", f"{API}/encounters/{{encounter_id}}/codes/{{line_id}}")]
    assert {"401", "403", "404", "412", "422", "428", "503"} <= change
    assert {"401", "413", "422", "429", "503"} <= ops[("POST", f"{API}/auth/token")]
    assert "403" not in ops[("POST", f"{API}/auth/token")]
    assert {"400", "401", "403", "503"} <= ops[("GET", "/fhir/AuditEvent")]
    assert {"401", "403", "404", "503"} <= ops[("GET", "/fhir/Provenance/{provenance_id}")]
    assert "503" not in ops[("GET", f"{API}/audit/public-key")]


def test_links_lead_from_new_ids_to_the_operations_that_use_them(schema: dict[str, Any]) -> None:
    ids = {op["operationId"]: (m, p) for m, p, op in operations(schema)}
    create = schema["paths"][f"{API}/encounters"]["post"]["responses"]["201"]["links"]
    assert ids[create["AddCode"]["operationId"]] == ("POST", f"{API}/encounters/{{encounter_id}}/codes")
    assert create["AddCode"]["parameters"] == {"path.encounter_id": "$response.body#/id"}
    line = schema["paths"][f"{API}/encounters/{{encounter_id}}/codes"]["post"]["responses"]["201"]["links"]
    assert line["ChangeCode"]["parameters"]["header.If-Match"] == "$response.header.ETag"
    for _m, _p, op in operations(schema):
        for response in op["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in ids
