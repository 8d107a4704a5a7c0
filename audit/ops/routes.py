"""``/healthz``, ``/readyz`` and ``/metrics``: for load balancers, orchestrators and Prometheus.

None of them needs a user: they reveal no record, id, name or patient reference, only whether the
process and its dependencies work and aggregate counts (see `audit.ops.metrics`). ``/metrics`` may be
restricted to the scraper with ``AUDIT_METRICS_TOKEN``.
"""

from __future__ import annotations

import hmac
from functools import lru_cache
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit.config import get_settings
from audit.deps import BindDep
from audit.ops.metrics import exposition

router = APIRouter(tags=["operations"])
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", summary="Liveness: the process is up (no dependency is checked)")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the database answers, its schema is current and the policies are loaded",
    responses={503: {"description": "Not ready; `checks` names what failed"}},
)
def readyz(bind: BindDep) -> JSONResponse:
    checks = {"database": "ok", "migrations": "ok", "policy": "ok"}
    try:
        with bind.connect() if isinstance(bind, Engine) else _nullcontext(bind) as conn:
            found = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
        expected = script_heads()
        if found != expected:
            checks["migrations"] = (
                f"database at {sorted(found)}, code expects {sorted(expected)}: run `audit db upgrade`"
            )
    except Exception:
        checks["database"] = "unreachable"
        checks["migrations"] = "unknown"
    try:
        from audit.policy.runtime import get_policy_engine

        get_policy_engine()
    except Exception:
        checks["policy"] = "invalid or unreadable policy folder"
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, Any] = {"ready": ready, "checks": checks}
    if ready:
        return JSONResponse(body)
    wait = get_settings().retry_after_seconds
    return JSONResponse(body, status_code=503, headers={"Retry-After": str(wait)})


class _nullcontext:
    """A test's connection is already open: use it as is (never close it)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def __enter__(self) -> Any:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        return None


@lru_cache
def script_heads() -> frozenset[str]:
    from alembic.script import ScriptDirectory

    from audit.migrate import alembic_config

    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}}, 401: {"description": "AUDIT_METRICS_TOKEN is set"}},
)
def metrics(request: Request, bind: BindDep) -> Response:
    token = get_settings().metrics_token
    if token:
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
            return JSONResponse(
                {"error": "NotAuthenticated", "detail": "send Authorization: Bearer <AUDIT_METRICS_TOKEN>"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
    return Response(exposition(bind), media_type=PROMETHEUS_TEXT)
