"""Tampering behind the service's back is caught by `audit verify`; concurrent writers keep one chain."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit.db import make_engine
from audit.ledger.chain import canonical_json, leaf_hash
from audit.migrate import upgrade
from tests.support import IS_POSTGRES, run_cli

EVENTS = 10


@pytest.fixture
def tamperable(fresh_db_url: str, tmp_path: Path) -> Iterator[tuple[str, Engine]]:
    """A fresh ledger of EVENTS events written by a separate process, with its guards dropped."""
    upgrade(fresh_db_url)
    writer = _append_in_process(fresh_db_url, EVENTS)
    assert writer.wait(timeout=120) == 0
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        if IS_POSTGRES:
            conn.execute(text("DROP TRIGGER ledger_event_no_update_delete ON ledger_event"))
        else:
            for name in ("no_update", "no_delete", "no_replace"):
                conn.execute(text(f"DROP TRIGGER ledger_event_{name}"))
    yield fresh_db_url, engine
    engine.dispose()


def _append_in_process(url: str, n: int, tag: str = "w") -> subprocess.Popen[str]:
    script = (
        "from audit.uow import unit_of_work\n"
        "from audit.ledger import service as ledger\n"
        "from audit.ledger.events import Actor, EventDraft\n"
        f"for i in range({n}):\n"
        "    with unit_of_work() as s:\n"
        f"        draft = EventDraft(type='test.{tag}', actor=Actor(None, 'test', '{tag}'),"
        f" subject_type='writer', subject_id='{tag}', reason=str(i))\n"
        "        ledger.append_one(s, draft)\n"
    )
    env = {**os.environ, "AUDIT_DATABASE_URL": url}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env, text=True, stderr=subprocess.PIPE)
    return proc


def _verify(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli(["verify"], url, tmp_path)


def _edit_payload(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    payload = bytes(
        conn.execute(text("SELECT payload FROM ledger_event WHERE seq = :s"), {"s": seq}).scalar_one()
    )
    conn.execute(
        text("UPDATE ledger_event SET payload = :p WHERE seq = :s"),
        {"p": payload.replace(b'"reason":"', b'"reason":"X'), "s": seq},
    )


def _delete(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(text("DELETE FROM ledger_event WHERE seq = :s"), {"s": seq})


def _swap(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    """Reorder two events: exchange every column but seq between rows seq and seq+1."""
    cols = "event_id, payload, leaf_hash, chain_hash"
    a = conn.execute(text(f"SELECT {cols} FROM ledger_event WHERE seq = :s"), {"s": seq}).one()
    b = conn.execute(text(f"SELECT {cols} FROM ledger_event WHERE seq = :s"), {"s": seq + 1}).one()
    conn.execute(
        text("UPDATE ledger_event SET event_id = 'tmp-' || seq WHERE seq IN (:a, :b)"),
        {"a": seq, "b": seq + 1},
    )
    for row, target in ((b, seq), (a, seq + 1)):
        conn.execute(
            text("UPDATE ledger_event SET event_id=:e, payload=:p, leaf_hash=:l, chain_hash=:c WHERE seq=:s"),
            {"e": row[0], "p": row[1], "l": row[2], "c": row[3], "s": target},
        )


def _insert(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    """Insert a forged event at `seq`, renumbering the later rows to make room."""
    for s in range(EVENTS - 1, seq - 1, -1):
        conn.execute(text("UPDATE ledger_event SET seq = :n WHERE seq = :s"), {"n": s + 1, "s": s})
    payload = canonical_json({"log_id": "coding-audit", "seq": seq, "type": "code.add", "reason": "forged"})
    conn.execute(
        text(
            "INSERT INTO ledger_event (log_id, seq, event_id, ts, type, outcome, payload, leaf_hash,"
            " chain_hash) SELECT log_id, :s, 'forged', ts, 'code.add', 'allowed', :p, :l, chain_hash"
            " FROM ledger_event WHERE seq = :prev"
        ),
        {"s": seq, "p": payload, "l": leaf_hash(payload), "prev": seq - 1},
    )


def _edit_hash(conn, seq: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(text("UPDATE ledger_event SET chain_hash = :c WHERE seq = :s"), {"c": bytes(32), "s": seq})


TAMPERINGS: dict[str, tuple[Callable[..., None], int, int]] = {
    "edit a payload": (_edit_payload, 6, 6),
    "delete a row": (_delete, 4, 4),
    "reorder two rows": (_swap, 3, 3),
    "insert a row": (_insert, 5, 5),
    "edit a chain hash": (_edit_hash, 7, 7),
}


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_verify_names_the_first_bad_seq(name: str, tamperable: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = tamperable
    clean = _verify(url, tmp_path)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert f"{EVENTS} events" in clean.stdout
    tamper, seq, expected_bad = TAMPERINGS[name]
    with engine.begin() as conn:
        tamper(conn, seq)
    result = _verify(url, tmp_path)
    assert result.returncode == 1, result.stdout
    assert f"first bad seq {expected_bad}" in result.stdout


def test_two_processes_appending_concurrently_leave_one_gapless_chain(
    fresh_db_url: str, tmp_path: Path
) -> None:
    upgrade(fresh_db_url)
    per_writer = 60
    writers = [_append_in_process(fresh_db_url, per_writer, tag) for tag in ("a", "b")]
    for proc in writers:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        seqs = [r[0] for r in conn.execute(text("SELECT seq FROM ledger_event ORDER BY seq"))]
        writers_seen = {r[0] for r in conn.execute(text("SELECT DISTINCT subject_id FROM ledger_event"))}
    engine.dispose()
    assert seqs == list(range(2 * per_writer))
    assert writers_seen == {"a", "b"}
    result = _verify(fresh_db_url, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
