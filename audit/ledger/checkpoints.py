"""Signed checkpoints over the ledger (C2SP tlog-checkpoint notes), their witnesses, and verification.

Signing a checkpoint, in this order:
1. read the committed head and extend the Merkle root over the leaves appended since the last one
   (the root is kept incrementally per process, an O(log n) frontier);
2. sign the note;
3. hand it to every witness (fsync'd) -- a witness that already holds a newer checkpoint refuses it,
   and then it is dropped;
4. insert and commit the checkpoint row.
So every checkpoint in the database is in every witness too. The timer does 1-2 in a read-only
transaction (no SQLite write lock), 3 outside any transaction, and only 4 takes the write lock.

Only committed heads are signed: a session that has appended events (``ledger.APPENDED``) does not
sign, since its transaction could still roll back and leave a witnessed tree that never existed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from audit.config import get_settings
from audit.errors import WitnessUnavailable
from audit.ledger import service as ledger
from audit.ledger.chain import ZERO_HASH
from audit.ledger.checkpoint import Checkpoint as SignedCheckpoint
from audit.ledger.checkpoint import (
    CheckpointError,
    format_checkpoint,
    key_name_for,
    parse_and_verify_note,
    public_key_text,
    sign_note,
    split_note,
)
from audit.ledger.merkle import EMPTY_ROOT, MerkleBuilder
from audit.ledger.witness import FileWitness, Witness, WitnessError, audit_witness, size_of
from audit.models import Checkpoint, MerkleFrontier, utcnow

log = logging.getLogger(__name__)
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
    return key_name_for(get_settings().key_name)


def signer_name(note: str) -> str:
    """The key name our key signed ``note`` under: the configured key name or, for a note signed
    before AUDIT_LOG_KEY_NAME was changed, the log id (the name every earlier release signed with)."""
    settings = get_settings()
    signed_by = {name for name, _ in split_note(note)[1]}
    names = [name for name in dict.fromkeys([settings.key_name, settings.log_id]) if name in signed_by]
    return names[0] if names else key_name()


def open_note(note: str) -> SignedCheckpoint:
    """Verify and parse one of our own stored notes (its origin line is taken as signed)."""
    return parse_and_verify_note(note, signer_name(note), signing_key().public_key())


def public_key(note: str | None = None) -> str:
    """The verifier key in C2SP vkey form, as exported in bundles: named as it signed ``note``
    (default: under the configured key name)."""
    return public_key_text(signer_name(note) if note else key_name(), signing_key().public_key())


def sign(body: str, name: str | None = None) -> str:
    """Sign a note body with the checkpoint key (checkpoints and export manifests), under `name`
    (default: the configured key name)."""
    return sign_note(body, name or key_name(), signing_key())


def verify_note(note: str) -> SignedCheckpoint:
    """Parse a checkpoint note our key signed for this log; CheckpointError names the problem.

    The note is checked under the key name it was signed with (see `signer_name`), and its origin must
    name this log: the log id itself or ``<prefix>/<log id>``, the rule bundle verifiers apply, so notes
    signed before AUDIT_LOG_ORIGIN was set or changed stay valid."""
    signed = open_note(note)
    log_id = get_settings().log_id
    if signed.origin != log_id and not signed.origin.endswith("/" + log_id):
        raise CheckpointError(f"origin {signed.origin!r} does not name this log {log_id!r}")
    return signed


def witnesses() -> list[Witness]:
    """Where every checkpoint is kept outside the database (today: the witness file)."""
    return [FileWitness(get_settings().resolved_witness_file)]


def merkle_root_at(session: Session, tree_size: int, *, persisted: bool = True) -> bytes:
    """RFC 6962 root over the first `tree_size` leaves, extending the cached frontier when the ledger
    still ends its cached prefix with the same chain hash (so a rolled-back or altered prefix is never
    trusted). With no usable frontier in this process, and `persisted`, it starts from the newest
    stored frontier (`merkle_frontier`) that folds to its signed checkpoint's root (`trusted_frontier`)."""
    log_id = get_settings().log_id
    table = ledger.LEDGER
    with _lock:
        builder, edge = _frontier.get(log_id, (MerkleBuilder(), ZERO_HASH))
        if builder.size > tree_size or (builder.size and _chain_at(session, builder.size - 1) != edge):
            builder, edge = MerkleBuilder(), ZERO_HASH
        if persisted and builder.size < tree_size:
            stored = trusted_frontier(session, tree_size)
            if stored is not None and stored[0].size > builder.size:
                builder, edge = stored
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


def remember_frontier(builder: MerkleBuilder, edge: bytes) -> None:
    """Keep a frontier computed elsewhere (a full verification's pass) for `merkle_root_at`; it is
    reused only while the ledger's chain hash at its last leaf is still `edge`."""
    with _lock:
        _frontier[get_settings().log_id] = (builder.copy(), edge)


