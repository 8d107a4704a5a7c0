"""The ledger's fixed hashing format (DESIGN.md section 5).

Pure functions only: no session, no clock. External verifiers re-implement exactly this, so any
change here breaks every exported bundle and every checkpoint ever signed.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

ZERO_HASH = bytes(32)
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
CHAIN_PREFIX = b"\x02"


def canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, UTF-8 kept as is. Floats are refused."""
    _refuse_floats(obj)
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _refuse_floats(obj: Any) -> None:
    if isinstance(obj, float):
        raise TypeError("floats are not allowed in ledger payloads; use strings")
    if isinstance(obj, dict):
        for value in obj.values():
            _refuse_floats(value)
    elif isinstance(obj, list | tuple):
        for value in obj:
            _refuse_floats(value)


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
    expected_seq = start_seq
    prev = previous_chain
    checked = 0
    sha256 = hashlib.sha256
    pack = struct.pack
    for row in rows:
        problem = None
        if row.seq != expected_seq:
            problem = f"expected seq {expected_seq}, found seq {row.seq}"
            bad = min(row.seq, expected_seq)
            return VerifyResult(False, checked, expected_seq - 1 if checked else None, prev, bad, problem)
        leaf = sha256(LEAF_PREFIX + row.payload).digest()
        if leaf != row.leaf_hash:
            problem = "payload does not match its leaf hash"
        else:
            chained = sha256(CHAIN_PREFIX + prev + pack(">Q", row.seq) + leaf).digest()
            if chained != row.chain_hash:
                problem = "chain hash does not follow from the previous event"
            else:
                problem = _payload_identity_problem(row, log_id)
        if problem:
            return VerifyResult(False, checked, row.seq - 1 if checked else None, prev, row.seq, problem)
        prev = row.chain_hash
        expected_seq += 1
        checked += 1
    head = expected_seq - 1 if expected_seq > start_seq else (start_seq - 1 if start_seq else None)
    return VerifyResult(True, checked, head, prev)


def _payload_identity_problem(row: StoredEvent, log_id: str | None) -> str | None:
    """The payload names its own seq and log, so a row moved to another position is caught."""
    try:
        body = json.loads(row.payload)
    except ValueError:
        return "payload is not valid JSON"
    if not isinstance(body, dict) or body.get("seq") != row.seq:
        return "payload seq differs from the row's seq"
    if log_id is not None and body.get("log_id") != log_id:
        return "payload log_id differs from the ledger's"
    return None
