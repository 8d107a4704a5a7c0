"""HTTP hardening applied to every response and every request body (pure ASGI, so streaming works).

- `SecurityHeaders`: a Content-Security-Policy on every response (`frame-ancestors 'none'` always),
  `X-Content-Type-Options: nosniff`, `Referrer-Policy: no-referrer`, `X-Frame-Options: DENY`, no
  caching of API data, and HSTS outside development. A response that sets its own CSP keeps it.
- `BodyLimit`: a request body larger than its route allows is refused with 413 before it is read
  whole. The default comes from settings (`AUDIT_MAX_BODY_BYTES`); a route that takes large uploads
  declares its own limit with `openapi_extra={"x-max-body-bytes": N}` (shown in the OpenAPI too).
- `RetryAsWriter`: a GET or HEAD runs as a read unit of work (no write lock on SQLite); if it wrote
  and SQLite refused the lock upgrade (`audit.uow.WriteLockNeeded`, nothing committed, nothing sent),
  the request runs once more as a writer. A GET has no body, so running it again is exact.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi import HTTPException
from starlette.routing import compile_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_BODY_KEY = "x-max-body-bytes"

# JSON and files: nothing may load, run or frame.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# HTML pages served by this service (the web pages, and Swagger UI / ReDoc served from the package):
# only our own origin. Inline styles are allowed (both UIs set style attributes); inline scripts are not.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HSTS = "max-age=63072000; includeSubDomains"
READ_METHODS = frozenset({"GET", "HEAD"})
AS_WRITER = "audit.as_writer"  # ASGI scope key: run this request's unit of work as a writer


# How an unexpected error answers on a path: (media type, body) from the Error body. The application
# passes one that answers OperationOutcome under /fhir; the default is our Error shape everywhere.
InternalError = Callable[[str, dict[str, Any]], tuple[bytes, dict[str, Any]]]


def _plain_error(_path: str, body: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    return b"application/json", body


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, hsts: bool, internal_error: InternalError = _plain_error) -> None:
        self.app = app
        self.internal_error = internal_error
        self.hsts = hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = self._headers(path, list(message.get("headers", [])))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            # An unexpected error still answers in the error format and with these headers; the
            # server's own error handling then logs it.
            if not started:
                body = {"error": "InternalError", "detail": "internal error; it has been logged"}
                media_type, shaped = self.internal_error(path, body)
                await _send_json(send_with_headers, 500, shaped, media_type)
            raise

    def _headers(self, path: str, headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        present = {name.lower() for name, _ in headers}
        html = any(n.lower() == b"content-type" and v.startswith(b"text/html") for n, v in headers)
        wanted = {
            b"content-security-policy": PAGE_CSP if html else API_CSP,
            b"x-content-type-options": "nosniff",
            b"referrer-policy": "no-referrer",
            b"x-frame-options": "DENY",
        }
        if path.startswith(("/api/", "/fhir/")):
            wanted[b"cache-control"] = "no-store"
        if self.hsts:
            wanted[b"strict-transport-security"] = HSTS
        return headers + [(k, v.encode()) for k, v in wanted.items() if k not in present]


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")
        self.limit = limit


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default: int) -> None:
        self.app = app
        self.default = default
        self._found: list[tuple[re.Pattern[str], set[str], int]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope)
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            await _send_json(send, 413, too_large_body(limit))
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)  # FastAPI re-raises it from body parsing; see main.py
            return message

        await self.app(scope, limited, send)

    def limit_for(self, scope: Scope) -> int:
        method, path = scope.get("method"), scope.get("path", "")
        for regex, methods, limit in self._overrides(scope.get("app")):
            if method in methods and regex.match(path):
                return limit
        return self.default

    def _overrides(self, app: Any) -> list[tuple[re.Pattern[str], set[str], int]]:
        """(path regex, methods, limit) of the routes that declare their own limit, found once."""
        if self._found is None:
            from audit.openapi import api_routes

            self._found = [
                (compile_path(route.path_format)[0], set(route.methods or ()), int(extra[MAX_BODY_KEY]))
                for route in api_routes(list(getattr(app, "routes", ())))
                if MAX_BODY_KEY in (extra := route.openapi_extra or {})
            ]
        return self._found


def too_large_body(limit: int) -> dict[str, Any]:
    return {
        "error": "PayloadTooLarge",
        "detail": f"the request body is larger than {limit} bytes",
        "field": "body",
        "limit": limit,
    }


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _send_json(
    send: Send, status: int, body: dict[str, Any], media_type: bytes = b"application/json"
) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", media_type), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class RetryAsWriter:
    """Runs a GET or HEAD again as a writer when its read unit of work could not take the write lock.
    Sits inside the error handlers' middleware and outside the routes, so the signal never reaches a
    client; a response already started is never retried (the unit commits before it starts)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        from audit.uow import WriteLockNeeded

        if scope["type"] != "http" or scope.get("method") not in READ_METHODS:
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except WriteLockNeeded:
            if started:
                raise
            await self.app({**scope, AS_WRITER: True}, receive, send)
