"""The witness file: every checkpoint leaves the database before its row commits, and verification
compares the ledger with the witness's newest note, so deleting a tail together with the newer
checkpoint rows, or cutting the witness, is reported."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from audit.config import get_settings
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.checkpoint import format_checkpoint, iter_notes, sign_note
from audit.ledger.events import Actor, EventDraft
from audit.ledger.witness import FileWitness, WitnessError
from audit.migrate import upgrade
from tests.support import IS_POSTGRES, run_cli

KEY = Ed25519PrivateKey.generate()
T = datetime(2026, 5, 1, tzinfo=UTC)


def note(size: int, key: Ed25519PrivateKey = KEY) -> str:
    body = format_checkpoint("coding-audit", size, bytes(32), bytes([size % 256]) * 32, T)
    return sign_note(body, "coding-audit", key)


def flat(output: str) -> str:
    """CLI output with Rich's line wrapping undone."""
    return " ".join(output.split())


def entries_of(text_: str) -> list[Any]:
    return list(iter_notes(text_.splitlines(keepends=True)))


# --------------------------------------------------------------------------------------------------
# The file format and the file witness on their own


def test_notes_split_by_blank_lines_separator_lines_or_back_to_back() -> None:
    a, b, c = note(1), note(2), note(3)
    for joined in (a + "\n" + b + "\n" + c, a + "---\n" + b + "---\n" + c, a + b + c):
        assert [e.note for e in entries_of(joined)] == [a, b, c]
    found = entries_of(a + "\n" + b + "\n" + c)
    assert [e.line for e in found] == [1, 9, 17] and all(e.problem is None for e in found)


def test_a_deleted_last_line_or_a_cut_line_is_reported() -> None:
    whole = note(1) + "\n" + note(2)
    without_last_line = "".join(whole.splitlines(keepends=True)[:-1])
    *good, bad = entries_of(without_last_line)
    assert len(good) == 1 and bad.note is None and "without its signature line" in (bad.problem or "")
    *good, bad = entries_of(whole[:-1])  # the last newline is gone
    assert bad.note is None and "cut short" in (bad.problem or "")
    stray = entries_of(note(1) + "\n\u2014 coding-audit AAAA\n")
    assert stray[-1].note is None and "without a note body" in (stray[-1].problem or "")


def test_file_witness_keeps_increasing_sizes_and_refuses_older_notes(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "w.txt")
    with pytest.raises(WitnessError, match="missing"):
        witness.append(note(3), 3, create=False)  # a missing witness is only created on a new install
    assert witness.append(note(3), 3, create=True)
    assert witness.append(note(5), 5, create=False)
    assert not witness.append(note(5), 5, create=False)  # the same size signed again elsewhere
    assert not witness.append(note(4), 4, create=False)  # older than what it holds
    assert (tmp_path / "w.txt").read_text() == note(3) + "\n" + note(5)
    assert [e.note for e in witness.entries()] == [note(3), note(5)]


def test_file_witness_finds_its_newest_note_past_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "w.txt"
    witness = FileWitness(path)
    witness.append(note(7), 7, create=True)
    with path.open("a") as fh:
        fh.write("\ncoding-audit\n9\n")  # a crash in the middle of an append
    assert not witness.append(note(6), 6, create=False)
    assert witness.append(note(8), 8, create=False)
    problems = [e.problem for e in witness.entries() if e.note is None]
    assert len(problems) == 1  # the torn entry stays visible


APPENDER = """
import sys
from pathlib import Path
from audit.ledger.witness import FileWitness
path, start, step, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
notes = Path(sys.argv[5]).read_text().split("\\x00")
witness = FileWitness(path)
for i in range(count):
    size = start + i * step
    witness.append(notes[size], size, create=True)
"""


def test_processes_appending_at_once_leave_whole_notes_in_increasing_order(tmp_path: Path) -> None:
    path, notes_file = tmp_path / "w.txt", tmp_path / "notes"
    notes_file.write_text("\x00".join(note(i) for i in range(400)))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(path), str(start), "4", "100", str(notes_file)],
            stderr=subprocess.PIPE,
            text=True,
        )
        for start in range(4)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read() if proc.stderr else ""
    found = list(FileWitness(path).entries())
    assert all(e.note is not None for e in found)
    sizes = [int(e.note.split("\n")[1]) for e in found if e.note]
    assert sizes == sorted(set(sizes)) and len(sizes) >= 100  # never an older note after a newer one
    assert all(e.note == note(s) for e, s in zip(found, sizes, strict=True))


