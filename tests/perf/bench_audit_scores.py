"""Benchmark: scoring a coding audit of 1,000 encounters and 10,000 findings (issue 13: under 1 s).

    .venv/bin/python tests/perf/bench_audit_scores.py [--pg postgresql://postgres@127.0.0.1:5432/audits_bench]
        [--runs 7]

Builds (once; the database is kept and reused) a migrated database holding 1,000 encounters of 40
providers coded by 20 coders, one sampled audit and 10,000 current findings on them (one in ten a
disagreement, some disputed and decided), then times `score_audit` (the query and the scoring by
policies/audit_scoring.yaml, per audit, provider and coder) beside a baseline measured in the same
run: a plain SQL aggregate over the same rows (`GROUP BY provider_id, verdict, status`). Reports min
and median of the runs through tests/perf/table.py; ratio = baseline / product (a time: > 1 would mean
faster than the bare aggregate, which scoring, doing more, is not expected to be).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("AUDIT_ENV", "test")
os.environ.setdefault("AUDIT_SIGNING_KEY_FILE", str(Path(tempfile.gettempdir()) / "bench-audits.key"))

from sqlalchemy import insert, select, text
from sqlalchemy.engine import Engine
from sqlmodel import Session

from audit.coding_audit.models import AuditFinding, CodingAudit
from audit.coding_audit.scoring import score_audit
from audit.db import make_engine
from audit.migrate import upgrade
from audit.models import CodeLine, Encounter, User
from tests.perf.table import engine_of, report

ENCOUNTERS, FINDINGS_PER_ENCOUNTER = 1_000, 10
TARGET_S = 1.0
AUDIT_ID = "00000000-0000-4000-8000-0000000a0d17"
CATEGORIES = ["upcoded", "downcoded", "unbundled", "wrong diagnosis", "missing or wrong modifier"]
NOW = datetime.now(UTC)


def _uid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def table(model: type) -> Any:
    """A model's Core table (SQLModel declares `__table__` at run time only)."""
    return model.__table__  # type: ignore[attr-defined]


def build(engine: Engine) -> None:
    rng = random.Random(13)
    with engine.begin() as conn:
        if conn.execute(select(table(CodingAudit).c.id).where(table(CodingAudit).c.id == AUDIT_ID)).first():
            return  # built by an earlier run
        users = [{"id": _uid(rng), "username": f"bench.u{i}", "display_name": f"User {i}",
                  "password_hash": "x", "roles": ["provider" if i < 40 else "coder"], "created_at": NOW}
                 for i in range(60)]  # fmt: skip
        conn.execute(insert(table(User)), users)
        providers, coders = [u["id"] for u in users[:40]], [u["id"] for u in users[40:]]
        encounters, lines, findings = [], [], []
        for i in range(ENCOUNTERS):
            eid, provider = _uid(rng), providers[i % 40]
            encounters.append({"id": eid, "source": "bench", "external_id": f"B{i}", "patient_ref": f"M{i}",
                               "date_of_service": date(2026, 1, 1) + timedelta(days=i % 90),
                               "rendering_provider_id": provider, "supervising_provider_ids": [],
                               "status": "attested", "created_by": provider, "created_at": NOW})  # fmt: skip
            for j in range(FINDINGS_PER_ENCOUNTER):
                lid, coder = _uid(rng), coders[(i + j) % 20]
                code = "99214" if j == 0 else f"{80000 + j}"
                lines.append({"id": lid, "encounter_id": eid, "system": "CPT", "code": code, "modifiers": [],
                              "units": 1, "diagnosis_pointers": [], "version": 1, "status": "active",
                              "entered_by": coder, "entered_role": "coder", "entered_at": NOW,
                              "changed_by": coder, "changed_at": NOW})  # fmt: skip
                wrong = rng.random() < 0.1
                status = rng.choice(["open", "accepted", "upheld", "reversed"]) if wrong else "open"
                findings.append({"id": _uid(rng), "audit_id": AUDIT_ID, "encounter_id": eid,
                                 "provider_id": provider, "line_id": lid, "line_version": 1,
                                 "line_system": "CPT", "line_code": code,
                                 "line_author_id": coder, "verdict": "disagree" if wrong else "agree",
                                 "revised": {"code": "99213"} if wrong else None,
                                 "revised_code": "99213" if wrong else None,
                                 "category": rng.choice(CATEGORIES) if wrong else None, "rationale": "bench",
                                 "auditor_id": users[0]["id"], "recorded_at": NOW,
                                 "status": status})  # fmt: skip
        conn.execute(insert(table(Encounter)), encounters)
        conn.execute(insert(table(CodeLine)), lines)
        conn.execute(insert(table(CodingAudit)), [{
            "id": AUDIT_ID, "name": "bench", "auditor_id": users[0]["id"], "date_from": date(2026, 1, 1),
            "date_to": date(2026, 3, 31), "provider_ids": [], "code_systems": [], "em_only": False,
            "method": "random", "n": ENCOUNTERS, "seed": 1, "status": "sampled", "frame": [], "parties": [],
            "sample": [e["id"] for e in encounters], "opened_at": NOW}])  # fmt: skip
        for start in range(0, len(findings), 2000):
            conn.execute(insert(table(AuditFinding)), findings[start : start + 2000])


BASELINE = text(
    "SELECT provider_id, verdict, status, count(*) FROM audit_finding "
    "WHERE audit_id = :a AND replaced_by IS NULL GROUP BY provider_id, verdict, status"
)


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pg", default=None, help="a PostgreSQL URL (its database is created if missing)")
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    url = args.pg or f"sqlite:///{Path(tempfile.gettempdir()) / 'audits_bench.db'}"
    upgrade(url)
    engine = make_engine(url)
    build(engine)
    with Session(engine) as session:
        scores = score_audit(session, AUDIT_ID)
        assert scores["audit"]["lines_reviewed"] > 9_000, scores["audit"]
        product = timed(lambda: score_audit(session, AUDIT_ID), args.runs)
        baseline = timed(lambda: session.execute(BASELINE, {"a": AUDIT_ID}).all(), args.runs)
    engine.dispose()
    name = engine_of(url)
    for label, pick in (("min", min), ("median", statistics.median)):
        p, b = pick(product), pick(baseline)
        report(f"score audit 1k encounters / 10k findings ({label})", product=p, unit="s",
               target=f"< {TARGET_S} s (issue 13)", passed=p < TARGET_S, engine=name, baseline=b,
               ratio=b / p)  # fmt: skip


if __name__ == "__main__":
    main()
