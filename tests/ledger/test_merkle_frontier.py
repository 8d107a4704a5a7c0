"""The Merkle frontier stored with each checkpoint (`merkle_frontier`, revision 0009): a new process
extends the root from it instead of re-reading every leaf, and it never weakens tamper evidence (only
a frontier that folds to the signed root is used; full verification recomputes every stored one)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.db import make_engine
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from audit.ledger.merkle import MerkleBuilder, merkle_root
from audit.ledger.verification import FULL, INCREMENTAL, verify_ledger
from audit.migrate import downgrade, upgrade
from audit.uow import unit_of_work


def _append(engine: Engine, n: int) -> None:
    with unit_of_work(engine) as s:
        ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * n)


def _leaves(engine: Engine) -> list[bytes]:
    with engine.connect() as conn:
        return [bytes(r[0]) for r in conn.execute(text("SELECT leaf_hash FROM ledger_event ORDER BY seq"))]


def _verify(engine: Engine, checks: str):  # type: ignore[no-untyped-def]
    checkpoints._frontier.clear()  # as a new process
    with Session(engine) as session:
        return verify_ledger(session, checks=checks)


@pytest.fixture
def signed(committed: Engine) -> Iterator[Engine]:
    """Committed events (the `committed` fixture's 5, then 6 more) with a checkpoint over all 11."""
    _append(committed, 6)
    checkpoints._frontier.clear()
    assert checkpoints.create_in_own_transaction(committed) is not None
    yield committed
    checkpoints._frontier.clear()


@contextmanager
def _leaf_rereads(engine: Engine) -> Iterator[list[int]]:
    """The first seq of every read of leaf hashes for a Merkle root, as they are run."""
    seen: list[int] = []

    def record(conn, cursor, statement, parameters, *args):  # type: ignore[no-untyped-def]
        if "leaf_hash" in statement and "chain_hash" in statement and "payload" not in statement:
            seen.append(parameters["seq_1"] if isinstance(parameters, dict) else parameters[1])

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def test_a_checkpoint_stores_the_right_edge_of_its_tree(signed: Engine) -> None:
    with signed.connect() as conn:
        rows = conn.execute(text("SELECT tree_size, nodes FROM merkle_frontier")).all()
    assert [int(r[0]) for r in rows] == [11]
    stored = MerkleBuilder.from_frontier(11, bytes(rows[0][1]))
    assert len(bytes(rows[0][1])) == 32 * 3  # 11 = 8 + 2 + 1: three subtree roots
    leaves = _leaves(signed)
    assert stored.root() == merkle_root(leaves)  # the independent whole-tree root
    stored.extend(leaves[:4])  # and it goes on growing like a builder fed every leaf
    assert stored.root() == merkle_root(leaves + leaves[:4])


def test_a_new_process_starts_from_the_stored_frontier(signed: Engine) -> None:
    _append(signed, 7)
    with _leaf_rereads(signed) as rereads:
        result = _verify(signed, INCREMENTAL)
        assert result.ok and result.events_checked == 7, result.problems
        assert rereads == []  # the signed tree of 11 was not rebuilt from its leaves
        checkpoints._frontier.clear()
        assert checkpoints.create_in_own_transaction(signed) is not None  # nor to sign the next one
        assert rereads == [11]  # only the 7 new leaves were read
    with signed.connect() as conn:
        sizes = [int(r[0]) for r in conn.execute(text("SELECT tree_size FROM merkle_frontier ORDER BY 1"))]
        root = conn.execute(text("SELECT root_hash FROM checkpoint WHERE tree_size = 18")).scalar_one()
    assert sizes == [11, 18] and bytes(root) == merkle_root(_leaves(signed))
    assert _verify(signed, FULL).ok


@pytest.mark.parametrize("forged", ["other roots", "wrong length"])
def test_a_forged_frontier_is_not_trusted_and_full_verification_names_it(signed: Engine, forged: str) -> None:
    with signed.begin() as conn:
        nodes = bytes(conn.execute(text("SELECT nodes FROM merkle_frontier")).scalar_one())
        bad = bytes(32) + nodes[32:] if forged == "other roots" else nodes + bytes(32)
        conn.execute(text("UPDATE merkle_frontier SET nodes = :n"), {"n": bad})
    _append(signed, 3)
    with Session(signed) as session:
        assert checkpoints.trusted_frontier(session, 100) is None  # does not fold to the signed root
    with _leaf_rereads(signed) as rereads:
        incremental = _verify(signed, INCREMENTAL)
        assert rereads  # the root was rebuilt from the leaves instead, and the frontier is named
    assert incremental.checkpoint.ok and incremental.events_checked == 3
    assert [(p.table, p.id, p.field) for p in incremental.problems] == [("merkle_frontier", "11", "nodes")]
    full = _verify(signed, FULL)
    assert not full.ok
    assert [(p.table, p.id, p.field) for p in full.problems] == [("merkle_frontier", "11", "nodes")]


def test_a_frontier_at_an_unsigned_size_is_not_used_and_is_named_when_wrong(signed: Engine) -> None:
    """A frontier row under a size no checkpoint signed is never used, and full verification names
    it when it is not that tree's right edge."""
    with signed.begin() as conn:
        nodes = bytes(conn.execute(text("SELECT nodes FROM merkle_frontier")).scalar_one())
        conn.execute(
            text("INSERT INTO merkle_frontier (log_id, tree_size, nodes, created_at) "
                 "SELECT log_id, 10, :n, created_at FROM merkle_frontier"),
            {"n": nodes[32:]},  # two 32-byte nodes, as a tree of 10 has, but not its own
        )  # fmt: skip
    with Session(signed) as session:
        assert checkpoints.trusted_frontier(session, 10) is None  # no checkpoint signed tree size 10
        builder, _ = checkpoints.trusted_frontier(session, 11) or (None, None)
        assert builder is not None and builder.size == 11
    full = _verify(signed, FULL)
    assert [(p.table, p.id) for p in full.problems] == [("merkle_frontier", "10")]


def test_0009_upgrades_from_the_previous_head_0008_with_data_and_downgrades(fresh_db_url: str) -> None:
    upgrade(fresh_db_url, "0008_imports")
    engine = make_engine(fresh_db_url)
    _append(engine, 4)
    upgrade(fresh_db_url)
    assert "merkle_frontier" in inspect(engine).get_table_names()
    assert _verify(engine, FULL).ok  # no frontier yet: nothing to compare, the root from the leaves
    assert checkpoints.create_in_own_transaction(engine) is not None
    _append(engine, 2)
    assert _verify(engine, INCREMENTAL).ok and _verify(engine, FULL).ok
    engine.dispose()
    downgrade(fresh_db_url, "0008_imports")
    engine = make_engine(fresh_db_url)
    assert "merkle_frontier" not in inspect(engine).get_table_names()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM ledger_event")).scalar_one() == 6
    engine.dispose()
    upgrade(fresh_db_url)
