"""Known counts give known scores in JSON, CSV and PDF; the export bundle carries the audit, and the
sampling script it carries redraws the service's sample from the frame and seed alone."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pypdf import PdfReader

from audit.coding_audit.scoring import Row, score_rows
from tests.coding_audit.world import World, build, run_loop, settle_and_sign
from tests.conftest import People

# After settling: 8 lines judged, 7 correct (the reversed added line is not counted); 8 encounters, 7
# correct; E/M 7 of 8 (the upcoded 99214 -> 99213).
EXPECTED = {"line_accuracy": 0.875, "encounter_accuracy": 0.875, "em_agreement": 0.875}


@pytest.fixture
def signed(client: TestClient, people: People) -> tuple[World, str]:
    w = build(client, people)
    aid, found = run_loop(w)
    settle_and_sign(w, aid, found)
    return w, aid


def test_audit_summary_in_three_formats(signed: tuple[World, str]) -> None:
    w, aid = signed
    body = w.call("GET", "/reports/audit-summary", "C", 200, params={"audit_id": aid}).json()
    metrics = {r["metric"]: r["value"] for r in body["rows"]}
    assert {k: metrics[k] for k in EXPECTED} == EXPECTED
    assert (metrics["disputes"], metrics["upheld"], metrics["reversed"], metrics["disputes_open"]) == (
        2,
        1,
        1,
        0,
    )
    categories = {r["category"]: r for r in body["sections"]["categories"]["rows"]}
    assert categories["upcoded"]["upheld"] == 1 and categories["unbundled"]["reversed"] == 1

    text = w.call("GET", "/reports/audit-summary", "C", 200, params={"audit_id": aid, "format": "csv"}).text
    rows = {r["metric"]: r["value"] for r in csv.DictReader(io.StringIO(text))}
    assert {k: float(rows[k]) for k in EXPECTED} == EXPECTED

    pdf = w.call("GET", "/reports/audit-summary", "C", 200, params={"audit_id": aid, "format": "pdf"})
    words = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf.content)).pages)
    assert pdf.content.startswith(b"%PDF") and words.count("0.875") >= 3 and "upcoded" in words


def test_scorecards_and_follow_up(signed: tuple[World, str]) -> None:
    w, _ = signed
    p1 = w.users["P1"].id
    card = w.call("GET", "/reports/provider-scorecard", "C", 200).json()
    mine = next(r for r in card["rows"] if r["provider_id"] == p1)
    assert (mine["line_accuracy"], mine["encounter_accuracy"], mine["encounter_error_rate"]) == (
        0.75,
        0.75,
        0.25,
    )
    own = w.call("GET", "/reports/provider-scorecard", "P1", 200).json()
    assert {r["provider_id"] for r in own["rows"]} == {p1}
    coders = w.call("GET", "/reports/coder-scorecard", "C", 200, params={"format": "csv"}).text
    k1 = next(r for r in csv.DictReader(io.StringIO(coders)) if r["coder_id"] == w.users["K1"].id)
    assert (float(k1["line_accuracy"]), int(k1["lines_reviewed"])) == (0.75, 4)
    follow = w.call("GET", "/reports/follow-up", "C", 200).json()
    kinds = sorted((r["kind"], r["days_left"]) for r in follow["rows"])
    assert kinds == [("education", 45), ("overpayment", 60), ("reaudit", 45)]
    pdf = w.call("GET", "/reports/follow-up", "C", 200, params={"format": "pdf"}).content
    assert "overpayment" in " ".join(p.extract_text() for p in PdfReader(io.BytesIO(pdf)).pages)


def test_bundle_rederives_sample_and_scores(signed: tuple[World, str], tmp_path: Path) -> None:
    w, aid = signed
    response = w.client.post("/api/v1/exports", headers=w.headers["C"], json={})
    assert response.status_code == 200, response.text
    bundle = tmp_path / "bundle.zip"
    bundle.write_bytes(response.content)
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(tmp_path / "b")
    b = tmp_path / "b"
    service_sample = w.call("GET", f"/audits/{aid}", "C", 200).json()["sample"]
    run = subprocess.run(
        [sys.executable, str(b / "audit_sample.py"), str(b / f"audit-{aid}-frame.json")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == [e["id"] for e in service_sample]
    check = subprocess.run(
        [sys.executable, str(b / "audit_sample.py"), str(b / f"audit-{aid}-frame.json"), "--check",
         str(b / f"audit-{aid}-sample.json")], capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert check.returncode == 0, check.stderr
    # every score, re-derived from the bundle's findings by the published method
    findings = json.loads((b / f"audit-{aid}-findings.json").read_text())
    current = [f for f in findings if f["replaced_by"] is None]
    rows = [
        Row(f["encounter_id"], f["provider_id"], f["line"]["author_id"], f["verdict"], f["status"],
            f["line"]["system"], f["line"]["code"], f["category"], (f["revised"] or {}).get("code"))
        for f in current
    ]  # fmt: skip
    scores = json.loads((b / f"audit-{aid}-scores.json").read_text())
    assert score_rows(rows, scores["method"]["version"]) == scores
    signed_report = json.loads((b / f"audit-{aid}-signed-report.json").read_text())
    assert signed_report["signature"]["status"] == "valid" and signed_report["report"]["scores"] == scores
    assert b"version:" in (b / "audit_scoring.yaml").read_bytes()
    verify = subprocess.run(
        [sys.executable, str(b / "verify.py"), str(bundle)], capture_output=True, text=True, timeout=120
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr


def test_a_tampered_frame_is_refused_by_the_script(signed: tuple[World, str], tmp_path: Path) -> None:
    w, aid = signed
    response = w.client.post("/api/v1/exports", headers=w.headers["C"], json={})
    with zipfile.ZipFile(io.BytesIO(response.content)) as zf:
        zf.extractall(tmp_path)
    frame_path = tmp_path / f"audit-{aid}-frame.json"
    data = json.loads(frame_path.read_text())
    data["frame"] = data["frame"][1:]
    frame_path.write_text(json.dumps(data))
    script = tmp_path / "audit_sample.py"
    command = [sys.executable, str(script), str(frame_path)]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1 and "frame_sha256" in run.stderr
