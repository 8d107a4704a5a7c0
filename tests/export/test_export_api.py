"""Export bundles from the real service, checked by the verify.py they carry, in its own process."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.ledger.service import LEDGER
from audit.models import utcnow
from tests.conftest import People
from tests.support import PASSWORD, run_cli

API = "/api/v1"


def story(client: TestClient, people: People, dos: date) -> tuple[str, Any]:
    provider, coder = people.make("provider"), people.make("coder")
    people.delegate(provider, coder)
    hc = people.headers(coder)
    eid = client.post(
        f"{API}/encounters",
        headers=hc,
        json={
            "external_id": f"X-{people._n}",
            "patient_ref": "MRN-1",
            "date_of_service": dos.isoformat(),
            "rendering_provider_id": provider.id,
        },
    ).json()["id"]
    client.post(f"{API}/encounters/{eid}/codes", headers=hc, json={"system": "CPT", "code": "99213"})
    client.post(
        f"{API}/encounters/{eid}/attestations", headers=people.headers(provider), json={"password": PASSWORD}
    )
    return eid, provider


def verify(bundle: bytes, tmp_path: Path, name: str = "bundle.zip") -> subprocess.CompletedProcess[str]:
    path = tmp_path / name
    path.write_bytes(bundle)
    with zipfile.ZipFile(path) as zf:
        script = tmp_path / "verify.py"
        script.write_bytes(zf.read("verify.py"))
    return subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, timeout=120
    )


def test_full_export_verifies_offline_and_is_an_event(
    client: TestClient, people: People, connection: Connection, tmp_path: Path
) -> None:
    story(client, people, date.today() - timedelta(days=3))
    officer = people.headers(people.make("compliance"))
    response = client.post(f"{API}/exports", headers=officer, json={})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        names = set(zf.namelist())
        manifest = json.loads(zf.read("manifest.json"))
        lines = zf.read("events.jsonl").splitlines()
    assert {
        "events.jsonl",
        "checkpoints.txt",
        "public_key.txt",
        "verify.py",
        "report-provider-responsibility.csv",
        "report-provider-responsibility.pdf",
    } <= names
    assert manifest["full"] is True and manifest["seq_range"][0] == 0 and len(lines) == manifest["tree_size"]
    result = verify(response.content, tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("OK"), result.stdout + result.stderr
    exported = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == "report.export")).all()
    assert len(exported) == 1
    assert json.loads(bytes(exported[0][0]))["detail"]["bundle_sha256"] == response.headers["X-Bundle-SHA256"]


def test_auditor_export_is_scoped_to_the_engagement_with_proofs(
    client: TestClient, people: People, tmp_path: Path
) -> None:
    inside, _ = story(client, people, date(2026, 3, 10))
    outside, _ = story(client, people, date(2025, 6, 1))
    auditor, officer = people.make("auditor"), people.make("compliance")
    opened = client.post(
        f"{API}/engagements",
        headers=people.headers(officer),
        json={
            "auditor_id": auditor.id,
            "date_from": "2026-01-01",
            "date_to": "2026-06-30",
            "expires_at": (utcnow() + timedelta(days=10)).isoformat(),
        },
    )
    assert opened.status_code == 201, opened.text
    ha = people.headers(auditor)
    response = client.post(f"{API}/exports", headers=ha, json={})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        encounters = {json.loads(line)["encounter_id"] for line in zf.read("events.jsonl").splitlines()}
        proofs = json.loads(zf.read("proofs.json"))
    assert manifest["full"] is False and manifest["scope"]["from"] == "2026-01-01"
    assert encounters == {inside} and outside not in encounters and len(proofs) > 0
    result = verify(response.content, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    refused = client.post(f"{API}/exports", headers=ha, json={"from": "2025-01-01", "to": "2025-12-31"})
    assert refused.status_code == 403


def test_cli_export_sample_and_verify_bundle(fresh_db_url: str, tmp_path: Path) -> None:
    from audit.migrate import upgrade

    upgrade(fresh_db_url)
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    out = tmp_path / "full.zip"
    made = run_cli(
        ["export", "--user", "compliance.brooks", "--password-stdin", "-o", str(out)],
        fresh_db_url,
        tmp_path,
        stdin="demo-compliance-pass\n",
    )
    assert made.returncode == 0, made.stdout + made.stderr
    assert "full" in made.stdout
    checked = run_cli(["verify-bundle", str(out)], fresh_db_url, tmp_path)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr
    wrong = run_cli(
        ["export", "--user", "compliance.brooks", "--password-stdin", "-o", str(out)],
        fresh_db_url,
        tmp_path,
        stdin="not the password\n",
    )
    assert wrong.returncode == 1 and "NotAuthenticated" in wrong.stdout
    today = date.today()
    args = [
        "sample",
        "--n",
        "3",
        "--seed",
        "42",
        "--from",
        (today - timedelta(days=60)).isoformat(),
        "--to",
        today.isoformat(),
        "--as",
        "compliance.brooks",
        "--password-stdin",
    ]
    first = run_cli(args, fresh_db_url, tmp_path, stdin="demo-compliance-pass\n")
    again = run_cli(args, fresh_db_url, tmp_path, stdin="demo-compliance-pass\n")
    assert first.returncode == 0, first.stdout + first.stderr
    drawn = [line for line in first.stdout.splitlines() if line and not line.startswith("#")]
    assert len(drawn) == 3 and first.stdout == again.stdout
    data = bytearray(out.read_bytes())
    data[len(data) // 3] ^= 0xFF
    out.write_bytes(bytes(data))
    assert run_cli(["verify-bundle", str(out)], fresh_db_url, tmp_path).returncode == 1
