"""The only importer of passlib: password hashing, opaque bearer tokens, NPI check digits."""

from __future__ import annotations

import hashlib
import secrets
from functools import lru_cache

from passlib.context import CryptContext


@lru_cache
def _context() -> CryptContext:
    """Argon2id. The test environment uses a lighter (still real) cost so the suite stays fast."""
    from audit.config import get_settings

    if get_settings().env == "test":
        return CryptContext(
            schemes=["argon2"], argon2__memory_cost=1024, argon2__time_cost=1, argon2__parallelism=1
        )
    return CryptContext(schemes=["argon2"], deprecated="auto")


def hash_password(password: str) -> str:
    return str(_context().hash(password))


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return bool(_context().verify(password, password_hash))
    except (ValueError, TypeError):
        return False


# A valid hash to verify against when the user does not exist, so timing does not reveal usernames.
@lru_cache
def dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def new_token() -> tuple[str, str]:
    """(token to hand out, SHA-256 hex to store)."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def npi_is_valid(npi: str) -> bool:
    """CMS NPI check digit: Luhn over the 9 leading digits prefixed with 80840."""
    if len(npi) != 10 or not (npi.isascii() and npi.isdigit()):
        return False
    digits = [int(c) for c in "80840" + npi[:9]]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10 == int(npi[9])


def keyed_digest(purpose: str, value: str) -> str:
    """HMAC-SHA256 (AUDIT_SECRET_KEY) of `value` for `purpose`, in hex: a stable, unguessable key for a
    username or an address, so neither is stored in the clear and nobody without the secret can
    compute which row belongs to whom."""
    import hmac

    from audit.config import get_settings

    secret = get_settings().secret_key.encode()
    return hmac.new(
        secret, f"{purpose}\x00{value}".encode("utf-8", "surrogatepass"), hashlib.sha256
    ).hexdigest()
