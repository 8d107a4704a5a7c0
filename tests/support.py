"""Test settings and helpers shared by conftest and the tests (imported once as tests.support)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_TMP = Path(tempfile.mkdtemp(prefix="audit-tests-"))
TEST_DB_URL = os.environ.get("AUDIT_TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'test.db'}"
IS_POSTGRES = TEST_DB_URL.startswith("postgresql")
PASSWORD = "correct horse battery"

os.environ["AUDIT_ENV"] = "test"
os.environ["AUDIT_CHECKPOINT_TIMER"] = "false"
os.environ["AUDIT_DATABASE_URL"] = TEST_DB_URL
os.environ["AUDIT_SIGNING_KEY_FILE"] = str(_TMP / "signing.key")
os.environ.pop("AUDIT_POLICIES_DIR", None)


def run_cli(
    args: list[str], db_url: str, tmp_path: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `audit` command in its own process against `db_url`."""
    env = {**os.environ, "AUDIT_DATABASE_URL": db_url, "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "cli.key")}
    return subprocess.run(
        [sys.executable, "-m", "audit.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )
