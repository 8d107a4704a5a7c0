"""Proofs over the stored ledger, for anyone holding a signed checkpoint from earlier.

* ``consistency``: the RFC 9162 section 2.1.4 consistency proof between two tree sizes, with both
  roots, from one pass over the leaf hashes (32 bytes a row; payloads are never read).
* ``check_notes``: does the ledger still hold the trees that signed checkpoints kept elsewhere (an
  auditor's saved note, a copy of the witness file) describe -- same length, chain hash and root?
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.config import get_settings
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.checkpoint import Checkpoint as SignedCheckpoint
from audit.ledger.checkpoint import CheckpointError, NoteEntry
from audit.ledger.merkle import EMPTY_ROOT, MerkleBuilder, consistency_from_stream

PAGE = 20_000


def stored_hashes(session: Session, upto: int) -> Iterator[tuple[bytes, bytes]]:
    """(leaf hash, chain hash) of seq 0..upto-1 in order, in keyset pages; stops early at a gap."""
    table = ledger.LEDGER
    for page in _pages(session, upto, table.c.leaf_hash, table.c.chain_hash):
        for row in page:
            yield bytes(row[1]), bytes(row[2])


def stored_leaves(session: Session, upto: int) -> Iterator[bytes]:
    """The leaf hashes of seq 0..upto-1 in order (32 bytes a row; payloads are never read)."""
    for page in _pages(session, upto, ledger.LEDGER.c.leaf_hash):
        yield from [bytes(row[1]) for row in page]


def _pages(session: Session, upto: int, *columns: Any) -> Iterator[Sequence[Any]]:
    """Rows (seq, *columns) of seq 0..upto-1 in keyset pages; stops before the first gap."""
    table = ledger.LEDGER
    log_id = get_settings().log_id
    next_seq = 0
    while next_seq < upto:
        rows = session.execute(
            select(table.c.seq, *columns)
            .where(table.c.log_id == log_id, table.c.seq >= next_seq, table.c.seq < upto)
            .order_by(table.c.seq)
            .limit(PAGE)
        ).all()
        if not rows:
            return
        if rows[0][0] != next_seq or rows[-1][0] != next_seq + len(rows) - 1:  # seqs are unique
            yield rows[: _gapless(rows, next_seq)]
            return
        yield rows
        next_seq += len(rows)


def _gapless(rows: Sequence[Any], start: int) -> int:
    """How many rows, from the first, have seqs start, start+1, ... without a gap."""
    count = 0
    for row in rows:
        if row[0] != start + count:
            break
        count += 1
    return count


@dataclass(frozen=True)
class Consistency:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    proof: list[bytes]


def consistency(session: Session, *, first: int, second: int) -> Consistency:
    """PROOF(first, D[second]) and MTH(D[first]), MTH(D[second]) over the stored leaf hashes.
    The caller checks 0 <= first <= second <= the ledger's size."""
    try:
        proof, root1, root2 = consistency_from_stream(stored_leaves(session, second), first, second)
    except ValueError as exc:  # fewer rows than the tree size: the ledger has a gap
        raise CheckpointError(f"the ledger cannot prove tree size {second}: {exc}") from exc
    return Consistency(first, second, root1, root2, proof)


@dataclass(frozen=True)
class NoteCheck:
    line: int
    tree_size: int | None
    problem: str | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def check_notes(session: Session, entries: Iterable[NoteEntry]) -> list[NoteCheck]:
    """Check each note: signed by our key for our origin, and the ledger still holds its tree (length,
    chain hash at its last seq, Merkle root). One pass over the stored hashes serves every note."""
    head_seq, _ = ledger.head(session)
    results: dict[int, NoteCheck] = {}
    wanted: dict[int, list[tuple[int, SignedCheckpoint]]] = {}
    order: list[int] = []
    for entry in entries:
        order.append(entry.line)
        if entry.note is None:
            results[entry.line] = NoteCheck(entry.line, None, entry.problem or "not a signed note")
            continue
        try:
            signed = checkpoints.verify_note(entry.note)
        except CheckpointError as exc:
            results[entry.line] = NoteCheck(entry.line, None, f"signature: {exc}")
            continue
        size = signed.tree_size
        if size == 0:
            problem = None if signed.root_hash == EMPTY_ROOT else "an empty tree with a non-empty root"
            results[entry.line] = NoteCheck(entry.line, 0, problem)
        elif size > head_seq + 1:
            results[entry.line] = NoteCheck(
                entry.line,
                size,
                f"the ledger ends at seq {head_seq} but the checkpoint covers {size} events (tail removed)",
            )
        else:
            wanted.setdefault(size, []).append((entry.line, signed))
    if wanted:
        _walk(session, wanted, results)
    return [results[line] for line in order]


def _walk(
    session: Session, wanted: dict[int, list[tuple[int, SignedCheckpoint]]], results: dict[int, NoteCheck]
) -> None:
    builder = MerkleBuilder()
    last = max(wanted)
    for leaf, chained in stored_hashes(session, last):
        builder.append(leaf)
        for line, signed in wanted.get(builder.size, ()):
            problem = None
            if chained != signed.chain_hash:
                problem = f"chain hash at seq {builder.size - 1} differs"
            elif builder.root() != signed.root_hash:
                problem = "Merkle root differs from the signed checkpoint"
            results[line] = NoteCheck(line, builder.size, problem)
    for size, notes in wanted.items():  # sizes the walk never reached: the ledger has a gap
        for line, _ in notes:
            results.setdefault(line, NoteCheck(line, size, f"the ledger has a gap before seq {size}"))
