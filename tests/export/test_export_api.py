"""Export bundles from the real service, checked by the verify.py they carry, in its own process."""

from __future__ import annotations

import hashlib
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
from tests.conftest import People
from tests.support import PASSWORD, run_cli, system_python

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
    people.engage(auditor, officer)
    ha = people.headers(auditor)
    response = client.post(f"{API}/exports", headers=ha, json={})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        events = [json.loads(line) for line in zf.read("events.jsonl").splitlines()]
        proofs = json.loads(zf.read("proofs.json"))
    assert manifest["full"] is False and manifest["scope"]["from"] == "2026-01-01"
    encounters = {e["encounter_id"] for e in events if e["encounter_id"]}
    assert encounters == {inside} and outside not in encounters and len(proofs) == len(events)
    # besides the encounter's events, only the delegation grants of providers in scope (all, here)
    assert {e["type"] for e in events if not e["encounter_id"]} == {"delegation.grant"}
    result = verify(response.content, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    refused = client.post(f"{API}/exports", headers=ha, json={"from": "2025-01-01", "to": "2025-12-31"})
    assert refused.status_code == 403


def test_cli_export_sample_and_verify_bundle(fresh_db_url: str, tmp_path: Path) -> None:
    from audit.demo import last_demo_day
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
    from audit.ledger.checkpoint import load_or_create_signing_key, public_key_text

    published = public_key_text("coding-audit", load_or_create_signing_key(tmp_path / "cli.key").public_key())
    checked = run_cli(["verify-bundle", str(out), "--key", published], fresh_db_url, tmp_path)
    assert checked.returncode == 0 and "OK" in checked.stdout, checked.stdout + checked.stderr
    assert "(the key given with --key)" in checked.stdout
    wrong = run_cli(
        ["export", "--user", "compliance.brooks", "--password-stdin", "-o", str(out)],
        fresh_db_url,
        tmp_path,
        stdin="not the password\n",
    )
    assert wrong.returncode == 1 and "NotAuthenticated" in wrong.stdout
    last = last_demo_day(date.today())  # the demo's dates end where the built-in code sets do
    args = [
        "sample",
        "--n",
        "3",
        "--seed",
        "42",
        "--from",
        (last - timedelta(days=60)).isoformat(),
        "--to",
        last.isoformat(),
        "--as",
        "compliance.brooks",
        "--password-stdin",
    ]
    first = run_cli(args, fresh_db_url, tmp_path, stdin="demo-compliance-pass\n")
    again = run_cli(args, fresh_db_url, tmp_path, stdin="demo-compliance-pass\n")
    assert first.returncode == 0, first.stdout + first.stderr
    drawn = [line for line in first.stdout.splitlines() if line and not line.startswith("#")]
    assert len(drawn) == 3 and first.stdout == again.stdout
    _flip_a_byte_of_the_events(out)
    assert run_cli(["verify-bundle", str(out)], fresh_db_url, tmp_path).returncode == 1


def _flip_a_byte_of_the_events(bundle: Path) -> None:
    """Change one byte inside the events file, keeping the zip itself valid. (Flipping a byte of the
    zip at random can land in a field that no reader uses, such as a local header's time.)"""
    with zipfile.ZipFile(bundle) as zf:
        members = {info.filename: zf.read(info) for info in zf.infolist()}
    name = next(n for n in members if n.startswith("events"))
    data = bytearray(members[name])
    data[len(data) // 2] ^= 0x01
    members[name] = bytes(data)
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as zf:
        for member, content in members.items():
            zf.writestr(member, content)


def _system_verify(bundle: bytes, tmp_path: Path, *extra: str, name: str = "bundle.zip") -> tuple[int, str]:
    path = tmp_path / name
    path.write_bytes(bundle)
    with zipfile.ZipFile(path) as zf:
        (tmp_path / "verify.py").write_bytes(zf.read("verify.py"))
    proc = subprocess.run(
        [system_python(), str(tmp_path / "verify.py"), *extra, str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return proc.returncode, proc.stdout + proc.stderr


def _engaged_auditor(people: People) -> dict[str, str]:
    auditor = people.make("auditor")
    people.engage(auditor, people.make("compliance"))
    return people.headers(auditor)


def test_an_auditor_holding_an_old_checkpoint_proves_the_log_only_grew(
    client: TestClient, people: People, tmp_path: Path
) -> None:
    story(client, people, date(2026, 3, 10))
    ha = _engaged_auditor(people)
    old = client.get(f"{API}/audit/checkpoint", headers=ha)  # saved by the auditor months ago
    assert old.status_code == 200
    (tmp_path / "old.note").write_text(old.text)
    old_size = int(old.text.split("\n")[1])
    story(client, people, date(2026, 4, 2))  # the log moves on
    story(client, people, date(2025, 4, 2))  # (outside the engagement)
    response = client.post(f"{API}/exports", headers=ha, json={"previous": [old_size]})
    assert response.status_code == 200, response.text
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        carried = json.loads(zf.read("consistency.json"))
    assert manifest["full"] is False and manifest["checkpoint_sizes"][0] == old_size
    assert set(carried) == {str(old_size)} and manifest["event_count"] > 0
    published = client.get(f"{API}/audit/public-key").text
    code, out = _system_verify(
        response.content, tmp_path, "--key", published, "--previous", str(tmp_path / "old.note")
    )
    assert code == 0, out
    assert f"tree size {old_size} of " in out and "the log only grew since" in out
    assert "(the key given with --key)" in out

    def cut(files: dict[str, bytes]) -> None:  # drop one event and its proof, fix every hash
        lines = files["events.jsonl"].splitlines(keepends=True)
        seq = json.loads(lines[0])["seq"]
        files["events.jsonl"] = b"".join(lines[1:])
        proofs = json.loads(files["proofs.json"])
        del proofs[str(seq)]
        files["proofs.json"] = json.dumps(proofs).encode()
        listed = json.loads(files["manifest.json"])
        listed["event_count"] -= 1
        listed["files"] = {
            n: hashlib.sha256(d).hexdigest()
            for n, d in files.items()
            if n not in ("manifest.json", "manifest.sig")
        }
        files["manifest.json"] = json.dumps(listed, indent=2, sort_keys=True).encode() + b"\n"

    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    cut(files)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for n, d in files.items():
            zf.writestr(n, d)
    code, out = _system_verify(buffer.getvalue(), tmp_path, name="cut.zip")
    assert code == 1 and out.startswith("FAIL: manifest.sig does not sign this manifest.json"), out

    again = client.post(f"{API}/exports", headers=ha, json={})  # by default linked to the last export
    with zipfile.ZipFile(io.BytesIO(again.content)) as zf:
        sizes = json.loads(zf.read("manifest.json"))["checkpoint_sizes"]
    assert sizes[0] == manifest["tree_size"] and sizes[-1] > manifest["tree_size"]
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:  # the first bundle's own checkpoint
        (tmp_path / "first.note").write_text(zf.read("checkpoints.txt").decode().split("---\n")[-1])
    code, out = _system_verify(
        again.content, tmp_path, "--previous", str(tmp_path / "first.note"), name="2.zip"
    )
    assert code == 0, out


def test_previous_sizes_are_checked(client: TestClient, people: People, tmp_path: Path) -> None:
    story(client, people, date(2026, 3, 10))
    officer = people.headers(people.make("compliance"))
    for body, field in (
        ({"previous": [10**9]}, "previous"),
        ({"previous": [0]}, "previous[0]"),
        ({"previous": list(range(1, 30))}, "previous"),
        ({"previous": ["x"]}, "previous[0]"),
    ):
        answer = client.post(f"{API}/exports", headers=officer, json=body)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == field, answer.json()
    note = client.get(f"{API}/audit/checkpoint", headers=officer)
    assert note.status_code == 200, note.text
    size = int(note.text.split("\n")[1])
    story(client, people, date(2026, 3, 11))
    full = client.post(f"{API}/exports", headers=officer, json={"previous": [size]})
    assert full.status_code == 200, full.text
    with zipfile.ZipFile(io.BytesIO(full.content)) as zf:
        assert json.loads(zf.read("manifest.json"))["checkpoint_sizes"][0] == size
    assert _system_verify(full.content, tmp_path)[0] == 0
