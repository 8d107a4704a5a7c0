from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from audit.inputs import RequestModel
from audit.principal import ROLES
from audit.security import npi_is_valid

USERNAME_MAX = 150
"""Longest username a sign-in form accepts (stored names are at most 64 characters)."""


class UserCreate(RequestModel):
    username: str = Field(min_length=3, max_length=64, pattern=r"^[a-z0-9][a-z0-9._-]*$", examples=["dr.new"])
    password: str = Field(min_length=12, max_length=256)
    display_name: str = Field(min_length=1, max_length=200, examples=["Dr Nia New"])
    roles: list[str] = Field(min_length=1, max_length=len(ROLES), examples=[["provider"]])
    npi: str | None = Field(default=None, max_length=10)
    credential: str | None = Field(default=None, max_length=20, examples=["MD"])

    @field_validator("roles")
    @classmethod
    def _known_roles(cls, roles: list[str]) -> list[str]:
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"unknown role(s) {unknown}; expected some of {list(ROLES)}")
        return sorted(set(roles))

    @field_validator("npi")
    @classmethod
    def _valid_npi(cls, npi: str | None) -> str | None:
        if npi is not None and not npi_is_valid(npi):
            raise ValueError("NPI must be 10 digits with a valid check digit (Luhn with prefix 80840)")
        return npi


class SignInForm(RequestModel):
    """The OAuth2 password form (`grant_type=password` may be sent and is the only one)."""

    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    password: str = Field(min_length=1, max_length=1024)
    grant_type: str | None = Field(default=None, pattern="^(password)?$")
    scope: str = Field(default="", max_length=200)
    client_id: str | None = Field(default=None, max_length=200)
    client_secret: str | None = Field(default=None, max_length=200)


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    roles: list[str]
    npi: str | None = None
    credential: str | None = None
    credential_active: bool = True
    is_active: bool = True


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int
