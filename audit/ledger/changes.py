"""Changes after attestation (audit.ledger.models.ChangeAfterAttestation), kept with the events.

One definition, three uses, as for the report roll-ups (audit.ledger.rollups): an allowed code event
whose encounter has an allowed `encounter.attest` earlier in the same log.

- the ledger writer calls `record` with the rows it has just inserted, in the same transaction (an
  attestation in the same batch counts: the rows are already inserted);
- the migration fills the table with `rebuild`;
- `audit verify` compares it with a fresh SELECT over the ledger (`problems`): a forged, missing or
  extra row is named by its seq.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Table, bindparam, delete, exists, insert, select
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.ledger import pipelined
from audit.ledger.models import CODE_EVENTS, ChangeAfterAttestation
from audit.ledger.problems import ROLLUP, Problem
from audit.models import LedgerEvent

LED: Table = LedgerEvent.__table__  # type: ignore[attr-defined]
CHANGES: Table = ChangeAfterAttestation.__table__  # type: ignore[attr-defined]
COLUMNS = ("log_id", "seq", "ts", "encounter_id")
TABLE = "change_after_attestation"

Db = Session | Connection


def _attested_before() -> ColumnElement[bool]:
    """An allowed attestation of the event's encounter earlier in its log (answered per event by the
    index on (encounter_id, seq))."""
    att = LED.alias("earlier_attest")
    return exists().where(
        att.c.encounter_id == LED.c.encounter_id, att.c.type == "encounter.attest",
        att.c.outcome == "allowed", att.c.log_id == LED.c.log_id, att.c.seq < LED.c.seq,
    )  # fmt: skip


def _changes(log_id: str) -> Any:
    """The SELECT that defines the table's rows for one log."""
    return select(*(LED.c[c] for c in COLUMNS)).where(
        LED.c.log_id == log_id,
        LED.c.type.in_(CODE_EVENTS),
        LED.c.outcome == "allowed",
        LED.c.encounter_id.is_not(None),
        _attested_before(),
    )


def record(session: Session, log_id: str, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Add the changes among ledger rows just inserted (one INSERT ... SELECT over the span of their
    code events, only when the rows hold an allowed one; a batch's seqs are contiguous, and the SELECT
    itself keeps only allowed code events). Returns the encounters of the rows it added."""
    seqs = [r["seq"] for r in rows if r["outcome"] == "allowed" and r["type"] in CODE_EVENTS]
    if not seqs:
        return set()
    span = {"low": min(seqs), "high": max(seqs)}
    return set(pipelined.scalars(session, _record_span(log_id), span))  # the writer pipelines it


@lru_cache(maxsize=8)
def _record_span(log_id: str) -> Any:
    """`record`'s INSERT ... SELECT ... RETURNING, built once per log (it runs under the log's lock in
    every append that holds a code event; building it took longer than running it)."""
    span = LED.c.seq.between(bindparam("low", 0, type_=BigInteger), bindparam("high", 0, type_=BigInteger))
    added = insert(CHANGES).from_select(COLUMNS, _changes(log_id).where(span))
    return added.returning(CHANGES.c.encounter_id)


def rebuild(db: Db, log_id: str) -> None:
    """Replace the log's rows with the SELECT's (bulk loads, and the migration's backfill)."""
    db.execute(delete(CHANGES).where(CHANGES.c.log_id == log_id))
    db.execute(insert(CHANGES).from_select(COLUMNS, _changes(log_id)))


def problems(db: Db, log_id: str) -> Iterator[Problem]:
    """Every stored row the ledger does not imply (or implies with another time or encounter) and
    every row it implies that is missing."""
    want = {r.seq: (r.ts, r.encounter_id) for r in db.execute(_changes(log_id))}
    stored = select(CHANGES.c.seq, CHANGES.c.ts, CHANGES.c.encounter_id).where(CHANGES.c.log_id == log_id)
    have = {r.seq: (r.ts, r.encounter_id) for r in db.execute(stored)}
    for seq in sorted(set(want) | set(have)):
        w, h = want.get(seq), have.get(seq)
        if h is None:
            yield Problem(ROLLUP, f"the {TABLE} row the ledger implies is missing", table=TABLE, id=str(seq))
        elif w is None:
            yield Problem(ROLLUP, f"no code event after an attestation accounts for this {TABLE} row",
                          table=TABLE, id=str(seq))  # fmt: skip
        else:
            for i, name in enumerate(("ts", "encounter_id")):
                if w[i] != h[i]:
                    yield Problem(ROLLUP, f"{TABLE}.{name} differs from its ledger event", table=TABLE,
                                  id=str(seq), field=name, expected=str(w[i]), found=str(h[i]))  # fmt: skip
