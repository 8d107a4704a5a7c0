"""FastAPI dependency aliases: one session per request, the current user from the bearer token."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.config import get_settings
from audit.db import get_engine
from audit.inputs import MAX_PATH_PARAM, MAX_QUERY_VALUE, check_params
from audit.middleware import AS_WRITER, READ_METHODS
from audit.ops.metrics import route_template
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.service import resolve_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_bind() -> Engine | Connection:
    """Where requests run: the configured engine (tests override this with their connection)."""
    return get_engine()


def get_session(
    request: Request, bind: Annotated[Engine | Connection, Depends(get_bind)]
) -> Iterator[Session]:
    """The request's unit of work: commits before the response is sent (scope='function'). A GET or
    HEAD is a read unit (no write lock on SQLite) unless `RetryAsWriter` is running it again."""
    with unit_of_work(bind, write=not reads_only(request)) as session:
        yield session


def reads_only(request: Request) -> bool:
    """A safe method, on its first try (see audit.middleware.RetryAsWriter)."""
    return request.method in READ_METHODS and not request.scope.get(AS_WRITER, False)


BindDep = Annotated[Engine | Connection, Depends(get_bind)]
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def get_current_user(session: SessionDep, token: TokenDep) -> CurrentUser:
    from audit.errors import NotAuthenticated

    if not token:
        raise NotAuthenticated("sign in first: send Authorization: Bearer <token>")
    return CurrentUser.of(resolve_token(session, token))


UserDep = Annotated[CurrentUser, Depends(get_current_user)]


LONG_RUNNING = frozenset(
    {
        "/api/v1/reports/", "/reports/", "/reports", "/compliance",  # reports and the dashboard
        "/api/v1/exports", "/auditor/engagements/{engagement_id}/bundle", "/api/v1/imports",
        "/api/v1/audit/verify", "/compliance/verify", "/api/v1/audit/consistency",
        "/api/v1/audit/events", "/fhir/AuditEvent", "/fhir/Provenance",  # searches of the ledger
        "/api/v1/auth/token", "/signin",  # a password check: Argon2 is slow on purpose
    }
)  # fmt: skip
"""Route templates whose requests may take long (an entry ending in "/" is a prefix): they have a lane
of their own in `request_gate`."""
_LONG_PREFIXES = tuple(t for t in LONG_RUNNING if t.endswith("/"))

INTERACTIVE, LONG = "interactive", "long"
_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Semaphore]] = (
    weakref.WeakKeyDictionary()
)


def lane(request: Request) -> str:
    """The gate's lane for a request, from its route's template (so a path parameter cannot move it)."""
    template = route_template(request.scope)
    return LONG if template in LONG_RUNNING or template.startswith(_LONG_PREFIXES) else INTERACTIVE


async def request_gate(request: Request) -> AsyncIterator[None]:
    """At most `max_concurrent_requests` interactive requests and `max_concurrent_long_requests`
    long-running ones (`LONG_RUNNING`) of this process past this point at once; the others wait here,
    in the event loop, holding no thread and no connection.

    Why a gate: a sync route runs each of its steps (dependencies, the route, the commit) as its own
    call on the thread pool (40 threads), and keeps one of the engine's 15 connections from its first
    statement to its commit. Past capacity, threads blocked waiting for a connection took every
    thread that requests holding connections needed to finish, until the pool's 30 s timeout: at 100
    requests/s the service stalled for minutes and answered 503. Both lanes together stay below the
    pool's size, so no request ever waits for a connection. The body is read before this point, so a
    slow upload holds no place (an import's streamed upload, once authorised, does).

    Why a small one (2): one process runs Python on one core at a time (the GIL). Two requests in
    flight already keep it busy while the other's statements run; more only add thread switches.
    Two workers on PostgreSQL wrote, medians of 5 runs (tests/perf/bench_workers.py): 121-130 lines/s
    with 12, 164 with 4, 169 with 3, 185 with 2.
    Why two lanes: a report, an import or a sign-in (Argon2, slow on purpose) must not hold the places
    that code entry and sign-off need."""
    loop = asyncio.get_running_loop()
    gates = _GATES.get(loop)
    if gates is None:
        settings = get_settings()
        gates = _GATES.setdefault(
            loop,
            {
                INTERACTIVE: asyncio.Semaphore(settings.max_concurrent_requests),
                LONG: asyncio.Semaphore(settings.max_concurrent_long_requests),
            },
        )
    async with gates[lane(request)]:
        yield


def check_request_params(request: Request) -> None:
    """Every route's query and path strings follow audit.inputs (no control characters, bounded
    length) before anything reads them: a dependency of the whole application."""
    check_params(request.path_params.items(), where="path", max_length=MAX_PATH_PARAM)
    check_params(request.query_params.multi_items(), where="query", max_length=MAX_QUERY_VALUE)
