"""The ledger's fixed hashing format (DESIGN.md section 5).

Pure functions only: no session, no clock. External verifiers re-implement exactly this, so any
change here breaks every exported bundle and every checkpoint ever signed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
CHAIN_PREFIX = b"\x02"
_SEQ = struct.Struct(">Q")


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept as is. Floats are refused."""
    _refuse_floats(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


_PLAIN = frozenset((str, int, bool, type(None)))


def _refuse_floats(obj: Any) -> None:
    """TypeError on any float inside `obj` (dicts' values, lists, tuples). A recursive walk that
    skips plain values by their exact type: three times faster than the loop below, which stays for
    a structure nested deeper than the recursion limit."""
    try:
        _refuse_floats_within(obj)
    except RecursionError:
        _refuse_floats_deep(obj)


def _refuse_floats_within(obj: Any) -> None:
    kind = type(obj)
    if kind in _PLAIN:
        return
    if kind is dict or isinstance(obj, dict):
        for value in obj.values():
            if type(value) not in _PLAIN:
                _refuse_floats_within(value)
    elif kind is list or kind is tuple or isinstance(obj, list | tuple):
        for value in obj:
            if type(value) not in _PLAIN:
                _refuse_floats_within(value)
    elif isinstance(obj, float):
        raise TypeError("floats are not allowed in ledger payloads; use strings")


def _refuse_floats_deep(obj: Any) -> None:
    pending = [obj]
    while pending:
        value = pending.pop()
        if isinstance(value, float):
            raise TypeError("floats are not allowed in ledger payloads; use strings")
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)


