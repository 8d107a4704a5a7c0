"""GET /api/v1/audit/consistency and /checkpoints: answers checked by our verifier and by a
brute-force recomputation written straight from RFC 9162 section 2.1 (recursive MTH and SUBPROOF over
the leaf hashes read back from the database), and the refusals."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text
from sqlalchemy.engine import Connection

from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.checkpoint import parse_and_verify_note, parse_public_key_text
from audit.ledger.events import Actor, EventDraft
from audit.ledger.merkle import verify_consistency
from tests.conftest import People
from tests.support import IS_POSTGRES

API = "/api/v1/audit"


# RFC 9162 2.1.1 and 2.1.4.1, transcribed literally (recursive, slicing lists): the reference.
def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]  # the inputs are already leaf hashes SHA-256(0x00 || entry)
    k = 1 << ((n - 1).bit_length() - 1)
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1 << ((n - 1).bit_length() - 1)
    if m <= k:
        return [*subproof(m, d[:k], b), mth(d[k:])]
    return [*subproof(m - k, d[k:], False), mth(d[:k])]


def reference_proof(m: int, d: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(d)) else subproof(m, d, True)


def stored_leaves(connection: Connection) -> list[bytes]:
    rows = connection.execute(select(ledger.LEDGER.c.leaf_hash).order_by(ledger.LEDGER.c.seq))
    return [bytes(r[0]) for r in rows]


def grow(uow: Callable[[], Any], connection: Connection, sizes: list[int]) -> None:
    """Append events until the ledger has each size in turn, signing a checkpoint at each."""
    for size in sizes:
        with uow() as s:
            have = ledger.head(s)[0] + 1
            ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * (size - have))
        made = checkpoints.create_in_own_transaction(connection)
        assert made is not None and made.tree_size == size


def ledger_size(uow: Callable[[], Any]) -> int:
    with uow() as s:
        return ledger.head(s)[0] + 1


@pytest.fixture
def officer(people: People) -> dict[str, str]:
    return people.headers(people.make("compliance"))


def test_every_proof_verifies_and_matches_a_brute_force_recomputation(
    client: TestClient,
    connection: Connection,
    uow: Callable[[], Any],
    officer: dict[str, str],
) -> None:
    start = ledger_size(uow)
    sizes = [start + 1, start + 2, start + 5, start + 8, start + 13]
    grow(uow, connection, sizes)
    leaves = stored_leaves(connection)[: sizes[-1]]
    second_values = sorted({*sizes, sizes[-1] - 1, 1, 2, 3})
    for second in second_values:
        for first in range(0, second + 1):
            answer = client.get(f"{API}/consistency?first={first}&second={second}", headers=officer)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            proof = [bytes.fromhex(h) for h in body["proof"]]
            root1, root2 = bytes.fromhex(body["first_root"]), bytes.fromhex(body["second_root"])
            assert (body["first"], body["second"], body["encoding"]) == (first, second, "hex")
            assert verify_consistency(first, second, proof, root1, root2)
            assert root1 == mth(leaves[:first]) and root2 == mth(leaves[:second])
            assert proof == reference_proof(first, leaves[:second])
            if first < second and proof:  # a proof for another pair of sizes does not verify
                assert not verify_consistency(first, second, proof[:-1], root1, root2)


def test_the_proof_links_two_signed_notes(
    client: TestClient,
    connection: Connection,
    uow: Callable[[], Any],
    officer: dict[str, str],
) -> None:
    start = ledger_size(uow)
    old, new = start + 3, start + 9
    grow(uow, connection, [old, new])
    name, key = parse_public_key_text(client.get(f"{API}/public-key").text)
    old_note = client.get(f"{API}/checkpoints?tree_size={old}", headers=officer)
    assert old_note.status_code == 200 and old_note.headers["content-type"].startswith("text/plain")
    held = parse_and_verify_note(old_note.text, name, key)  # what an auditor saved back then
    body = client.get(f"{API}/consistency?first={old}&second={new}", headers=officer).json()
    newer = parse_and_verify_note(body["second_checkpoint"], name, key)
    assert body["first_checkpoint"] == old_note.text
    proof = [bytes.fromhex(h) for h in body["proof"]]
    assert verify_consistency(held.tree_size, newer.tree_size, proof, held.root_hash, newer.root_hash)
    missing = client.get(f"{API}/checkpoints?tree_size={old + 1}", headers=officer)
    assert missing.status_code == 404 and missing.json()["field"] == "tree_size"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("first=3&second=2", "first"),
        ("first=0&second=999999", "second"),
        ("first=-1&second=2", "first"),
        ("first=1&second=1000000000000000000000000000000", "second"),
        ("first=x&second=2", "first"),
        ("second=2", "first"),
        ("first=1", "second"),
    ],
)
def test_bad_sizes_are_422_naming_the_field(
    client: TestClient,
    connection: Connection,
    uow: Callable[[], Any],
    officer: dict[str, str],
    query: str,
    field: str,
) -> None:
    grow(uow, connection, [ledger_size(uow) + 4])
    answer = client.get(f"{API}/consistency?{query}", headers=officer)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "InvalidInput" and answer.json()["field"] == field


def events_of(connection: Connection, kind: str) -> list[tuple[str, str | None]]:
    table = ledger.LEDGER
    rows = connection.execute(
        select(table.c.outcome, table.c.actor_id).where(table.c.type == kind).order_by(table.c.seq)
    )
    return [(r[0], r[1]) for r in rows]


def test_readers_are_compliance_and_engaged_auditors_and_every_answer_is_an_event(
    client: TestClient, people: People, connection: Connection, uow: Callable[[], Any]
) -> None:
    officer, auditor, coder = people.make("compliance"), people.make("auditor"), people.make("coder")
    ho, ha, hc = people.headers(officer), people.headers(auditor), people.headers(coder)
    grow(uow, connection, [ledger_size(uow) + 2])
    url = f"{API}/consistency?first=1&second=2"
    assert client.get(url, headers=ho).status_code == 200
    refused = client.get(url, headers=ha)  # no engagement yet
    assert refused.status_code == 403 and refused.json()["rule_ids"] == ["default.deny"]
    assert client.get(url, headers=hc).status_code == 403
    assert client.get(url).status_code == 401
    people.engage(auditor, officer)
    assert client.get(url, headers=ha).status_code == 200
    assert events_of(connection, "audit.consistency") == [
        ("allowed", officer.id),
        ("denied", auditor.id),
        ("denied", coder.id),
        ("allowed", auditor.id),
    ]


def test_a_ledger_with_a_hole_cannot_prove_and_says_so(
    client: TestClient, connection: Connection, uow: Callable[[], Any], officer: dict[str, str]
) -> None:
    size = ledger_size(uow) + 6
    grow(uow, connection, [size])
    if IS_POSTGRES:
        connection.execute(text("DROP TRIGGER ledger_event_no_update_delete ON ledger_event"))
    else:
        connection.execute(text("DROP TRIGGER ledger_event_no_delete"))
    connection.execute(text("DELETE FROM ledger_event WHERE seq = :s"), {"s": size - 3})
    answer = client.get(f"{API}/consistency?first=1&second={size}", headers=officer)
    assert answer.status_code == 409, answer.text
    assert f"the ledger cannot prove tree size {size}" in answer.json()["detail"]
