from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from fastapi.security import OAuth2PasswordRequestForm

from audit.deps import SessionDep, TokenDep, UserDep
from audit.policy.engine import UserRes
from audit.policy.guard import Target, authorize
from audit.user import service
from audit.user.schemas import TokenOut, UserCreate, UserOut

router = APIRouter(prefix="/api/v1", tags=["users"])


@router.post("/auth/token", response_model=TokenOut)
def issue_token(session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]) -> TokenOut:
    token, lifetime = service.sign_in(session, username=form.username, password=form.password)
    return TokenOut(access_token=token, expires_in=lifetime)


@router.post("/auth/signout", status_code=status.HTTP_204_NO_CONTENT)
def sign_out(session: SessionDep, user: UserDep, token: TokenDep) -> None:
    service.sign_out(session, token=token or "", user=user)


@router.get("/users/me", response_model=UserOut)
def me(session: SessionDep, user: UserDep) -> UserOut:
    return UserOut.model_validate(service.get_user(session, user.id), from_attributes=True)


@router.post("/users", response_model=UserOut, status_code=status.HTTP_201_CREATED)
def create_user(session: SessionDep, user: UserDep, data: UserCreate) -> UserOut:
    grant = authorize(
        user, "user.create", Target("user", None), UserRes(id="new", roles=frozenset(data.roles))
    )
    created = service.create_user(session, data=data, actor=user.actor(grant.role), policy=grant.policy)
    return UserOut.model_validate(created, from_attributes=True)


@router.get("/users", response_model=list[UserOut])
def list_users(session: SessionDep, user: UserDep) -> list[UserOut]:
    authorize(user, "user.read", Target("user", None), UserRes(id="all", roles=frozenset()))
    return [UserOut.model_validate(u, from_attributes=True) for u in service.list_users(session)]
