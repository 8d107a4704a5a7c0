"""Signed checkpoints over the real ledger: the API, the CLI, a deleted tail, incremental verification."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import text

from audit.config import get_settings
from audit.db import make_engine
from audit.ledger.checkpoint import parse_and_verify_note, parse_public_key_text
from audit.ledger.merkle import merkle_root
from audit.migrate import upgrade
from tests.conftest import People
from tests.support import IS_POSTGRES, run_cli


def test_checkpoint_endpoint_signs_the_head_and_the_public_key_verifies_it(
    client: TestClient, people: People
) -> None:
    officer = people.make("compliance")
    headers = people.headers(officer)
    note = client.get("/api/v1/audit/checkpoint", headers=headers)
    assert note.status_code == 200 and note.headers["content-type"].startswith("text/plain")
    name, key = parse_public_key_text(client.get("/api/v1/audit/public-key").text)
    signed = parse_and_verify_note(note.text, name, key)
    verified = client.get("/api/v1/audit/verify", headers=headers).json()
    assert verified["ok"] and verified["checkpoint"]["ok"]
    assert signed.tree_size <= verified["events_checked"]
    assert note.text.splitlines()[0] == get_settings().origin and "\n\n\u2014 coding-audit " in note.text


def test_cli_checkpoint_catches_a_removed_tail_and_verifies_incrementally(
    fresh_db_url: str, tmp_path: Path
) -> None:
    upgrade(fresh_db_url)
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    made = run_cli(["checkpoint"], fresh_db_url, tmp_path)
    assert made.returncode == 0 and "\u2014 coding-audit " in made.stdout
    assert (tmp_path / "cli.key").stat().st_mode & 0o777 == 0o600
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        leaves = [bytes(r[0]) for r in conn.execute(text("SELECT leaf_hash FROM ledger_event ORDER BY seq"))]
    size = int(made.stdout.splitlines()[1])
    assert size == len(leaves)
    import base64

    assert base64.b64decode(made.stdout.splitlines()[2]) == merkle_root(leaves)

    assert (
        run_cli(
            ["user", "add", "late.admin", "--role", "admin", "--password-stdin"],
            fresh_db_url,
            tmp_path,
            stdin="a very long admin password\n",
        ).returncode
        == 0
    )
    incremental = run_cli(["verify", "--incremental"], fresh_db_url, tmp_path)
    assert incremental.returncode == 0 and "1 events" in incremental.stdout, incremental.stdout

    with engine.begin() as conn:  # an insider removes the tail behind the service's back
        if IS_POSTGRES:
            conn.execute(text("DROP TRIGGER ledger_event_no_update_delete ON ledger_event"))
        else:
            conn.execute(text("DROP TRIGGER ledger_event_no_delete"))
        conn.execute(text("DELETE FROM ledger_event WHERE seq >= :s"), {"s": size - 3})
    engine.dispose()
    result = run_cli(["verify"], fresh_db_url, tmp_path)
    assert result.returncode == 1 and "tail removed" in result.stdout, result.stdout


def test_the_checkpointer_signs_while_events_arrive(fresh_db_url: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import time

    from audit.ledger import checkpoints
    from audit.ledger import service as ledger
    from audit.ledger.events import Actor, EventDraft
    from audit.uow import unit_of_work

    upgrade(fresh_db_url)
    monkeypatch.setenv("AUDIT_DATABASE_URL", fresh_db_url)
    get_settings.cache_clear()
    try:
        timer = checkpoints.Checkpointer(interval=0.2)
        timer.start()
        sizes = set()
        for n in range(3):
            with unit_of_work() as s:
                ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * (n + 1))
            deadline = time.monotonic() + 10  # wait for the timer to sign this head (slow CI included)
            while time.monotonic() < deadline:
                with unit_of_work() as s:
                    latest = checkpoints.latest(s)
                if latest is not None and latest.tree_size == sum(range(n + 2)):
                    sizes.add(latest.tree_size)
                    break
                time.sleep(0.05)
        timer.stop()
        assert sizes == {1, 3, 6}  # a checkpoint for every head the timer saw, unprompted
        with unit_of_work() as s:
            assert checkpoints.check_against_latest(s).ok
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