def trusted_frontier(session: Session, at_most: int) -> tuple[MerkleBuilder, bytes] | None:
    """(builder, chain hash at its last leaf) from the newest stored frontier of at most `at_most`
    leaves, when it is consistent with what was signed: its checkpoint's note verifies, the frontier
    folds to that note's root, and the ledger still holds the note's chain hash at that size. Any
    other frontier row is ignored (full verification names it); None when none qualifies."""
    log_id = get_settings().log_id
    row = session.execute(
        select(col(MerkleFrontier.tree_size), col(MerkleFrontier.nodes))
        .where(col(MerkleFrontier.log_id) == log_id, col(MerkleFrontier.tree_size) <= at_most)
        .order_by(col(MerkleFrontier.tree_size).desc())
        .limit(1)
    ).first()
    if row is None:
        return None
    size, nodes = int(row[0]), bytes(row[1])
    checkpoint = at_size(session, size)
    if checkpoint is None:
        return None
    try:
        signed = verify_note(checkpoint.note)
        builder = MerkleBuilder.from_frontier(size, nodes)
    except (CheckpointError, ValueError):
        return None
    if builder.root() != signed.root_hash or _chain_at(session, size - 1) != signed.chain_hash:
        return None
    return builder, signed.chain_hash or ZERO_HASH


def frontier_at(session: Session, tree_size: int) -> bytes | None:
    value = session.execute(
        select(col(MerkleFrontier.nodes)).where(
            col(MerkleFrontier.log_id) == get_settings().log_id, col(MerkleFrontier.tree_size) == tree_size
        )
    ).scalar_one_or_none()
    return bytes(value) if value is not None else None


def stored_frontiers(session: Session) -> dict[int, bytes]:
    """Every stored frontier of this log, {tree size: nodes} (a few KB per checkpoint)."""
    rows = session.execute(
        select(col(MerkleFrontier.tree_size), col(MerkleFrontier.nodes)).where(
            col(MerkleFrontier.log_id) == get_settings().log_id
        )
    )
    return {int(size): bytes(nodes) for size, nodes in rows}


def chain_at(session: Session, seq: int) -> bytes | None:
    """The chain hash stored at `seq` (None past the end)."""
    return _chain_at(session, seq)


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


def at_size(session: Session, tree_size: int) -> Checkpoint | None:
    return session.scalars(
        select(Checkpoint).where(
            col(Checkpoint.log_id) == get_settings().log_id, col(Checkpoint.tree_size) == tree_size
        )
    ).first()


def _latest_size(session: Session) -> int | None:
    value = session.execute(
        select(func.max(Checkpoint.tree_size)).where(col(Checkpoint.log_id) == get_settings().log_id)
    ).scalar_one_or_none()
    return int(value) if value is not None else None


def db_notes(session: Session, page: int = 5000) -> Iterator[tuple[int, str]]:
    """Every checkpoint note in the database, (tree size, note), in increasing tree size."""
    after = -1
    while True:
        rows = session.execute(
            select(col(Checkpoint.tree_size), col(Checkpoint.note))
            .where(col(Checkpoint.log_id) == get_settings().log_id, col(Checkpoint.tree_size) > after)
            .order_by(col(Checkpoint.tree_size))
            .limit(page)
        ).all()
        if not rows:
            return
        for size, note in rows:
            yield int(size), str(note)
        after = int(rows[-1][0])


# --------------------------------------------------------------------------------------------------
# Signing


@dataclass(frozen=True)
class _Signed:
    tree_size: int
    root: bytes
    chain: bytes
    note: str
    first: bool  # the database holds no checkpoint yet: a missing witness may be created
    frontier: bytes | None = None  # the tree's right edge at tree_size, stored with the row


def _sign_head(session: Session) -> _Signed | None:
    """A signed note over the committed head, or None when it is already covered."""
    head_seq, head_chain = ledger.head(session)
    last = _latest_size(session)
    tree_size = head_seq + 1
    if tree_size == 0 or (last is not None and last >= tree_size):
        return None
    root = merkle_root_at(session, tree_size)
    note = sign(format_checkpoint(get_settings().origin, tree_size, root, head_chain, utcnow()))
    cached = _frontier.get(get_settings().log_id)
    frontier = cached[0].frontier() if cached and cached[0].size == tree_size else None
    return _Signed(tree_size, root, head_chain, note, first=last is None, frontier=frontier)


