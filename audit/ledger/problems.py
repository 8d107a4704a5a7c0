"""What verification found: each problem names a seq, or a table, row id and field (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Kinds of problem, from the most basic to the most derived.
CHAIN = "chain"  # a hash, seq or payload identity does not fit the chain
CHECKPOINT = "checkpoint"  # the ledger no longer matches a signed checkpoint
COLUMN = "column"  # an indexed ledger column differs from its payload
EVENT = "event"  # the ledger contradicts itself (e.g. a change to a line it never added)
ROW_MISSING = "row_missing"  # an event implies a row the table does not hold
ROW_UNEXPECTED = "row_unexpected"  # a table holds a row no event accounts for
FIELD = "field"  # a row's field differs from what the ledger implies
ROLLUP = "rollup"  # a report roll-up row differs from the GROUP BY over the tables and the ledger


@dataclass(frozen=True)
class Problem:
    kind: str
    detail: str
    seq: int | None = None
    table: str | None = None
    id: str | None = None
    field: str | None = None
    expected: Any = None
    found: Any = None

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"kind": self.kind, "detail": self.detail}
        for name in ("seq", "table", "id", "field", "expected", "found"):
            value = getattr(self, name)
            if value is not None:
                body[name] = value
        return body

    def where(self) -> str:
        """`seq 12 actor_id` or `code_line 3f2c… code`: the locus, for one-line reports."""
        parts = [f"seq {self.seq}"] if self.seq is not None else []
        parts += [str(p) for p in (self.table, self.id, self.field) if p is not None]
        return " ".join(parts) or self.kind


@dataclass(frozen=True)
class Unreconciled:
    """Something the ledger cannot vouch for, said plainly (e.g. users created before events
    carried password digests). Not a failure: the data predates the evidence."""

    table: str
    field: str
    rows: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "field": self.field, "rows": self.rows, "reason": self.reason}