# --------------------------------------------------------------------------------------------------
# Signing with a witness, and verification against it (the test's database, rolled back after)


def append(uow: Callable[[], Any], n: int) -> None:
    with uow() as s:
        ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * n)


def sign(connection: Connection) -> int:
    made = checkpoints.create_in_own_transaction(connection)
    assert made is not None
    return made.tree_size


def check(uow: Callable[[], Any]) -> checkpoints.CheckpointCheck:
    with uow() as s:
        return checkpoints.check_against_latest(s)


def drop_guards(connection: Connection) -> None:
    """An insider with the database's owner rights (inside the test's transaction, rolled back)."""
    for table in ("ledger_event", "checkpoint"):
        if IS_POSTGRES:
            connection.execute(text(f"DROP TRIGGER {table}_no_update_delete ON {table}"))
        else:
            connection.execute(text(f"DROP TRIGGER {table}_no_delete"))


def test_every_checkpoint_is_in_the_witness_before_its_row(
    connection: Connection, uow: Callable[[], Any], witness_file: Path
) -> None:
    assert not witness_file.exists() and check(uow).ok  # a new install: nothing signed yet
    append(uow, 3)
    first = sign(connection)
    append(uow, 2)
    second = sign(connection)
    assert checkpoints.create_in_own_transaction(connection) is None  # the head has not moved
    with uow() as s:
        notes = [n for _, n in checkpoints.db_notes(s)]
    assert (first, second) == (3, 5)
    assert witness_file.read_text() == "\n".join(notes)
    result = check(uow)
    assert result.ok and result.tree_size == 5
    assert [(w.ok, w.tree_size, w.notes) for w in result.witnesses] == [(True, 5, 2)]


def test_a_session_with_its_own_uncommitted_events_signs_nothing(
    uow: Callable[[], Any], witness_file: Path
) -> None:
    append(uow, 2)
    tick = EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))
    with uow() as s:
        ledger.append_now(s, tick)
        assert checkpoints.create(s) is None  # its head could still roll back
    with uow() as s:
        ledger.append_one(s, tick)  # held until the unit's work is done: the head is still committed
        made = checkpoints.create(s)
        assert made is not None and made.tree_size == 3
    with uow() as s:
        made = checkpoints.create(s)
        assert made is not None and made.tree_size == 4
    assert witness_file.exists()


def test_a_witnessed_checkpoint_whose_row_rolled_back_is_recorded_later(
    connection: Connection, uow: Callable[[], Any], witness_file: Path
) -> None:
    append(uow, 3)
    with pytest.raises(RuntimeError), uow() as s:  # e.g. an export that failed after signing
        made = checkpoints.create(s)
        assert made is not None
        raise RuntimeError("the request failed")
    witnessed = witness_file.read_text()
    with uow() as s:
        assert checkpoints.latest(s) is None
    again = checkpoints.create_in_own_transaction(connection)  # the same head: the witness's note
    assert again is not None and again.note == witnessed and witness_file.read_text() == witnessed
    assert check(uow).ok


def test_deleting_a_tail_with_its_checkpoint_rows_is_caught_by_the_witness(
    connection: Connection, uow: Callable[[], Any]
) -> None:
    append(uow, 4)
    kept = sign(connection)
    append(uow, 3)
    sign(connection)
    drop_guards(connection)
    connection.execute(text("DELETE FROM ledger_event WHERE seq >= :s"), {"s": kept})
    connection.execute(text("DELETE FROM checkpoint WHERE tree_size > :s"), {"s": kept})
    result = check(uow)
    assert not result.ok
    with uow() as s:  # the database alone would not notice: its own newest checkpoint still matches
        assert ledger.verify(s).ok
        last = checkpoints.latest(s)
        assert last is not None and last.tree_size == kept
    (witness,) = result.witnesses
    assert not witness.ok and witness.tree_size == 7
    assert "newest checkpoint, tree size 7: the ledger ends at seq 3" in (result.problem or "")
    assert "tail removed" in (result.problem or "")


