"""The real `audit import` in its own process (as the operator, and --as with the password on stdin),
and migration 0008_imports from the previous head with data, on the test database's engine."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from sqlalchemy import inspect, text

from audit.db import make_engine
from audit.demo import DEMO_PASSWORDS, last_demo_day
from audit.migrate import downgrade, upgrade
from tests.imports.test_import_service import as_csv
from tests.support import run_cli


def feed_rows(n: int, entered_by: str = "coder.chen", prefix: str = "CLI") -> list[dict[str, str]]:
    dos = last_demo_day(date.today()).isoformat()
    return [
        {
            "external_id": f"{prefix}-{i // 2}",
            "patient_ref": f"P-{i // 2}",
            "date_of_service": dos,
            "rendering_npi": "1987654328",  # dr.okafor, who delegated to coder.chen in the demo
            "entered_by": entered_by,
            "system": "CPT",
            "code": "99213",
            "modifiers": "",
            "units": "1",
            "diagnosis_pointers": "",
            "line_ref": f"{prefix}-L{i}",
        }
        for i in range(n)
    ]


def ledger_events(url: str, type_: str) -> list[dict[str, object]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT payload FROM ledger_event WHERE type = :t ORDER BY seq"), {"t": type_}
        )
        found = [json.loads(bytes(r[0])) for r in rows]
    engine.dispose()
    return found


def test_import_as_the_operator_and_as_an_integration_account(fresh_db_url: str, tmp_path: Path) -> None:
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    feed = tmp_path / "feed.csv"
    feed.write_bytes(as_csv([*feed_rows(6), {**feed_rows(1)[0], "line_ref": "bad", "code": "ZZZZZ"}]))
    done = run_cli(["import", str(feed)], fresh_db_url, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 new lines" in done.stdout and "1 rejected" in done.stdout
    report = (tmp_path / "feed.csv.rejected.csv").read_text().splitlines()
    assert report[0] == "line,field,reason" and report[1].startswith("8,code,")
    again = run_cli(["import", str(feed)], fresh_db_url, tmp_path)
    assert "0 new lines" in again.stdout and "6 unchanged" in again.stdout, again.stdout

    other = tmp_path / "other.ndjson"
    other.write_text("".join(json.dumps(r) + "\n" for r in feed_rows(4, prefix="EHR")))
    as_feed = run_cli(
        ["import", str(other), "--as", "ehr.feed", "--password-stdin"],
        fresh_db_url,
        tmp_path,
        stdin=DEMO_PASSWORDS["integration"] + "\n",
    )
    assert as_feed.returncode == 0 and "4 new lines" in as_feed.stdout, as_feed.stdout + as_feed.stderr
    wrong = run_cli(
        ["import", str(other), "--as", "ehr.feed", "--password-stdin"], fresh_db_url, tmp_path, stdin="nope\n"
    )
    assert wrong.returncode == 1 and "NotAuthenticated" in wrong.stdout
    no_stdin = run_cli(["import", str(other), "--as", "ehr.feed"], fresh_db_url, tmp_path)
    assert no_stdin.returncode == 2

    roles = {
        (e["actor"]["role"], e["detail"]["counts"]["created"])
        for e in ledger_events(fresh_db_url, "import.run")
    }  # type: ignore[index]
    assert roles == {("operator", 6), ("operator", 0), ("integration", 4)}
    verify = run_cli(["verify"], fresh_db_url, tmp_path)
    assert verify.returncode == 0, verify.stdout


def test_a_file_without_the_columns_is_refused_whole(fresh_db_url: str, tmp_path: Path) -> None:
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    feed = tmp_path / "feed.csv"
    feed.write_text("external_id,code\nX,99213\n")
    done = run_cli(["import", str(feed)], fresh_db_url, tmp_path)
    assert done.returncode == 2 and "missing column(s)" in done.stdout


def test_0008_upgrades_from_the_previous_head_with_data_and_back(fresh_db_url: str) -> None:
    upgrade(fresh_db_url, "0006_signin_backoff")
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO app_user (id, username, display_name, password_hash, roles, "
                "credential_active, is_active, failed_signings, created_at) VALUES "
                "('u1', 'dr.a', 'Dr A', 'x', '[\"provider\"]', true, true, 0, '2026-01-01 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO encounter (id, source, external_id, patient_ref, date_of_service, "
                "rendering_provider_id, supervising_provider_ids, status, created_by, created_at) VALUES "
                "('e1', 'import', 'V-1', 'MRN-1', '2026-01-02', 'u1', '[]', 'open', 'u1', "
                "'2026-01-02 00:00:00')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO code_line (id, encounter_id, system, code, modifiers, units, "
                "diagnosis_pointers, version, status, entered_by, entered_role, entered_at, changed_by, "
                "changed_at) VALUES "
                "('l1', 'e1', 'CPT', '99213', '[]', 1, '[]', 1, 'active', 'u1', 'provider', "
                "'2026-01-02 00:00:00', 'u1', '2026-01-02 00:00:00')"
            )
        )
    engine.dispose()

    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO import_line (source, external_id, line_ref, line_id, digest) "
                "VALUES ('import', 'V-1', 'L-1', 'l1', :d)"
            ),
            {"d": "0" * 64},
        )
        assert conn.execute(text("SELECT count(*) FROM code_line")).scalar_one() == 1
    assert "import_line" in set(inspect(engine).get_table_names())
    engine.dispose()

    downgrade(fresh_db_url, "0006_signin_backoff")
    engine = make_engine(fresh_db_url)
    assert "import_line" not in set(inspect(engine).get_table_names())
    with engine.connect() as conn:
        assert conn.execute(text("SELECT code FROM code_line")).scalar_one() == "99213"
    engine.dispose()
    upgrade(fresh_db_url)
