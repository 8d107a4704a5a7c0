"""`audit codesets import` and `list` with the real CMS HCPCS 2020 file, in their own process."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from audit.db import make_engine
from audit.ledger.service import LEDGER
from audit.migrate import upgrade
from tests.support import HCPCS_2020, run_cli


def events(db_url: str, kind: str) -> list[dict]:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(LEDGER.c.payload).where(LEDGER.c.type == kind).order_by(LEDGER.c.seq))
            return [json.loads(bytes(r[0])) for r in rows]
    finally:
        engine.dispose()


@pytest.mark.skipif(not HCPCS_2020.exists(), reason="shared HCPCS 2020 fixture not present")
def test_import_and_list(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # rich wraps the table on a narrow terminal
    upgrade(fresh_db_url)
    imported = run_cli(["codesets", "import", "hcpcs", str(HCPCS_2020)], fresh_db_url, tmp_path)
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert f"by {getpass.getuser()}" in imported.stdout

    (event,) = events(fresh_db_url, "codeset.import")
    assert event["actor"] == {"id": None, "role": "operator", "username": getpass.getuser()}
    assert event["outcome"] == "allowed" and event["policy"]["rule_ids"] == ["codesets.operator_imports"]
    assert event["detail"]["file"] == HCPCS_2020.name
    assert event["detail"]["sha256"] == "e7f6f58b91fa54d081be50230a1a34ae4671038539a2b42ed055002d395c1063"
    # The shared data's derived CSV: 6,710 procedure codes (605 with a termination date), 369 modifiers.
    assert event["detail"]["counts"] == {
        "records": 7079, "codes": 6710, "headers": 0, "terminated": 605, "modifiers": 369,
    }  # fmt: skip
    assert event["after"]["label"] == "HCPCS 2020" and event["after"]["effective_until"] == "2020-12-31"

    listed = run_cli(["codesets", "list"], fresh_db_url, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "HCPCS 2020" in listed.stdout and "7,079" in listed.stdout
    assert "2020-01-01" in listed.stdout and "built-in" in listed.stdout
    assert "Coverage by fiscal year" in listed.stdout and "Coverage by calendar year" in listed.stdout
    assert "FY2026" in listed.stdout and "imported" in listed.stdout  # CY2020 HCPCS: covered, imported
    assert "audit codesets import icd10cm icd10cm_order_<YYYY>.txt" in listed.stdout

    missing = run_cli(["codesets", "import", "hcpcs", str(tmp_path / "nope.txt")], fresh_db_url, tmp_path)
    assert missing.returncode != 0


def test_a_refused_file_leaves_a_failed_event(fresh_db_url: str, tmp_path: Path) -> None:
    upgrade(fresh_db_url)
    bad = tmp_path / "cpt_2025.csv"
    bad.write_text("99213,2025-01-01,\n9921X,2025-01-01,\n")
    refused = run_cli(["codesets", "import", "cpt", str(bad)], fresh_db_url, tmp_path)
    assert refused.returncode == 1 and "line 2" in refused.stdout
    (event,) = events(fresh_db_url, "codeset.import")
    assert event["outcome"] == "failed" and "line 2" in event["reason"]
    assert event["detail"]["field"] == "file" and event["detail"]["file"] == "cpt_2025.csv"
    assert len(event["detail"]["sha256"]) == 64