def _witness(signed: _Signed) -> _Signed | None:
    """Hand the note to every witness. Returns what to record: ours; or, when the first witness
    already holds a note over this very tree (signed by a concurrent signer, or by a transaction that
    then rolled back), that note; None when a witness holds a newer checkpoint (drop ours)."""
    accepted = False
    for witness in witnesses():
        if witness.append(signed.note, signed.tree_size, create=signed.first):
            accepted = True
            continue
        held = None if accepted else witness.newest()
        if held is None or size_of(held) != signed.tree_size:
            return None
        try:
            same = verify_note(held)
        except CheckpointError:
            return None
        if (same.root_hash, same.chain_hash) != (signed.root, signed.chain):
            return None
        signed = _Signed(signed.tree_size, signed.root, signed.chain, held, signed.first, signed.frontier)
        accepted = True
    return signed


def _record(session: Session, signed: _Signed) -> Checkpoint:
    row = Checkpoint(
        log_id=get_settings().log_id,
        tree_size=signed.tree_size,
        root_hash=signed.root,
        chain_hash=signed.chain,
        note=signed.note,
    )
    session.add(row)
    if signed.frontier is not None:
        session.add(MerkleFrontier(log_id=row.log_id, tree_size=signed.tree_size, nodes=signed.frontier))
    session.flush()
    return row


def create(session: Session) -> Checkpoint | None:
    """Sign, witness and record the committed head inside the caller's transaction; None when the
    head is already covered, this session has uncommitted events, or a witness holds a newer one."""
    if session.info.get(ledger.APPENDED):
        return None
    signed = _sign_head(session)
    witnessed = _witness(signed) if signed is not None else None
    return _record(session, witnessed) if witnessed is not None else None


def create_or_latest(session: Session) -> Checkpoint | None:
    """Sign the committed head inside the caller's transaction (the row under a savepoint, so a
    concurrent signer of the same head just means we use theirs) and return the latest checkpoint.
    A witness that cannot take the note is a 503: nothing unwitnessed is signed."""
    try:
        with session.begin_nested():
            create(session)
    except IntegrityError:
        pass
    except WitnessError as exc:
        raise WitnessUnavailable(str(exc)) from exc
    return latest(session)


def create_in_own_transaction(bind: Any = None) -> Checkpoint | None:
    """The timer's and the CLI's path. The head is read and the note signed in a read-only
    transaction, the witnesses are written outside any transaction, and only the row insert takes the
    write lock. A race with another process signing the same head is harmless (the witness refuses
    the second note; the unique (log_id, tree_size) pair keeps one row)."""
    from audit.db import read_scope, session_scope

    with read_scope(bind) as session:
        signed = _sign_head(session)
    witnessed = _witness(signed) if signed is not None else None
    if witnessed is None:
        return None
    try:
        with session_scope(bind) as session:  # a plain transaction: audit.uow builds on the ledger
            return _record(session, witnessed)
    except IntegrityError:
        return None


def start_witnesses(session: Session) -> dict[str, int]:
    """Create every missing witness holding the database's checkpoints (each signature checked):
    how a database that predates its witness adopts one. Returns {witness name: notes written}."""
    notes = [note for _, note in db_notes(session)]
    for note in notes:
        verify_note(note)
    return {w.name: w.start(notes) for w in witnesses() if not w.exists()}


def check_witnesses_ready(session: Session) -> None:
    """Raise WitnessError when a witness is missing (while the database holds checkpoints) or
    cannot be written: production refuses to start on it."""
    must_exist = _latest_size(session) is not None
    for w in witnesses():
        w.check_ready(must_exist=must_exist)


# --------------------------------------------------------------------------------------------------
# Verification against the database's and the witnesses' newest checkpoints


@dataclass
class WitnessCheck:
    name: str
    ok: bool
    tree_size: int | None
    problem: str | None = None
    notes: int = 0


@dataclass
class CheckpointCheck:
    ok: bool
    tree_size: int | None
    problem: str | None = None
    witnesses: list[WitnessCheck] = field(default_factory=list)


def check_against_latest(session: Session, *, persisted: bool = True) -> CheckpointCheck:
    """The ledger must still hold, unchanged, everything the newest checkpoint covers: the newest in
    the database and the newest in each witness. Each witness must hold every database checkpoint
    and end with a whole note; a missing witness is a problem once the database holds checkpoints.
    `persisted`: the Merkle roots may start from a stored frontier that folds to a signed root
    (incremental verification); full verification computes them from every leaf instead."""
    problems: list[str] = []
    sizes: list[int] = []
    head_seq, _ = ledger.head(session)
    db_size = None
    last = latest(session)
    if last is not None:
        db_size = last.tree_size
        sizes.append(last.tree_size)
        problem = _note_problem(session, last.note, head_seq, persisted)
        if problem:
            problems.append(f"checkpoint at tree size {last.tree_size}: {problem}")
    checks = [_check_witness(session, w, db_size, head_seq, persisted) for w in witnesses()]
    for check in checks:
        if check.problem:
            problems.append(check.problem)
        if check.tree_size is not None:
            sizes.append(check.tree_size)
    return CheckpointCheck(not problems, max(sizes) if sizes else None, "; ".join(problems) or None, checks)