def rfc3339(moment: datetime) -> str:
    """UTC RFC 3339 with a `Z` suffix and microseconds, as every payload timestamp is written."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_hash(payload: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + payload).digest()


def chain_hash(previous: bytes, seq: int, leaf: bytes) -> bytes:
    return hashlib.sha256(CHAIN_PREFIX + previous + struct.pack(">Q", seq) + leaf).digest()


@dataclass(frozen=True)
class StoredEvent:
    seq: int
    payload: bytes
    leaf_hash: bytes
    chain_hash: bytes


@dataclass
class VerifyResult:
    ok: bool
    events_checked: int
    head_seq: int | None
    chain_hash: bytes
    first_bad_seq: int | None = None
    problem: str | None = None


def verify_chain(
    rows: Iterable[StoredEvent],
    *,
    start_seq: int = 0,
    previous_chain: bytes = ZERO_HASH,
    log_id: str | None = None,
) -> VerifyResult:
    """Recompute every hash in order and report the first row that does not fit.

    Catches edited payloads (leaf mismatch), edited hashes, reordered, inserted or deleted rows
    (seq gaps and chain mismatch) and payloads whose own `seq` or `log_id` disagree with the row.
    `start_seq` and `previous_chain` allow incremental verification from a trusted checkpoint.
    """
    walker = ChainWalker(start_seq=start_seq, previous_chain=previous_chain, log_id=log_id)
    for row in rows:
        if not walker.step(row.seq, row.payload, row.leaf_hash, row.chain_hash, parse_payload(row.payload)):
            break
    return walker.result()


INVALID = object()  # what parse_payload returns for bytes that are not JSON


_decode = msgspec.json.Decoder().decode


def parse_payload(payload: bytes) -> Any:
    """The payload as JSON, or INVALID. msgspec parses about three times faster than the standard
    library, which is most of a verification's time, with the same values (integers of any size
    included); what it refuses (NaN, infinities, lone surrogates) goes to the standard parser, so
    both accept exactly the same payloads and read them alike."""
    try:
        return _decode(payload)
    except msgspec.DecodeError:
        pass
    try:
        return json.loads(payload)
    except ValueError:
        return INVALID


class ChainWalker:
    """`verify_chain` one row at a time, for a caller that also reads each payload (parsed once).

    `step` returns False at the first row that does not fit; later rows are not checked (after an
    insertion or deletion every later row would fail for the same reason).
    """

    def __init__(
        self, *, start_seq: int = 0, previous_chain: bytes = ZERO_HASH, log_id: str | None = None
    ) -> None:
        self.start_seq = start_seq
        self.expected_seq = start_seq
        self.prev = previous_chain
        self.log_id = log_id
        self.checked = 0
        self.failure: VerifyResult | None = None

    def step(self, seq: int, payload: bytes, leaf_hash: bytes, chain_hash: bytes, body: Any) -> bool:
        if self.failure is not None:
            return False
        head = self.expected_seq - 1 if self.checked else None
        if seq != self.expected_seq:
            self._fail(
                head, min(seq, self.expected_seq), f"expected seq {self.expected_seq}, found seq {seq}"
            )
            return False
        leaf = hashlib.sha256(LEAF_PREFIX + payload).digest()
        if leaf != leaf_hash:
            problem: str | None = "payload does not match its leaf hash"
        elif hashlib.sha256(CHAIN_PREFIX + self.prev + struct.pack(">Q", seq) + leaf).digest() != chain_hash:
            problem = "chain hash does not follow from the previous event"
        else:
            problem = _payload_identity_problem(seq, body, self.log_id)
        if problem:
            self._fail(head, seq, problem)
            return False
        self.prev = chain_hash
        self.expected_seq += 1
        self.checked += 1
        return True

    def walk(self, rows: Sequence[Sequence[Any]], leaves: list[bytes]) -> list[Any]:
        """`step` over a page of rows (seq, payload, leaf hash, chain hash, ...) in one tight loop:
        returns the parsed payloads of the rows that fit, in order, and appends their leaf hashes to
        `leaves`; stops at the first row that does not fit (then `result()` names it)."""
        bodies: list[Any] = []
        if self.failure is not None:
            return bodies
        sha, pack, log_id = hashlib.sha256, _SEQ.pack, self.log_id
        expected, prev = self.expected_seq, self.prev
        add_body, add_leaf = bodies.append, leaves.append
        for row in rows:
            seq, payload = row[0], row[1]
            if seq != expected:
                break
            leaf = sha(LEAF_PREFIX + payload).digest()
            if leaf != row[2] or sha(CHAIN_PREFIX + prev + pack(seq) + leaf).digest() != row[3]:
                break
            body = parse_payload(payload)
            if (
                body.__class__ is not dict
                or body.get("seq") != seq
                or (log_id is not None and body.get("log_id") != log_id)
            ):
                break
            prev = row[3]
            expected += 1
            add_body(body)
            add_leaf(leaf)
        self.checked += expected - self.expected_seq
        self.expected_seq, self.prev = expected, prev
        done = len(bodies)
        if done < len(rows):  # the row that did not fit: `step` names its problem
            row = rows[done]
            body = parse_payload(bytes(row[1]))
            if self.step(row[0], bytes(row[1]), bytes(row[2]), bytes(row[3]), body):  # never expected
                add_body(body)
                add_leaf(bytes(row[2]))
                bodies += self.walk(rows[done + 1 :], leaves)
        return bodies

    def _fail(self, head: int | None, bad_seq: int, problem: str) -> None:
        self.failure = VerifyResult(False, self.checked, head, self.prev, bad_seq, problem)

    def result(self) -> VerifyResult:
        if self.failure is not None:
            return self.failure
        if self.expected_seq > self.start_seq:
            head: int | None = self.expected_seq - 1
        else:
            head = self.start_seq - 1 if self.start_seq else None
        return VerifyResult(True, self.checked, head, self.prev)


def _payload_identity_problem(seq: int, body: Any, log_id: str | None) -> str | None:
    """The payload names its own seq and log, so a row moved to another position is caught."""
    if body is INVALID:
        return "payload is not valid JSON"
    if not isinstance(body, dict) or body.get("seq") != seq:
        return "payload seq differs from the row's seq"
    if log_id is not None and body.get("log_id") != log_id:
        return "payload log_id differs from the ledger's"
    return None
