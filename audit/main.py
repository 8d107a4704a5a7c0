"""The FastAPI application: routers, hardening middleware, error handlers, start-up checks."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from audit import web
from audit.attestation.routes import router as attestation_router
from audit.codesets.routes import router as codesets_router
from audit.coding_audit.routes import reports_router as coding_audit_reports_router
from audit.coding_audit.routes import router as coding_audit_router
from audit.config import get_settings
from audit.db import is_unavailable
from audit.delegation.routes import router as delegation_router
from audit.deployment import check_deployment
from audit.deps import check_request_params, get_bind, get_current_user, request_gate
from audit.encounter.routes import router as encounter_router
from audit.engagement.routes import router as engagement_router
from audit.errors import DomainError, retry_after
from audit.export.routes import router as export_router
from audit.fhir.outcome import operation_outcome
from audit.fhir.routes import FHIR_JSON, is_fhir_path
from audit.fhir.routes import error_response as fhir_error_response
from audit.fhir.routes import router as fhir_router
from audit.imports.routes import router as imports_router
from audit.ledger.checkpoints import Checkpointer
from audit.ledger.signer import reset_lease
from audit.middleware import BodyLimit, BodyTooLarge, RetryAsWriter, SecurityHeaders, too_large_body
from audit.openapi import Markers, allowed_methods, install
from audit.ops.metrics import RequestObserver
from audit.ops.routes import router as ops_router
from audit.ops.watch import Watch
from audit.policy.runtime import get_policy_engine
from audit.report.routes import router as report_router
from audit.report.routes import samples_router
from audit.trail.routes import router as ledger_router
from audit.user.routes import router as user_router
from audit.user.sweeper import SigninSweeper

log = logging.getLogger(__name__)
ROUTERS = (
    user_router, encounter_router, delegation_router, attestation_router, fhir_router, export_router,
    coding_audit_reports_router, report_router, samples_router, coding_audit_router, engagement_router,
    ledger_router, codesets_router, ops_router, imports_router,
)  # fmt: skip


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    check_deployment(settings)  # refuse to start on an exposed signing key in production
    engine = get_policy_engine()  # validate the policies once; refuse to start if they are invalid
    if settings.env == "production" or settings.checkpoint_timer:
        _check_witnesses(refuse=settings.env == "production")
    timers: list[Checkpointer | SigninSweeper | Watch] = []
    if settings.checkpoint_timer:
        timers.append(Checkpointer(settings.checkpoint_interval))
        timers.append(Watch())  # the signer lease and verification status in /metrics
    if settings.signin_sweep_timer:
        timers.append(SigninSweeper(engine.compliance.signin.report_window_seconds))
    for timer in timers:
        timer.start()
    yield
    for timer in timers:
        timer.stop()
    if settings.checkpoint_timer:
        reset_lease()  # let another process take over signing at once


def _check_witnesses(*, refuse: bool) -> None:
    """Production refuses to start without a usable witness; elsewhere the problem is logged."""
    from audit.db import read_scope
    from audit.ledger.checkpoints import check_witnesses_ready
    from audit.ledger.witness import WitnessError

    try:
        with read_scope() as session:
            check_witnesses_ready(session)
    except WitnessError as exc:
        if refuse:
            raise RuntimeError(f"refusing to start: {exc}") from exc
        logging.getLogger(__name__).warning("checkpoints will not be signed: %s", exc)


def create_app() -> FastAPI:
    settings = get_settings()
    docs = settings.docs
    app = FastAPI(
        title="Coding responsibility audit trail",
        version="0.1.0",
        lifespan=lifespan,
        description="Who entered or changed every code, who attested it, and proof of both.",
        dependencies=[Depends(request_gate, scope="function"), Depends(check_request_params)],
        docs_url=None,  # served from the package by audit.web (no CDN)
        redoc_url=None,
        openapi_url="/openapi.json" if docs else None,
    )
    for router in ROUTERS:
        app.include_router(router)
    web.install(app, docs=docs)
    app.add_exception_handler(web.SignInRequired, _sign_in_required)
    app.add_exception_handler(DomainError, _domain_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(SQLAlchemyError, _database_error)  # type: ignore[arg-type]
    app.add_middleware(RetryAsWriter)  # innermost: inside every error handler, around the routes
    app.add_middleware(BodyLimit, default=settings.max_body_bytes)
    app.add_middleware(SecurityHeaders, hsts=settings.env != "development", internal_error=_internal_error)
    app.add_middleware(RequestObserver)  # outermost: sees every response, the 500s included
    install(app, Markers(frozenset({get_bind}), frozenset({get_current_user})))
    return app


async def _sign_in_required(request: Request, exc: Exception) -> Response:
    return web.sign_in_redirect(request, ended=getattr(exc, "ended", False))


def _internal_error(path: str, body: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """An unexpected error's body (see audit.middleware): an OperationOutcome under /fhir."""
    if is_fhir_path(path):
        return FHIR_JSON.encode(), operation_outcome(500, body)
    return b"application/json", body


