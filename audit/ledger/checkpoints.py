"""Signed checkpoints over the ledger (C2SP tlog-checkpoint notes), and verification against them.

The Merkle root is kept incrementally per process (O(log n) frontier), so a checkpoint only reads the
leaf hashes appended since the last one. Checkpoints are written in their own transaction, after the
events they cover are committed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from audit.config import get_settings
from audit.ledger import service as ledger
from audit.ledger.chain import ZERO_HASH, VerifyResult
from audit.ledger.checkpoint import (
    CheckpointError,
    format_checkpoint,
    key_name_for,
    parse_and_verify_note,
    public_key_text,
    sign_note,
)
from audit.ledger.merkle import MerkleBuilder
from audit.models import Checkpoint, utcnow

_lock = threading.Lock()
# log id -> (frontier, chain hash of its last leaf): reused only while that chain hash still matches.
_frontier: dict[str, tuple[MerkleBuilder, bytes]] = {}


@lru_cache
def _signing_key(path: str) -> Ed25519PrivateKey:
    from pathlib import Path

    from audit.ledger.checkpoint import load_or_create_signing_key

    return load_or_create_signing_key(Path(path))


def signing_key() -> Ed25519PrivateKey:
    """The Ed25519 key from AUDIT_SIGNING_KEY_FILE (created 0600 on first use; never in the database)."""
    return _signing_key(str(get_settings().signing_key_file))


def key_name() -> str:
    return key_name_for(get_settings().origin)


def public_key() -> str:
    """The verifier key in C2SP vkey form, as exported in bundles."""
    return public_key_text(key_name(), signing_key().public_key())


def merkle_root_at(session: Session, tree_size: int) -> bytes:
    """RFC 6962 root over the first `tree_size` leaves, extending the cached frontier when the ledger
    still ends its cached prefix with the same chain hash (so a rolled-back or altered prefix is never
    trusted)."""
    log_id = get_settings().log_id
    table = ledger.LEDGER
    with _lock:
        builder, edge = _frontier.get(log_id, (MerkleBuilder(), ZERO_HASH))
        if builder.size > tree_size or (builder.size and _chain_at(session, builder.size - 1) != edge):
            builder, edge = MerkleBuilder(), ZERO_HASH
        while builder.size < tree_size:
            rows = session.execute(
                select(table.c.leaf_hash, table.c.chain_hash)
                .where(table.c.log_id == log_id, table.c.seq >= builder.size, table.c.seq < tree_size)
                .order_by(table.c.seq)
                .limit(50_000)
            ).all()
            if not rows:
                raise CheckpointError(f"the ledger has a gap before seq {tree_size}")
            builder.extend(bytes(r[0]) for r in rows)
            edge = bytes(rows[-1][1])
        _frontier[log_id] = (builder, edge)
        return builder.root()


def _chain_at(session: Session, seq: int) -> bytes | None:
    value = session.execute(
        select(ledger.LEDGER.c.chain_hash).where(
            ledger.LEDGER.c.log_id == get_settings().log_id, ledger.LEDGER.c.seq == seq
        )
    ).scalar_one_or_none()
    return bytes(value) if value is not None else None


def latest(session: Session) -> Checkpoint | None:
    return session.scalars(
        select(Checkpoint)
        .where(col(Checkpoint.log_id) == get_settings().log_id)
        .order_by(col(Checkpoint.tree_size).desc())
        .limit(1)
    ).first()


def create(session: Session) -> Checkpoint | None:
    """Sign the committed head if it moved since the last checkpoint; None if nothing is new."""
    head_seq, head_chain = ledger.head(session)
    last = latest(session)
    tree_size = head_seq + 1
    if tree_size == 0 or (last is not None and last.tree_size >= tree_size):
        return None
    root = merkle_root_at(session, tree_size)
    body = format_checkpoint(get_settings().origin, tree_size, root, head_chain, utcnow())
    note = sign_note(body, key_name(), signing_key())
    checkpoint = Checkpoint(
        log_id=get_settings().log_id, tree_size=tree_size, root_hash=root, chain_hash=head_chain, note=note
    )
    session.add(checkpoint)
    session.flush()
    return checkpoint


def create_or_latest(session: Session) -> Checkpoint | None:
    """Sign the committed head inside the caller's transaction (under a savepoint, so a concurrent
    signer of the same head just means we use theirs) and return the latest checkpoint."""
    try:
        with session.begin_nested():
            create(session)
    except IntegrityError:
        pass
    return latest(session)


def create_in_own_transaction(bind: object = None) -> Checkpoint | None:
    """Used by the timer, the CLI and exports; a race with another process signing the same head is
    harmless (the unique (log_id, tree_size) pair keeps one)."""
    from audit.uow import unit_of_work

    try:
        with unit_of_work(bind) as session:  # type: ignore[arg-type]
            return create(session)
    except IntegrityError:
        return None


@dataclass
class CheckpointCheck:
    ok: bool
    tree_size: int | None
    problem: str | None = None


def check_against_latest(session: Session) -> CheckpointCheck:
    """The ledger must still hold everything the latest signed checkpoint covers, unchanged."""
    last = latest(session)
    if last is None:
        return CheckpointCheck(True, None)
    try:
        signed = parse_and_verify_note(last.note, key_name(), signing_key().public_key())
    except CheckpointError as exc:
        return CheckpointCheck(False, last.tree_size, f"checkpoint signature: {exc}")
    head_seq, _ = ledger.head(session)
    if head_seq + 1 < signed.tree_size:
        return CheckpointCheck(
            False,
            signed.tree_size,
            f"the ledger ends at seq {head_seq} but the checkpoint covers {signed.tree_size} events "
            "(tail removed)",
        )
    stored = session.execute(
        select(ledger.LEDGER.c.chain_hash).where(
            ledger.LEDGER.c.log_id == get_settings().log_id, ledger.LEDGER.c.seq == signed.tree_size - 1
        )
    ).scalar_one_or_none()
    if stored is None or bytes(stored) != signed.chain_hash:
        return CheckpointCheck(False, signed.tree_size, f"chain hash at seq {signed.tree_size - 1} differs")
    if merkle_root_at(session, signed.tree_size) != signed.root_hash:
        return CheckpointCheck(False, signed.tree_size, "Merkle root differs from the signed checkpoint")
    return CheckpointCheck(True, signed.tree_size)


def verify_incremental(session: Session) -> VerifyResult:
    """Verify only what came after the latest checkpoint, trusting its signed chain hash."""
    last = latest(session)
    if last is None:
        return ledger.verify(session)
    signed = parse_and_verify_note(last.note, key_name(), signing_key().public_key())
    return ledger.verify(session, start_seq=signed.tree_size, previous_chain=signed.chain_hash or ZERO_HASH)


class Checkpointer:
    """Signs a checkpoint every `interval` seconds while events arrive (a daemon thread)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        import logging

        while not self._stop.wait(self.interval):
            try:
                create_in_own_transaction()
            except Exception:  # keep signing later; the failure is logged, the ledger is untouched
                logging.getLogger(__name__).exception("checkpoint failed")
