"""`audit backup` and `audit restore`, through the real command on each database: a round trip that
verifies, and a backup older than the witnessed head refused with the number of missing events."""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from audit.db import make_engine
from audit.migrate import upgrade
from tests.conftest import new_database
from tests.support import IS_POSTGRES, run_cli


@pytest.fixture
def empty_db_url(tmp_path: Path) -> Iterator[str]:
    """A second database to restore into: a new SQLite path, or an empty PostgreSQL database."""
    with new_database(tmp_path, "restored") as url:
        yield url


def _ok(result: object) -> str:
    out = result.stdout + result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 0, out  # type: ignore[attr-defined]
    return str(out)


def test_backup_restore_verify_round_trip_and_an_old_backup_is_refused(
    fresh_db_url: str, empty_db_url: str, tmp_path: Path
) -> None:
    upgrade(fresh_db_url)
    _ok(run_cli(["demo"], fresh_db_url, tmp_path))
    old = tmp_path / "old.zip"
    _ok(run_cli(["backup", str(old)], fresh_db_url, tmp_path))
    with zipfile.ZipFile(old) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        assert set(zf.namelist()) == {"manifest.json", "witness.txt", *manifest["files"]}
        assert zf.read("witness.txt").decode().count("\n\n") >= 0 and manifest["witness"] == "witness.txt"
    head = manifest["head_seq"]
    assert head > 10 and manifest["checkpoint"]["tree_size"] == head + 1
    assert manifest["checkpoint"]["note"].split("\n")[1] == str(head + 1)

    # The backup itself is an event; once a checkpoint covers it, the old backup lacks one witnessed event.
    _ok(run_cli(["checkpoint"], fresh_db_url, tmp_path))
    refused = run_cli(["restore", str(old)], empty_db_url, tmp_path)
    assert refused.returncode == 1
    assert "would lose 1 witnessed event" in refused.stdout and f"ends at seq {head}" in refused.stdout
    assert _tables(empty_db_url) == 0  # nothing was left behind

    new = tmp_path / "new.zip"
    _ok(run_cli(["backup", str(new)], fresh_db_url, tmp_path))
    damaged = _damaged(new, tmp_path / "damaged.zip")
    refused = run_cli(["restore", str(damaged)], empty_db_url, tmp_path)
    assert refused.returncode == 1 and "does not match the backup's manifest" in refused.stdout
    restored = _ok(run_cli(["restore", str(new)], empty_db_url, tmp_path))
    assert "restored" in restored and "events verified" in restored
    verified = _ok(run_cli(["verify"], empty_db_url, tmp_path))
    assert "OK (full)" in verified
    again = run_cli(["restore", str(new)], empty_db_url, tmp_path)
    assert again.returncode == 1 and "restore into" in again.stdout  # never over existing records
    engine = make_engine(empty_db_url)
    with engine.connect() as conn:
        kinds = conn.execute(text("SELECT type FROM ledger_event ORDER BY seq")).scalars().all()
    engine.dispose()
    assert kinds.count("backup.create") == 1 and kinds[-1] == "backup.restore"


def _tables(url: str) -> int:
    if not IS_POSTGRES:
        return 0 if not Path(make_url(url).database or "").exists() else -1
    engine = make_engine(url)
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema='public'")
        ).scalar_one()
    engine.dispose()
    return int(found)


def _damaged(good: Path, bad: Path) -> Path:
    """The same backup with one witness note changed (its manifest no longer matches)."""
    with zipfile.ZipFile(good) as src, zipfile.ZipFile(bad, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, data + b"x" if item.filename == "witness.txt" else data)
    return bad
