from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request, status

from audit.deps import BindDep, SessionDep, TokenDep, UserDep
from audit.openapi import error_responses
from audit.user import entry, service
from audit.user.schemas import SignInForm, TokenOut, UserCreate, UserOut

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post("/auth/token", response_model=TokenOut, responses=error_responses(401, 429))
def issue_token(request: Request, bind: BindDep, form: Annotated[SignInForm, Form()]) -> TokenOut:
    """OAuth2 password sign-in. Failures never lock the account: after repeated failures (per
    username and per source address) every attempt waits, with 429 and `Retry-After`, and during
    the wait the password is not checked, so the answer never depends on it."""
    token, lifetime = entry.sign_in(
        bind, username=form.username, password=form.password, address=client_address(request)
    )
    return TokenOut(access_token=token, expires_in=lifetime)


def client_address(request: Request) -> str:
    """The peer address (behind a reverse proxy, run uvicorn with --forwarded-allow-ips so it is
    the client's, not the proxy's)."""
    return request.client.host if request.client else "unknown"


@router.post("/auth/signout", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(session: SessionDep, user: UserDep, token: TokenDep) -> None:
    service.sign_out(session, token=token or "", user=user)


@router.get("/users/me", response_model=UserOut)
def me(session: SessionDep, user: UserDep) -> UserOut:
    return UserOut.model_validate(service.get_user(session, user.id), from_attributes=True)


@router.post(
    "/users", response_model=UserOut, status_code=status.HTTP_201_CREATED, responses=error_responses(409)
)
def create_user(session: SessionDep, user: UserDep, data: UserCreate) -> UserOut:
    """Administrators create users (policy `user.create`, decided in the service)."""
    created = service.create_user(session, user=user, data=data)
    return UserOut.model_validate(created, from_attributes=True)


@router.get("/users", response_model=list[UserOut])
def list_users(
    session: SessionDep,
    user: UserDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> list[UserOut]:
    """Administrators and compliance: every user, by username."""
    rows = service.list_users(session, user=user, limit=limit, offset=offset)
    return [UserOut.model_validate(u, from_attributes=True) for u in rows]
