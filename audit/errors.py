"""Domain errors carry their HTTP status; the API, web pages and CLI map them in one place each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class DomainError(Exception):
    status_code = 400
    kind = "BadRequest"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra
        # Work to commit in its own transaction after the failed unit of work rolls back: the
        # denied/failed audit event and any counters (failed sign-ins). See audit.uow.
        self.record: Callable[[Any], object] | None = None

    def recording(self, record: Callable[[Any], object]) -> DomainError:
        self.record = record
        return self

    def body(self) -> dict[str, Any]:
        return {"error": self.kind, "detail": self.detail, **self.extra}


class NotAuthenticated(DomainError):
    status_code = 401
    kind = "NotAuthenticated"


class Forbidden(DomainError):
    """A policy denied the action. `rule_ids` names the deciding rules."""

    status_code = 403
    kind = "Forbidden"

    def __init__(self, detail: str, *, rule_ids: list[str] | tuple[str, ...] = (), **extra: Any) -> None:
        super().__init__(detail, rule_ids=list(rule_ids), **extra)


class NotFound(DomainError):
    status_code = 404
    kind = "NotFound"


class Conflict(DomainError):
    status_code = 409
    kind = "Conflict"


class PreconditionFailed(DomainError):
    status_code = 412
    kind = "PreconditionFailed"


class InvalidInput(DomainError):
    """Bad input: names the field and the reason."""

    status_code = 422
    kind = "InvalidInput"

    def __init__(self, field: str, detail: str, **extra: Any) -> None:
        super().__init__(detail, field=field, **extra)
        self.field = field


class Locked(DomainError):
    status_code = 423
    kind = "Locked"


class PreconditionRequired(DomainError):
    status_code = 428
    kind = "PreconditionRequired"


class WitnessUnavailable(DomainError):
    """A checkpoint could not be handed to its witness (missing or unwritable witness file)."""

    status_code = 503
    kind = "WitnessUnavailable"


class TooManyAttempts(DomainError):
    """Back-off: the caller must wait `retry_after` seconds (sent as the Retry-After header too)."""

    status_code = 429
    kind = "TooManyAttempts"

    def __init__(self, detail: str, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.retry_after = retry_after


def retry_after(error: DomainError) -> int | None:
    """Seconds a client should wait before trying again, when the error says so."""
    value = error.extra.get("retry_after")
    return int(value) if isinstance(value, int) else None


class UnsupportedMediaType(DomainError):
    status_code = 415
    kind = "UnsupportedMediaType"