def _error(
    request: Request, body: dict[str, Any], status: int, headers: dict[str, str] | None = None
) -> JSONResponse:
    """Every error response: our Error shape, or an OperationOutcome under /fhir."""
    if is_fhir_path(request.url.path):
        return fhir_error_response(status, body, headers)
    return JSONResponse(body, status_code=status, headers=headers or None)


async def _domain_error(request: Request, exc: DomainError) -> Response:
    if web.is_page(request):
        return web.domain_error_page(request, exc)
    headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else {}
    wait = retry_after(exc)
    if wait is not None:
        headers["Retry-After"] = str(wait)
    return _error(request, exc.body(), exc.status_code, headers)


async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
    errors = [_describe(e) for e in exc.errors()]
    first = errors[0] if errors else {"field": "body", "detail": "invalid request"}
    if web.is_page(request):
        return web.error_page(request, 422, "InvalidInput", first["detail"], field=first["field"])
    body = {"error": "InvalidInput", "field": first["field"], "detail": first["detail"], "errors": errors}
    return _error(request, body, 422)


def _describe(error: dict[str, Any]) -> dict[str, str]:
    if error.get("type") == "json_invalid":  # loc holds the byte offset, not a field
        return {"field": "body", "detail": f"body: {error.get('msg', 'invalid JSON')}"}
    field = _field_name(error.get("loc", ()))
    return {"field": field, "detail": f"{field}: {error.get('msg', 'invalid value')}"}


def _field_name(loc: Any) -> str:
    """`("body", "modifiers", 0)` -> `modifiers[0]`, as the services name fields."""
    name = ""
    for part in loc:
        if part in ("body", "query", "path", "header", "form"):
            continue
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or "body"


HTTP_KINDS = {
    400: "BadRequest", 404: "NotFound", 405: "MethodNotAllowed", 413: "PayloadTooLarge",
    415: "UnsupportedMediaType",
}  # fmt: skip


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """Starlette's own errors (unknown path, wrong method, unparseable or oversized body), in our shape."""
    if isinstance(exc, BodyTooLarge):
        return _error(request, too_large_body(exc.limit), 413)
    if web.is_page(request) and exc.status_code != 405:
        kind = HTTP_KINDS.get(exc.status_code, "HTTPError")
        return web.error_page(request, exc.status_code, kind, str(exc.detail))
    body: dict[str, Any] = {"error": HTTP_KINDS.get(exc.status_code, "HTTPError"), "detail": str(exc.detail)}
    headers = dict(exc.headers or {})
    if exc.status_code == 400:
        body["field"] = "body"
    if exc.status_code == 405:  # every method the path has, not only those of the first route matched
        headers["Allow"] = ", ".join(allowed_methods(request.app, request.url.path))
    return _error(request, body, exc.status_code, headers)


async def _database_error(request: Request, exc: SQLAlchemyError) -> JSONResponse:
    """The database is down, refusing writes or full: 503 with Retry-After. Anything else is a bug."""
    if not is_unavailable(exc):
        raise exc
    log.warning("database unavailable: %s", exc, exc_info=exc)
    wait = get_settings().retry_after_seconds
    body = {
        "error": "ServiceUnavailable",
        "detail": "the database is unavailable or full; the request was not completed. Try again later.",
        "retry_after": wait,
    }
    return _error(request, body, 503, {"Retry-After": str(wait)})