def _check_witness(
    session: Session, witness: Witness, db_size: int | None, head_seq: int, persisted: bool
) -> WitnessCheck:
    if not witness.exists():
        if db_size is None:
            return WitnessCheck(witness.name, True, None)  # a new install: nothing signed yet
        return WitnessCheck(witness.name, False, None, f"{witness.name} is missing")
    try:
        found = audit_witness(witness, db_notes(session))
    except WitnessError as exc:
        return WitnessCheck(witness.name, False, None, str(exc))
    problems = [found.torn_tail] if found.torn_tail else []
    if found.newest is not None and found.newest_size is not None:
        if db_size is not None and found.newest_size < db_size:
            problems.append(
                f"{witness.name}: its newest checkpoint (tree size {found.newest_size}) is older than "
                f"the database's ({db_size}): entries lost"
            )
        newer = found.newest_size > head_seq + 1 and found.newest_size <= committed_head(session) + 1
        problem = None if newer else _note_problem(session, found.newest, head_seq, persisted)
        if problem:
            problems.append(f"{witness.name}: newest checkpoint, tree size {found.newest_size}: {problem}")
    elif db_size is not None:
        problems.append(f"{witness.name} holds no checkpoint but the database does")
    problems += found.problems
    return WitnessCheck(
        witness.name, not problems, found.newest_size, "; ".join(problems) or None, found.notes
    )


def committed_head(session: Session) -> int:
    """The ledger's last seq as committed now, read outside `session`'s snapshot.

    A witness file is read outside the database's transaction, so its newest note may cover events
    committed after this session's snapshot began (a SQLite read snapshot, or a head read a moment
    before on PostgreSQL while another process appended and signed). Such a note is newer than this
    reading, not evidence of a removed tail: the next verification checks it. A tail really removed
    is missing from the committed ledger too, so it is still reported."""
    from audit.db import read_scope

    with read_scope(session.get_bind()) as fresh:
        seq, _ = ledger.head(fresh)
    return seq


def _note_problem(session: Session, note: str, head_seq: int, persisted: bool = True) -> str | None:
    """Why the ledger does not match a signed note (None when it does)."""
    try:
        signed = verify_note(note)
    except CheckpointError as exc:
        return f"signature: {exc}"
    return ledger_mismatch(session, signed, head_seq, persisted=persisted)


def ledger_mismatch(
    session: Session, signed: SignedCheckpoint, head_seq: int, *, persisted: bool = True
) -> str | None:
    """The ledger still has the signed tree: its length, its chain hash and its Merkle root."""
    size = signed.tree_size
    if size == 0:
        return None if signed.root_hash == EMPTY_ROOT else "an empty tree with a non-empty root"
    if head_seq + 1 < size:
        return f"the ledger ends at seq {head_seq} but the checkpoint covers {size} events (tail removed)"
    if _chain_at(session, size - 1) != signed.chain_hash:
        return f"chain hash at seq {size - 1} differs"
    try:
        root = merkle_root_at(session, size, persisted=persisted)
    except CheckpointError as exc:
        return str(exc)
    if root != signed.root_hash:
        return "Merkle root differs from the signed checkpoint"
    return None


def trusted_start(session: Session) -> tuple[int, bytes]:
    """(tree size, chain hash) of the latest checkpoint whose signature verifies, from which an
    incremental verification can start; (0, zeros) when there is none. Raises CheckpointError when
    the latest checkpoint's signature does not verify."""
    last = latest(session)
    if last is None:
        return 0, ZERO_HASH
    signed = verify_note(last.note)
    return signed.tree_size, signed.chain_hash or ZERO_HASH


class Checkpointer:
    """Signs a checkpoint every `interval` seconds while events arrive (a daemon thread), when this
    process is the elected signer (`audit.ledger.signer`; always on SQLite). An idle tick is one
    read-only transaction that reads the head and the newest checkpoint's size."""

    QUIET_SECONDS = 60.0  # repeat the same failure in the log at most this often

    def __init__(self, interval: float | None = None) -> None:
        self.interval = interval if interval is not None else get_settings().checkpoint_interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="checkpointer", daemon=True)
        self._last_error: tuple[str, float] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from audit.ledger.signer import lease

        while not self._stop.wait(self.interval):
            try:
                if lease().held():
                    create_in_own_transaction()
                self._last_error = None
            except Exception as exc:  # keep signing later; the failure is logged, the ledger is untouched
                self._log(exc)

    def _log(self, exc: Exception) -> None:
        now, text = time.monotonic(), f"{type(exc).__name__}: {exc}"
        last = self._last_error
        if last and last[0] == text and now - last[1] < self.QUIET_SECONDS:
            return
        self._last_error = (text, now)
        log.error("checkpoint not signed: %s", text, exc_info=not isinstance(exc, WitnessError))
