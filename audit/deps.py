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


_GATES: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()


async def request_gate() -> AsyncIterator[None]:
    """At most `max_concurrent_requests` requests of this process past this point at once; the others
    wait here, in the event loop, holding no thread and no connection.

    Why: a sync route runs each of its steps (dependencies, the route, the commit) as its own call on
    the thread pool (40 threads), and keeps one of the engine's 15 connections from its first
    statement to its commit. Past capacity, threads blocked waiting for a connection took every
    thread that requests holding connections needed to finish, until the pool's 30 s timeout: at 100
    requests/s the service stalled for minutes and answered 503. Kept below the pool's size, no
    request ever waits for a connection. The body is read before this point, so a slow upload
    holds no place (an import's streamed upload, once authorised, does)."""
    loop = asyncio.get_running_loop()
    gate = _GATES.get(loop)
    if gate is None:
        gate = _GATES.setdefault(loop, asyncio.Semaphore(get_settings().max_concurrent_requests))
    async with gate:
        yield


def check_request_params(request: Request) -> None:
    """Every route's query and path strings follow audit.inputs (no control characters, bounded
    length) before anything reads them: a dependency of the whole application."""
    check_params(request.path_params.items(), where="path", max_length=MAX_PATH_PARAM)
    check_params(request.query_params.multi_items(), where="query", max_length=MAX_QUERY_VALUE)
