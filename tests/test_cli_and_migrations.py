"""The real `audit` command in its own process, and migrations from an empty database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import inspect, text

from audit.db import make_engine
from audit.migrate import downgrade, upgrade
from tests.support import run_cli


def test_migrations_upgrade_from_empty_downgrade_and_upgrade_again(fresh_db_url: str) -> None:
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    tables = set(inspect(engine).get_table_names())
    assert {"app_user", "api_token", "encounter", "code_line", "ledger_event", "alembic_version"} <= tables
    engine.dispose()
    downgrade(fresh_db_url, "base")
    engine = make_engine(fresh_db_url)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()
    upgrade(fresh_db_url)


def test_user_add_demo_and_verify(fresh_db_url: str, tmp_path: Path) -> None:
    assert run_cli(["db", "upgrade"], fresh_db_url, tmp_path).returncode == 0
    added = run_cli(
        ["user", "add", "root.admin", "--role", "admin", "--password-stdin"],
        fresh_db_url,
        tmp_path,
        stdin="a very long admin password\n",
    )
    assert added.returncode == 0, added.stdout + added.stderr
    assert "created user root.admin" in added.stdout

    short = run_cli(
        ["user", "add", "x.short", "--role", "admin", "--password-stdin"],
        fresh_db_url,
        tmp_path,
        stdin="short\n",
    )
    assert short.returncode == 2 and "password" in short.stdout

    bad_npi = run_cli(
        [
            "user",
            "add",
            "dr.x",
            "--role",
            "provider",
            "--npi",
            "1234567890",
            "--credential",
            "MD",
            "--password-stdin",
        ],
        fresh_db_url,
        tmp_path,
        stdin="a very long password\n",
    )
    assert bad_npi.returncode == 2 and "npi" in bad_npi.stdout.lower()

    demo = run_cli(["demo"], fresh_db_url, tmp_path)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    for username in ("dr.okafor", "coder.chen", "compliance.brooks", "auditor.kim"):
        assert username in demo.stdout
    assert "demo-provider-pass" in demo.stdout

    verified = run_cli(["verify"], fresh_db_url, tmp_path)
    assert verified.returncode == 0 and "OK" in verified.stdout

    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        by_coder = conn.execute(
            text("SELECT count(*) FROM code_line WHERE entered_role = 'coder'")
        ).scalar_one()
        encounters = conn.execute(text("SELECT count(*) FROM encounter")).scalar_one()
        refused = conn.execute(
            text("SELECT type, outcome FROM ledger_event WHERE outcome <> 'allowed' ORDER BY seq")
        ).all()
        flags = conn.execute(text("SELECT count(*) FROM encounter_note WHERE kind = 'flag'")).scalar_one()
        engagements = conn.execute(text("SELECT count(*) FROM engagement")).scalar_one()
        findings = conn.execute(text("SELECT verdict, category FROM audit_finding ORDER BY verdict")).all()
        disputes = conn.execute(
            text("SELECT count(*) FROM audit_finding_response WHERE response = 'dispute'")
        ).scalar_one()
    engine.dispose()
    assert encounters >= 5 and by_coder >= 15
    # findings to look at: a coder refused for want of a delegation, a header code refused, a flag, and
    # an engagement for the auditor
    assert [tuple(r) for r in refused] == [("code.add", "denied"), ("code.add", "failed")]
    assert flags == 1 and engagements == 1
    # a coding audit in that engagement: lines agreed, one E/M level disputed by the provider
    assert ("disagree", "upcoded") in [tuple(f) for f in findings] and len(findings) >= 3 and disputes == 1
