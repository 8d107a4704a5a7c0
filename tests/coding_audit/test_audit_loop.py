"""The whole loop through the API: open, sample, findings, scores, dispute, decide, sign, follow-up,
re-audit; known counts give known scores."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.engine import Connection

from audit.coding_audit import sample_script, service
from audit.ledger.service import LEDGER
from tests.coding_audit.world import World, build, run_loop, today
from tests.conftest import People
from tests.support import PASSWORD


@pytest.fixture
def world(client: TestClient, people: People) -> World:
    return build(client, people)


def _events(connection: Connection, type_: str) -> list[dict]:
    rows = connection.execute(select(LEDGER.c.payload).where(LEDGER.c.type == type_).order_by(LEDGER.c.seq))
    return [json.loads(bytes(r[0])) for r in rows]


def test_whole_loop(world: World, connection: Connection, monkeypatch: pytest.MonkeyPatch) -> None:
    w = world
    aid, found = run_loop(w)
    # a second draw returns the same sample
    first = w.call("GET", f"/audits/{aid}", "A", 200).json()
    again = w.call("POST", f"/audits/{aid}/sample", "A", 200).json()
    assert [e["id"] for e in again["encounters"]] == [r["id"] for r in first["sample"]]
    # the finding links the line's version, its author and the attester (none yet)
    f = next(x for x in first["findings"] if x["id"] == found["p1e1"])
    assert (
        f["line"]["version"] == 1
        and f["line"]["author_id"] == w.users["K1"].id
        and f["line"]["code"] == "99214"
    )

    scores = w.call("GET", f"/audits/{aid}/scores", "A", 200).json()
    assert scores["method"]["version"] == "1.0.0"
    # 9 lines: 7 correct, 2 in error (one disagree, one added); 8 encounters, 2 in error
    assert scores["accuracy"] == {"line": round(7 / 9, 4), "encounter": 0.75}
    assert scores["em_agreement"] == 0.875
    p1 = next(p for p in scores["providers"] if p["provider_id"] == w.users["P1"].id)
    assert (p1["line_accuracy"], p1["encounter_accuracy"], p1["encounter_error_rate"]) == (0.6, 0.5, 0.5)
    k1 = next(c for c in scores["coders"] if c["coder_id"] == w.users["K1"].id)
    assert (k1["lines_reviewed"], k1["line_accuracy"]) == (4, 0.75)

    # the coder accepts their line's finding, the provider disputes it and the added line
    w.call(
        "POST",
        f"/findings/{found['p1e1']}/responses",
        "K1",
        201,
        json={"response": "accept", "comment": "ok"},
    )
    w.call(
        "POST",
        f"/findings/{found['p1e1']}/responses",
        "P1",
        201,
        json={"response": "dispute", "comment": "MDM"},
    )
    w.call(
        "POST",
        f"/findings/{found['added']}/responses",
        "P1",
        201,
        json={"response": "dispute", "comment": "no"},
    )
    refused = w.call("POST", f"/audits/{aid}/signature", "A", 409, json={"password": PASSWORD}).json()
    assert sorted(refused["finding_ids"]) == sorted([found["p1e1"], found["added"]])
    assert _events(connection, "coding_audit.sign")[-1]["outcome"] == "failed"
    w.call(
        "POST",
        f"/findings/{found['p1e1']}/decision",
        "C",
        200,
        json={"decision": "upheld", "comment": "4 MDM"},
    )
    w.call(
        "POST",
        f"/findings/{found['added']}/decision",
        "C",
        200,
        json={"decision": "reversed", "comment": "bundled"},
    )
    w.call("POST", f"/audits/{aid}/signature", "A", 401, json={"password": "not the password"})
    signed = w.call("POST", f"/audits/{aid}/signature", "A", 201, json={"password": PASSWORD}).json()
    assert signed["status"] == "valid" and len(signed["findings_digest"]) == 64 and signed["meaning"]

    scores = w.call("GET", f"/audits/{aid}/scores", "C", 200).json()
    assert scores["accuracy"] == {"line": 0.875, "encounter": 0.875}
    view = w.call("GET", f"/audits/{aid}", "C", 200).json()
    assert view["status"] == "signed" and view["open_disputes"] == 0
    kinds = sorted((f["kind"], f["provider_id"]) for f in view["follow_up"])
    p1_id = w.users["P1"].id
    assert kinds == [("education", p1_id), ("overpayment", p1_id), ("reaudit", p1_id)]
    clock = next(f for f in view["follow_up"] if f["kind"] == "overpayment")
    assert clock["encounter_id"] == w.encounters["P1"][1] and clock["days_left"] == 60
    reaudit = next(f for f in view["follow_up"] if f["kind"] == "reaudit")
    assert reaudit["due_on"] == (today() + timedelta(days=45)).isoformat()

    # a later change to a finding supersedes the signature
    w.finding(aid, "A", w.encounters["P2"][0], "agree")
    view = w.call("GET", f"/audits/{aid}", "C", 200).json()
    assert view["status"] == "sampled" and view["signatures"][-1]["status"] == "superseded"
    assert _events(connection, "coding_audit.signature_supersede")

    # the re-audit: its own sample, no sooner than 45 days after signing
    rid = reaudit["reaudit_id"]
    w.call("GET", f"/audits/{rid}", "A", 403)  # its dates run past the auditor's engagement
    child = w.call("GET", f"/audits/{rid}", "C", 200).json()
    assert child["status"] == "scheduled" and child["seed"] != 20260901
    assert child["scope"]["provider_ids"] == [w.users["P1"].id]
    w.call("POST", f"/audits/{rid}/sample", "C", 409)
    w.encounter("P1", "K1", 0, "99214")
    monkeypatch.setattr(service, "today", lambda: today() + timedelta(days=46))
    drawn = w.call("POST", f"/audits/{rid}/sample", "C", 200).json()
    assert [e["id"] for e in drawn["encounters"]] == [w.encounters["P1"][-1]]


def test_sample_matches_the_stand_alone_algorithm(world: World) -> None:
    w = world
    aid = w.open_audit(sampling={"method": "stratified", "n": 5, "strata": "em_level"}).json()["id"]
    drawn = w.call("POST", f"/audits/{aid}/sample", "A", 200).json()
    audit = w.call("GET", f"/audits/{aid}", "C", 200).json()
    assert len(drawn["encounters"]) == 5 and drawn["frame_size"] == 8
    frame = [{k: e[k] for k in ("id", "provider_id", "em_level")} for e in drawn["encounters"]]
    assert sample_script.frame_digest(sorted(frame, key=lambda r: r["id"])) != drawn["frame_sha256"]
    assert audit["frame_sha256"] == drawn["frame_sha256"]


def test_findings_only_on_sampled_encounters_and_with_their_fields(world: World) -> None:
    w = world
    aid = w.open_audit(sampling={"method": "random", "n": 2}).json()["id"]
    sample = [e["id"] for e in w.call("POST", f"/audits/{aid}/sample", "A", 200).json()["encounters"]]
    outside = next(e for e in w.encounters["P1"] + w.encounters["P2"] if e not in sample)
    assert w.finding(aid, "A", outside, "agree", 422).json()["field"] == "encounter_id"
    assert w.finding(aid, "A", sample[0], "disagree", 422, category="upcoded").json()["field"] == "revised"
    assert (
        w.finding(aid, "A", sample[0], "disagree", 422, revised={"code": "99212"}).json()["field"]
        == "category"
    )
    bad = w.finding(aid, "A", sample[0], "disagree", 422, revised={"code": "99212"}, category="sloppy")
    assert "category" in bad.text
    assert (
        w.finding(aid, "A", sample[0], "added", 422, line_id=w.lines[sample[0]]).json()["field"] == "line_id"
    )


def test_sample_size_names_its_formula(world: World) -> None:
    asked = {"confidence": 0.95, "precision": 0.05, "expected_error_rate": 0.2}
    r = world.call("GET", "/audits/sample-size", "C", 200, params=asked).json()
    assert r["n"] == 246 and "Cochran" in r["formula"]
    r = world.call("GET", "/audits/sample-size", "C", 200, params={"population": 500}).json()
    assert r["n"] == 166  # n0 = 245.85; 245.85 / (1 + 244.85 / 500) = 165.04, rounded up


def test_sample_size_refuses_a_precision_no_audit_could_meet() -> None:
    from audit.coding_audit.sample_size import sample_size
    from audit.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        sample_size(0.63, 9.2e-247, 0.92)
    assert refused.value.field == "precision"
    # the smallest precision the API takes: z(99.9%) = 3.2905267, 3.2905267^2 * 0.25 / 0.001^2 = 2,706,891.5
    assert sample_size(0.999, 0.001, 0.5)["n"] == 2_706_892


@pytest.mark.parametrize(
    ("confidence", "precision", "rate", "population"),
    [
        (0.95, 0.05, 5e-324, 1),  # schemathesis: 1 + (n0 - 1) / 1 rounded to zero
        (0.95, 0.05, 5e-324, None),
        (0.9999999999999999, 0.001, 0.5, None),  # 1 - (1 - c) / 2 rounds to 1.0
        (0.5000000000000001, 0.4999999999999999, 0.9999999999999999, 100_000_000),
    ],
)
def test_sample_size_at_the_edges_of_its_ranges(
    confidence: float, precision: float, rate: float, population: int | None
) -> None:
    from audit.coding_audit.sample_size import sample_size

    n = sample_size(confidence, precision, rate, population)["n"]
    assert 1 <= n <= (population or 10**9)


def test_sample_size_never_fails_inside_the_api_ranges() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from audit.coding_audit.sample_size import MIN_PRECISION, sample_size

    open_unit = {"allow_nan": False, "exclude_min": True, "exclude_max": True}

    @settings(max_examples=300, deadline=None)
    @given(
        st.floats(0.5, 1, **open_unit),
        st.floats(MIN_PRECISION, 0.5, allow_nan=False, exclude_max=True),
        st.floats(0, 1, **open_unit),
        st.none() | st.integers(1, 100_000_000),
    )
    def check(confidence: float, precision: float, rate: float, population: int | None) -> None:
        r = sample_size(confidence, precision, rate, population)
        assert 1 <= r["n"] <= (population or r["n0"] or 1) and r["n"] <= max(r["n0"], 1)

    check()
