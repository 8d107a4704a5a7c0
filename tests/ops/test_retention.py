"""Retention: the policy's shape, the `retention` report and `audit archive` (which deletes nothing)."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from audit.config import get_settings
from audit.db import make_engine
from audit.ledger import service as ledger
from audit.policy.compliance import PolicyError, load_compliance
from audit.report.retention import retention_cutoff, years_before
from tests.conftest import People
from tests.support import run_cli

API = "/api/v1"


def _policy_text(tmp_path: Path, retention: str) -> Path:
    source = (get_settings().resolved_policies_dir / "compliance.yaml").read_text()
    start = source.index("retention:")
    end = source.index("tokens:")
    path = tmp_path / "compliance.yaml"
    path.write_text(source[:start] + retention + source[end:])
    return path


def test_retention_years_default_seven_and_the_old_key_is_refused(tmp_path: Path) -> None:
    assert load_compliance(get_settings().resolved_policies_dir / "compliance.yaml").retention.years == 7
    assert load_compliance(_policy_text(tmp_path, "")).retention.years == 7
    assert load_compliance(_policy_text(tmp_path, "retention:\n  years: 10\n")).retention.years == 10
    moved = r"retention_years moved to retention\.years.*retention: \{years: 10\}"
    with pytest.raises(PolicyError, match=moved):
        load_compliance(_policy_text(tmp_path, "retention_years: 10\n"))
    with pytest.raises(PolicyError, match=r"retention\.years"):
        load_compliance(_policy_text(tmp_path, "retention:\n  years: 0\n"))


def test_cutoff_counts_calendar_years() -> None:
    assert retention_cutoff(date(2026, 3, 1), 7) == date(2019, 3, 1)
    assert years_before(date(2024, 2, 29), 1) == date(2023, 2, 28)


def _encounter(client: TestClient, headers: dict[str, str], provider_id: str, ext: str, dos: date) -> str:
    body = {"external_id": ext, "patient_ref": f"P-{ext}", "date_of_service": dos.isoformat(),
            "rendering_provider_id": provider_id}  # fmt: skip
    made = client.post(f"{API}/encounters", json=body, headers=headers)
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


def test_report_lists_only_encounters_past_retention_in_the_readers_scope(
    client: TestClient, people: People
) -> None:
    today = date.today()
    p1, p2, officer = people.make("provider"), people.make("provider"), people.make("compliance")
    h1, h2 = people.headers(p1), people.headers(p2)
    old1 = _encounter(client, h1, p1.id, "OLD-1", years_before(today, 8))
    edge = _encounter(client, h1, p1.id, "EDGE", years_before(today, 7))  # its last retained day: today
    _encounter(client, h1, p1.id, "NEW-1", today - timedelta(days=30))
    old2 = _encounter(client, h2, p2.id, "OLD-2", years_before(today, 9))

    everyone = client.get(f"{API}/reports/retention", headers=people.headers(officer))
    assert everyone.status_code == 200, everyone.text
    body = everyone.json()
    found = {r["encounter_id"] for r in _rows(body)}
    assert found == {old1, old2} and edge not in found
    first = next(r for r in _rows(body) if r["encounter_id"] == old2)
    assert first["ledger_events"] >= 1 and first["retained_until"] == years_before(today, 2).isoformat()

    own = client.get(f"{API}/reports/retention", headers=h1)
    assert {r["encounter_id"] for r in _rows(own.json())} == {old1}
    as_csv = client.get(f"{API}/reports/retention", params={"format": "csv"}, headers=h1)
    assert [r["external_id"] for r in csv.DictReader(io.StringIO(as_csv.text))] == ["OLD-1"]
    assert client.get(f"{API}/reports/retention", params={"format": "pdf"}, headers=h1).content[:4] == b"%PDF"


def _rows(body: dict[str, Any]) -> list[dict[str, Any]]:
    return list(body["rows"])


def test_archive_writes_a_verifiable_bundle_and_deletes_nothing(fresh_db_url: str, tmp_path: Path) -> None:
    from audit.demo import last_demo_day
    from audit.migrate import upgrade

    upgrade(fresh_db_url)
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    engine = make_engine(fresh_db_url)

    def counts() -> tuple[int, int]:
        with engine.connect() as conn:
            events = conn.execute(select(func.count()).select_from(ledger.LEDGER)).scalar_one()
            encounters = conn.execute(text("SELECT count(*) FROM encounter")).scalar_one()
        return int(events), int(encounters)

    before_events, before_encounters = counts()
    cut = last_demo_day(date.today()) - timedelta(days=20)
    out = tmp_path / "archive.zip"
    made = run_cli(
        ["archive", "--before", cut.isoformat(), "-o", str(out), "--user", "compliance.brooks",
         "--password-stdin"],
        fresh_db_url, tmp_path, stdin="demo-compliance-pass\n",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    assert "nothing was deleted" in made.stdout
    checked = run_cli(["verify-bundle", str(out)], fresh_db_url, tmp_path)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr
    after_events, after_encounters = counts()
    assert after_encounters == before_encounters
    assert after_events >= before_events + 1  # the archive is an event; nothing went away
    with engine.connect() as conn:
        detail = conn.execute(
            select(ledger.LEDGER.c.payload).where(ledger.LEDGER.c.type == "report.export")
        ).scalar_one()
    assert b'"purpose":"archive"' in bytes(detail)
    engine.dispose()
    bad = run_cli(["archive", "--before", "2026-02-30", "-o", str(out), "--user", "x", "--password-stdin"],
                  fresh_db_url, tmp_path, stdin="x\n")  # fmt: skip
    assert bad.returncode == 2 and "not a date" in bad.stdout