def test_a_deleted_last_line_of_the_witness_is_reported(
    connection: Connection, uow: Callable[[], Any], witness_file: Path
) -> None:
    append(uow, 2)
    sign(connection)
    append(uow, 2)
    sign(connection)
    lines = witness_file.read_text().splitlines(keepends=True)
    witness_file.write_text("".join(lines[:-1]))
    result = check(uow)
    assert not result.ok
    assert (result.problem or "").startswith(
        f"witness file {witness_file}: its last entry is not a signed note (line 9: "
    )
    assert "tree size 4 is not in it" in (result.problem or "")


def test_a_witness_that_lost_its_newest_notes_is_reported(
    connection: Connection, uow: Callable[[], Any], witness_file: Path
) -> None:
    for n in (2, 1, 1):
        append(uow, n)
        sign(connection)
    notes = [e.note for e in FileWitness(witness_file).entries()]
    witness_file.write_text("\n".join(str(n) for n in notes[:1]))  # an older copy put back
    result = check(uow)
    assert not result.ok
    assert "its newest checkpoint (tree size 2) is older than the database's (4): entries lost" in (
        result.problem or ""
    )
    assert "the database's checkpoint at tree size 3 and 1 more is not in it" in (result.problem or "")


def test_a_note_edited_in_the_witness_or_signed_by_another_key_is_reported(
    connection: Connection, uow: Callable[[], Any], witness_file: Path
) -> None:
    append(uow, 2)
    sign(connection)
    with witness_file.open("a") as fh:  # a forged newest note with a matching shape
        body = format_checkpoint("coding-audit", 9, bytes(32), bytes(32), T)
        fh.write("\n" + sign_note(body, "coding-audit", KEY))
    problem = check(uow).problem or ""
    assert "newest checkpoint, tree size 9: signature: wrong key" in problem


def test_a_missing_witness_stops_signing_until_it_is_restored_or_started_again(
    connection: Connection, uow: Callable[[], Any], witness_file: Path
) -> None:
    append(uow, 2)
    sign(connection)
    saved = witness_file.read_text()
    witness_file.unlink()
    assert "is missing" in (check(uow).problem or "")
    append(uow, 1)
    with pytest.raises(WitnessError, match="audit witness init"):
        checkpoints.create_in_own_transaction(connection)
    with uow() as s:
        assert checkpoints.start_witnesses(s) == {f"witness file {witness_file}": 1}
        assert checkpoints.start_witnesses(s) == {}  # it exists now: nothing to adopt
    assert witness_file.read_text() == saved
    assert sign(connection) == 3 and check(uow).ok


@pytest.mark.skipif(IS_POSTGRES, reason="SQLite's database write lock")
def test_the_timer_reads_without_taking_the_sqlite_write_lock(fresh_db_url: str) -> None:
    import sqlite3

    from audit.db import make_engine, read_scope

    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with read_scope(engine) as s:
        ledger.head(s)
        checkpoints.latest(s)
        other = sqlite3.connect(fresh_db_url.removeprefix("sqlite:///"), timeout=0.2)
        other.isolation_level = None
        other.execute("BEGIN IMMEDIATE")  # would raise "database is locked" under BEGIN IMMEDIATE
        other.execute("ROLLBACK")
        other.close()
    engine.dispose()


