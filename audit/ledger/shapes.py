"""Reading the parts of an event payload, refusing what is not the shape its type promises (pure).

The replay (audit.ledger.replay and audit.ledger.replay_audits) reads forged or damaged payloads as
well as honest ones: a part that is missing or of the wrong kind raises ShapeError, which the replay
names as an EVENT problem by seq instead of crashing."""

from __future__ import annotations

from typing import Any


class ShapeError(ValueError):
    """An event does not have the shape its type promises (a forged or damaged payload)."""


def get(obj: Any, key: str) -> Any:
    """`obj[key]` when obj is an object, else None."""
    return obj.get(key) if isinstance(obj, dict) else None


def as_dict(obj: Any, what: str) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ShapeError(f"{what} is not an object")
    return obj


def an_id(value: Any, what: str) -> str:
    """A row id, which a state event cannot lack."""
    if not isinstance(value, str) or not value:
        raise ShapeError(f"no {what}")
    return value


def pick(source: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The named fields, every one of which must be present."""
    try:
        return {n: source[n] for n in names}
    except KeyError:
        raise ShapeError(f"missing {', '.join(n for n in names if n not in source)}") from None
