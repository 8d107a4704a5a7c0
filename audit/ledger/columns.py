"""The ledger's indexed columns are copies of payload fields (pure).

Reports, the encounter history and the FHIR views filter on these columns, so a column that no
longer says what its hashed payload says would let those views lie while the chain still verifies.
The writer derives the columns from the payload with `indexed_values`, and verification compares
every stored row with the same function.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from audit.ledger.problems import COLUMN, Problem

INDEXED_COLUMNS = (
    "log_id",
    "seq",
    "event_id",
    "ts",
    "type",
    "actor_id",
    "actor_role",
    "on_behalf_of",
    "subject_type",
    "subject_id",
    "encounter_id",
    "provider_id",
    "outcome",
)
TS = INDEXED_COLUMNS.index("ts")


def _field(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def indexed_values(body: Any) -> tuple[Any, ...]:
    """The column values a payload implies, in INDEXED_COLUMNS order (`ts` as the payload's string).
    Total on any JSON, so a forged payload of any shape is compared rather than crashing."""
    try:  # the shape every event written by audit.ledger.service has (the hot path)
        actor, subject, obo = body["actor"], body["subject"], body["on_behalf_of"]
        return (
            body["log_id"],
            body["seq"],
            body["event_id"],
            body["ts"],
            body["type"],
            actor["id"],
            actor["role"],
            None if obo is None else obo["user_id"],
            subject["type"],
            subject["id"],
            body["encounter_id"],
            body["provider_id"],
            body["outcome"],
        )
    except (KeyError, TypeError, IndexError):
        return _tolerant_values(body)


def _tolerant_values(body: Any) -> tuple[Any, ...]:
    actor = _field(body, "actor")
    subject = _field(body, "subject")
    return (
        _field(body, "log_id"),
        _field(body, "seq"),
        _field(body, "event_id"),
        _field(body, "ts"),
        _field(body, "type"),
        _field(actor, "id"),
        _field(actor, "role"),
        _field(_field(body, "on_behalf_of"), "user_id"),
        _field(subject, "type"),
        _field(subject, "id"),
        _field(body, "encounter_id"),
        _field(body, "provider_id"),
        _field(body, "outcome"),
    )


def _parse_ts(text: Any) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def column_problems(seq: int, stored: Sequence[Any], body: Any) -> list[Problem]:
    """Every stored column (INDEXED_COLUMNS order, `ts` an aware datetime) that differs from the
    payload, each named by seq and column."""
    expected = indexed_values(body)
    same = expected[:TS] == tuple(stored[:TS]) and expected[TS + 1 :] == tuple(stored[TS + 1 :])
    if same and stored[TS] is not None and _parse_ts(expected[TS]) == stored[TS]:
        return []
    problems = []
    for i, (want, have) in enumerate(zip(expected, stored, strict=True)):
        if i == TS:
            if _parse_ts(want) != have or have is None:
                problems.append(_problem(seq, i, want, have.isoformat() if have else None))
        elif want != have:
            problems.append(_problem(seq, i, want, have))
    return problems


def _problem(seq: int, index: int, expected: Any, found: Any) -> Problem:
    name = INDEXED_COLUMNS[index]
    return Problem(
        COLUMN,
        f"indexed column {name} differs from the payload",
        seq=seq,
        table="ledger_event",
        field=name,
        expected=expected,
        found=found,
    )
