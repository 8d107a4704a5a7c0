"""The FastAPI application: routers, error handlers, start-up checks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from audit.attestation.routes import router as attestation_router
from audit.config import get_settings
from audit.delegation.routes import router as delegation_router
from audit.encounter.routes import router as encounter_router
from audit.engagement.routes import router as engagement_router
from audit.errors import DomainError
from audit.export.routes import router as export_router
from audit.fhir.routes import router as fhir_router
from audit.ledger.checkpoints import Checkpointer
from audit.ledger.routes import router as ledger_router
from audit.policy.runtime import get_policy_engine
from audit.report.routes import router as report_router
from audit.report.routes import samples_router
from audit.user.routes import router as user_router


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    engine = get_policy_engine()  # validate the policies once; refuse to start if they are invalid
    checkpointer = None
    if get_settings().checkpoint_timer:
        checkpointer = Checkpointer(engine.compliance.checkpoint.interval_seconds)
        checkpointer.start()
    yield
    if checkpointer is not None:
        checkpointer.stop()


def create_app() -> FastAPI:
    app = FastAPI(
        title="Coding responsibility audit trail",
        version="0.1.0",
        lifespan=lifespan,
        description="Who entered or changed every code, who attested it, and proof of both.",
    )
    app.include_router(user_router)
    app.include_router(encounter_router)
    app.include_router(delegation_router)
    app.include_router(attestation_router)
    app.include_router(fhir_router)
    app.include_router(export_router)
    app.include_router(report_router)
    app.include_router(samples_router)
    app.include_router(engagement_router)
    app.include_router(ledger_router)
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    return app


async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status_code, headers=headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_describe(e) for e in exc.errors()]
    first = errors[0] if errors else {"field": "body", "detail": "invalid request"}
    return JSONResponse(
        {"error": "InvalidInput", "field": first["field"], "detail": first["detail"], "errors": errors},
        status_code=422,
    )


def _describe(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":  # loc holds the byte offset, not a field
        return {"field": "body", "detail": f"body: {error.get('msg', 'invalid JSON')}"}
    loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path", "header")]
    field = ".".join(loc) or "body"
    return {"field": field, "detail": f"{field}: {error.get('msg', 'invalid value')}"}