def test_production_refuses_to_start_without_a_usable_witness(
    committed: Engine, fresh_db_url: str, tmp_path: Path, witness_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from audit.main import create_app

    def refused(match: str, witness: Path) -> None:
        monkeypatch.setenv("AUDIT_WITNESS_FILE", str(witness))
        get_settings.cache_clear()
        with pytest.raises(RuntimeError, match=match), TestClient(create_app()):
            pass

    monkeypatch.setenv("AUDIT_ENV", "production")
    monkeypatch.setenv("AUDIT_SECRET_KEY", "a real production secret for this test")
    monkeypatch.setenv("AUDIT_LOG_ORIGIN", "audit.example.org/coding-audit")
    monkeypatch.setenv("AUDIT_DATABASE_URL", fresh_db_url)
    refused("refusing to start: cannot create .* not a writable folder", tmp_path / "no-dir" / "w.txt")
    refused("refusing to start: .* is not a regular file", tmp_path)  # a folder where the file goes
    monkeypatch.setenv("AUDIT_WITNESS_FILE", str(witness_file))
    get_settings.cache_clear()
    assert checkpoints.create_in_own_transaction(committed) is not None
    witness_file.unlink()
    refused("refusing to start: .* is missing while the database holds checkpoints", witness_file)
    started = run_cli(["witness", "init"], fresh_db_url, tmp_path)
    assert started.returncode == 0 and "with 1 checkpoints" in flat(started.stdout), started.stdout
    get_settings.cache_clear()
    with TestClient(create_app()):  # starts again
        pass


def test_cli_verify_names_a_cut_witness(
    committed: Engine, fresh_db_url: str, tmp_path: Path, witness_file: Path
) -> None:
    checkpoints.create_in_own_transaction(committed)
    lines = witness_file.read_text().splitlines(keepends=True)
    witness_file.write_text("".join(lines[:-1]))
    result = run_cli(["verify"], fresh_db_url, tmp_path)
    assert result.returncode == 1
    assert "its last entry is not a signed note" in flat(result.stdout), result.stdout


def test_an_unwritable_witness_is_a_503_and_nothing_is_signed(
    client: TestClient, people: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    headers = people.headers(people.make("compliance"))
    monkeypatch.setenv("AUDIT_WITNESS_FILE", str(tmp_path))  # a folder where the file should be
    get_settings.cache_clear()
    answer = client.get("/api/v1/audit/checkpoint", headers=headers)
    assert answer.status_code == 503 and answer.json()["error"] == "WitnessUnavailable", answer.text
    assert "is a directory" in answer.json()["detail"].lower()
    assert client.post("/api/v1/exports", headers=headers, json={}).status_code == 503


def test_the_interval_is_a_setting_of_one_second_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    assert checkpoints.Checkpointer().interval == 1.0
    monkeypatch.setenv("AUDIT_CHECKPOINT_INTERVAL", "0.25")
    get_settings.cache_clear()
    assert checkpoints.Checkpointer().interval == 0.25
    monkeypatch.setenv("AUDIT_CHECKPOINT_INTERVAL", "0")
    get_settings.cache_clear()
    with pytest.raises(ValidationError, match="checkpoint_interval"):
        get_settings()
    get_settings.cache_clear()


def test_the_old_compliance_yaml_interval_is_refused_with_where_it_went(tmp_path: Path) -> None:
    from audit.config import default_policies_dir
    from audit.policy.compliance import PolicyError, load_compliance

    text_ = (default_policies_dir() / "compliance.yaml").read_text()
    old = tmp_path / "compliance.yaml"
    old.write_text(text_ + "checkpoint:\n  interval_seconds: 60\n")
    with pytest.raises(PolicyError, match="moved to the AUDIT_CHECKPOINT_INTERVAL setting"):
        load_compliance(old)


def test_a_note_signed_after_the_reading_began_is_not_a_removed_tail(committed: Engine) -> None:
    """The dashboard verifies inside a request's snapshot while other requests append and the
    checkpointer signs: the witness file (read outside the snapshot) may then be ahead of it. That
    was reported as "tail removed" at 1,000,070 events (bench_pages.py); it must not be."""
    from audit.db import read_scope
    from audit.uow import unit_of_work

    with unit_of_work(committed) as s:
        assert checkpoints.create(s) is not None
    with read_scope(committed) as reading:
        if IS_POSTGRES:  # a snapshot like SQLite's, so the race is reproducible on both
            reading.connection(execution_options={"isolation_level": "REPEATABLE READ"})
        assert ledger.head(reading)[0] == 4  # the snapshot begins here
        append(lambda: unit_of_work(committed), 3)
        with unit_of_work(committed) as s:
            made = checkpoints.create(s)
            assert made is not None and made.tree_size == 8
        result = checkpoints.check_against_latest(reading)
        assert result.ok, result.problem
    with committed.begin() as conn:  # a tail really removed is still reported
        drop_guards(conn)
        conn.execute(text("DELETE FROM ledger_event WHERE seq >= 6"))
        conn.execute(text("DELETE FROM checkpoint WHERE tree_size > 5"))
    with read_scope(committed) as reading:
        result = checkpoints.check_against_latest(reading)
    assert not result.ok and "tail removed" in (result.problem or ""), result.problem
