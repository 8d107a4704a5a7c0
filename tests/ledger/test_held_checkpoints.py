"""`audit verify --checkpoint FILE`: a signed checkpoint an auditor kept (months ago, in another
place) still describes the ledger -- our signature, the ledger still has that tree, same chain hash
and Merkle root. Forged notes, notes by another key and a ledger cut below the note are named."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text
from sqlalchemy.engine import Engine

from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.checkpoint import format_checkpoint, iter_notes, sign_note
from audit.ledger.events import Actor, EventDraft
from audit.ledger.proofs import check_notes
from audit.uow import unit_of_work
from tests.support import IS_POSTGRES, run_cli

T = datetime(2026, 1, 15, tzinfo=UTC)


def flat(output: str) -> str:
    return " ".join(output.split())


def grow(engine: Engine, n: int) -> str:
    with unit_of_work(engine) as s:
        ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * n)
    made = checkpoints.create_in_own_transaction(engine)
    assert made is not None
    return made.note


def variants(old: str) -> dict[str, str]:
    """Notes that must not pass, each derived from a real one."""
    lines = old.split("\n")
    size, root = int(lines[1]), base64.b64decode(lines[2])
    chain = bytes.fromhex(lines[3].removeprefix("chain "))
    forged_root = old.replace(lines[2], base64.b64encode(bytes(32)).decode())
    stranger = Ed25519PrivateKey.generate()
    other_key = sign_note(format_checkpoint("coding-audit", size, root, chain, T), "coding-audit", stranger)
    ours_but_wrong = sign_note(
        format_checkpoint("coding-audit", size, bytes(32), chain, T),
        "coding-audit",
        checkpoints.signing_key(),
    )
    beyond = sign_note(
        format_checkpoint("coding-audit", size + 1000, root, chain, T),
        "coding-audit",
        checkpoints.signing_key(),
    )
    return {
        "forged": forged_root,
        "other-key": other_key,
        "ours-wrong-root": ours_but_wrong,
        "beyond": beyond,
    }


def test_an_old_checkpoint_passes_and_forged_ones_are_named(committed: Engine, tmp_path: Path) -> None:
    old = grow(committed, 3)  # tree size 8: saved by an auditor
    grow(committed, 4)
    grow(committed, 2)
    with unit_of_work(committed) as s:
        results = check_notes(
            s, iter_notes((old + "\n" + "\n".join(variants(old).values())).splitlines(True))
        )
    problems = [r.problem for r in results]
    assert problems[0] is None and results[0].tree_size == 8
    assert problems[1] is not None and problems[1].startswith("signature: bad signature")
    assert problems[2] is not None and problems[2].startswith("signature: wrong key")
    assert problems[3] == "Merkle root differs from the signed checkpoint"
    assert problems[4] == "the ledger ends at seq 13 but the checkpoint covers 1008 events (tail removed)"

    held = tmp_path / "held.txt"
    held.write_text(old)
    ok = run_cli(["verify", "--checkpoint", str(held)], committed.url.render_as_string(False), tmp_path)
    assert ok.returncode == 0, ok.stdout
    assert f"OK: {held} line 1, tree size 8: the ledger still holds this signed tree" in flat(ok.stdout)

    files = []
    for name, note in variants(old).items():
        files += ["--checkpoint", str(tmp_path / name)]
        (tmp_path / name).write_text(note)
    bad = run_cli(
        ["verify", *files, "--checkpoint", str(held)], committed.url.render_as_string(False), tmp_path
    )
    out = flat(bad.stdout)
    assert bad.returncode == 1, out
    assert f"FAIL: {tmp_path / 'forged'} line 1: signature: bad signature" in out
    assert f"FAIL: {tmp_path / 'other-key'} line 1: signature: wrong key" in out
    assert f"FAIL: {tmp_path / 'ours-wrong-root'} line 1, tree size 8: Merkle root differs" in out
    assert f"FAIL: {tmp_path / 'beyond'} line 1, tree size 1008: the ledger ends at seq 13" in out
    assert f"OK: {held} line 1, tree size 8" in out


def test_a_ledger_cut_below_a_held_checkpoint_fails(committed: Engine, tmp_path: Path) -> None:
    old = grow(committed, 3)
    grow(committed, 4)
    with committed.begin() as conn:  # an insider cuts the ledger and every trace in the database
        for table in ("ledger_event", "checkpoint"):
            if IS_POSTGRES:
                conn.execute(text(f"DROP TRIGGER {table}_no_update_delete ON {table}"))
            else:
                conn.execute(text(f"DROP TRIGGER {table}_no_delete"))
        conn.execute(text("DELETE FROM ledger_event WHERE seq >= 6"))
        conn.execute(text("DELETE FROM checkpoint"))
    held = tmp_path / "held.txt"
    held.write_text(old)
    result = run_cli(["verify", "--checkpoint", str(held)], committed.url.render_as_string(False), tmp_path)
    out = flat(result.stdout)
    assert result.returncode == 1
    assert (
        f"FAIL: {held} line 1, tree size 8: the ledger ends at seq 5 but the checkpoint covers 8 events"
        in out
    )
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    nothing = run_cli(["verify", "--checkpoint", str(empty)], committed.url.render_as_string(False), tmp_path)
    assert nothing.returncode == 1 and f"FAIL: {empty}: no signed note in it" in flat(nothing.stdout)
