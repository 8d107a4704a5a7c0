"""FastAPI dependency aliases: one session per request, the current user from the bearer token."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.db import get_engine
from audit.principal import CurrentUser
from audit.uow import unit_of_work
from audit.user.service import resolve_token

oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/api/v1/auth/token", auto_error=False)


def get_bind() -> Engine | Connection:
    """Where requests run: the configured engine (tests override this with their connection)."""
    return get_engine()


def get_session(bind: Annotated[Engine | Connection, Depends(get_bind)]) -> Iterator[Session]:
    """The request's unit of work: commits before the response is sent (scope='function')."""
    with unit_of_work(bind) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]
TokenDep = Annotated[str | None, Depends(oauth2_scheme)]


def get_current_user(session: SessionDep, token: TokenDep) -> CurrentUser:
    from audit.errors import NotAuthenticated

    if not token:
        raise NotAuthenticated("sign in first: send Authorization: Bearer <token>")
    return CurrentUser.of(resolve_token(session, token))


UserDep = Annotated[CurrentUser, Depends(get_current_user)]
