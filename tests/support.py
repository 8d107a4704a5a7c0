"""Test settings and helpers shared by conftest and the tests (imported once as tests.support)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Shared test data (`../shared` beside the checkout in CI; AUDIT_SHARED_DIR elsewhere, e.g. a worktree).
SHARED = Path(os.environ.get("AUDIT_SHARED_DIR") or REPO.parent / "shared")
HCPCS_2020 = SHARED / "data/codesets/hcpcs/HCPC2020_ANWEB_w_disclaimer.txt"
_TMP = Path(tempfile.mkdtemp(prefix="audit-tests-"))
TEST_DB_URL = os.environ.get("AUDIT_TEST_DATABASE_URL") or f"sqlite:///{_TMP / 'test.db'}"
IS_POSTGRES = TEST_DB_URL.startswith("postgresql")


def _database_of_this_worker(url: str) -> str:
    """Under pytest-xdist each worker gets its own PostgreSQL database (`<name>_gw0`, ...), created on
    first use, since each worker migrates and resets its database. SQLite files are per process already."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker or not url.startswith("postgresql"):
        return url
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database}_{worker}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        if conn.execute(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first() is None:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


TEST_DB_URL = _database_of_this_worker(TEST_DB_URL)
PASSWORD = "correct horse battery"

os.environ["AUDIT_ENV"] = "test"
os.environ["AUDIT_CHECKPOINT_TIMER"] = "false"
os.environ["AUDIT_SIGNIN_SWEEP_TIMER"] = "false"
os.environ["AUDIT_DATABASE_URL"] = TEST_DB_URL
os.environ["AUDIT_SIGNING_KEY_FILE"] = str(_TMP / "signing.key")
os.environ.pop("AUDIT_POLICIES_DIR", None)


def run_cli(
    args: list[str], db_url: str, tmp_path: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real `audit` command in its own process against `db_url`."""
    env = {
        **os.environ,
        "AUDIT_DATABASE_URL": db_url,
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "cli.key"),
        "COLUMNS": "400",  # rich wraps at the terminal's width: long temp paths would break mid-word
    }
    return subprocess.run(
        [sys.executable, "-m", "audit.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
        cwd=tmp_path,
    )


def system_python() -> str:
    """The machine's own python3 (not this venv's), as an auditor would run verify.py: it needs only
    `cryptography` (Debian: python3-cryptography; .ci/run installs it)."""
    for candidate in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if Path(candidate).exists():
            probe = subprocess.run([candidate, "-c", "import cryptography"], capture_output=True, check=False)
            if probe.returncode == 0:
                return candidate
    raise RuntimeError(
        "no system python3 with the cryptography package: apt-get install python3-cryptography"
    )
