"""`audit verify` reconciles the coding-audit tables with their events: a verdict, a decision, a
signature, its signed report or a follow-up edited behind the service's back is named by table, id
and field.

The whole loop runs through the API (open, sample, findings, a replaced finding, responses, disputes,
decisions, the signature, follow-up with a re-audit, a later finding that supersedes the signature),
then rows are changed with plain SQL, as an insider with the app's database role would."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text, update
from sqlalchemy.engine import Connection

from audit.coding_audit import sample_script
from audit.db import metadata
from audit.ledger.problems import FIELD, ROW_MISSING, ROW_UNEXPECTED
from audit.ledger.reconcile import RECONCILED, Reconciliation
from audit.ledger.replay import LEGACY, Replay
from audit.ledger.replay_audits import frame_digest
from audit.ledger.service import LEDGER
from tests.coding_audit.world import World, build, run_loop, settle_and_sign
from tests.conftest import People
from tests.ledger.test_reconcile import only, verify


@dataclass
class Loop:
    world: World
    audit: str
    found: dict[str, str]
    replaced: str  # the finding a second verdict on its line replaced


@pytest.fixture
def loop(client: TestClient, people: People) -> Loop:
    w = build(client, people)
    aid, found = run_loop(w)
    first = w.encounters["P1"][0]
    replaced = found["p1e0"]
    found["p1e0"] = w.finding(
        aid, "A", first, "disagree", revised={"code": "99212"}, category="upcoded"
    ).json()["id"]
    w.call(
        "POST",
        f"/findings/{found['p1e1']}/responses",
        "K1",
        201,
        json={"response": "accept", "comment": "ok"},
    )
    w.call(
        "POST",
        f"/findings/{found['p1e0']}/responses",
        "P1",
        201,
        json={"response": "accept", "comment": "yes"},
    )
    settle_and_sign(w, aid, found)
    w.finding(aid, "A", w.encounters["P2"][0], "agree")  # after signing: supersedes the signature
    return Loop(w, aid, found, replaced)


def _one(connection: Connection, sql: str, **params: str) -> str:
    return str(connection.execute(text(sql), params).scalar_one())


def test_the_whole_loop_reconciles_with_nothing_unaccounted(loop: Loop, connection: Connection) -> None:
    result = verify(connection)
    assert result.ok, result.problems
    assert result.unreconciled == []
    counts = {
        table: int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
        for table in (
            "coding_audit",
            "audit_finding",
            "audit_finding_response",
            "audit_signature",
            "audit_follow_up",
        )
    }
    # the audit and its re-audit; 9 findings and the 2 that replaced earlier ones; 2 accepts and 2
    # disputes; the signature (superseded); P1's education and re-audit, and an overpayment clock on
    # each of their two upcoded encounters
    assert counts == {
        "coding_audit": 2,
        "audit_finding": 11,
        "audit_finding_response": 4,
        "audit_signature": 1,
        "audit_follow_up": 4,
    }


P1E1 = "SELECT id FROM audit_finding WHERE id = :p1e1"
THE_AUDIT = "SELECT id FROM coding_audit WHERE id = :audit"
EDITS = {
    # name: table, column, SQL value, how to find the row
    "verdict": ("audit_finding", "verdict", "'agree'", P1E1),
    "decision": ("audit_finding", "status", "'reversed'", P1E1),
    "revised_code": ("audit_finding", "revised_code", "'99215'", P1E1),
    "revived finding": (
        "audit_finding",
        "replaced_by",
        "NULL",
        "SELECT id FROM audit_finding WHERE id = :replaced",
    ),
    "response": (
        "audit_finding_response",
        "response",
        "'accept'",
        "SELECT id FROM audit_finding_response WHERE response = 'dispute' AND finding_id = :p1e1",
    ),
    "revived signature": ("audit_signature", "status", "'valid'", "SELECT id FROM audit_signature"),
    "signature digest": ("audit_signature", "findings_digest", "'0000'", "SELECT id FROM audit_signature"),
    "signed report": (
        "audit_signature",
        "report",
        """'{"findings": []}'""",
        "SELECT id FROM audit_signature",
    ),
    "audit status": ("coding_audit", "status", "'signed'", THE_AUDIT),
    "sample": ("coding_audit", "sample", "'[]'", THE_AUDIT),
    "frame": ("coding_audit", "frame", "'[]'", THE_AUDIT),
    "parties": ("coding_audit", "parties", """'["someone"]'""", THE_AUDIT),
    "follow-up due": (
        "audit_follow_up",
        "due_on",
        "'2099-01-01'",
        "SELECT id FROM audit_follow_up WHERE kind = 'reaudit'",
    ),
}


def test_each_edited_coding_audit_row_is_named_by_table_id_and_field(
    loop: Loop, connection: Connection
) -> None:
    """Each edit alone, in a savepoint rolled back after its check (one audit loop for all of them)."""
    named = {}
    for name, (table, column, value, locate) in EDITS.items():
        edit = connection.begin_nested()
        row_id = _one(connection, locate, audit=loop.audit, replaced=loop.replaced, p1e1=loop.found["p1e1"])
        connection.execute(text(f"UPDATE {table} SET {column} = {value} WHERE id = :id"), {"id": row_id})
        problem = only(verify(connection), FIELD)
        edit.rollback()
        assert problem.expected != problem.found, name
        named[name] = (problem.table, problem.id, problem.field) == (table, row_id, column)
    assert named == dict.fromkeys(EDITS, True)
    assert verify(connection).ok  # every edit was undone


def test_a_verdict_changed_inside_the_signed_report_is_named(loop: Loop, connection: Connection) -> None:
    """The export bundle ships the stored signed report: a finding rewritten inside it (the signature
    row and its digest untouched) no longer hashes to the signed findings digest."""
    table = metadata.tables["audit_signature"]
    signature_id, report = connection.execute(select(table.c.id, table.c.report)).one()
    disagreed = next(f for f in report["findings"] if f["verdict"] == "disagree")
    disagreed["verdict"] = "agree"
    connection.execute(update(table).where(table.c.id == signature_id).values(report=report))
    problem = only(verify(connection), FIELD)
    assert (problem.table, problem.id, problem.field) == ("audit_signature", signature_id, "report")


def test_a_forged_response_and_a_deleted_follow_up_are_named(loop: Loop, connection: Connection) -> None:
    p1 = loop.world.users["P1"].id
    connection.execute(
        text(
            "INSERT INTO audit_finding_response (id, finding_id, responder_id, role, response, comment, "
            "responded_at) VALUES ('forged', :f, :p, 'provider', 'dispute', 'never said', :t)"
        ),
        {"f": loop.found["p1e2"], "p": p1, "t": "2026-01-01 00:00:00"},
    )
    gone = _one(connection, "SELECT id FROM audit_follow_up WHERE kind = 'education'")
    connection.execute(text("DELETE FROM audit_follow_up WHERE id = :id"), {"id": gone})
    result = verify(connection)
    unexpected, missing = only(result, ROW_UNEXPECTED), only(result, ROW_MISSING)
    assert (unexpected.table, unexpected.id) == ("audit_finding_response", "forged")
    assert (missing.table, missing.id) == ("audit_follow_up", gone)


def test_the_frame_digest_is_the_one_the_shipped_sample_script_computes(
    loop: Loop, connection: Connection
) -> None:
    """The verifier hashes the stored frame itself (the ledger may not import the coding-audit
    services): it must agree with `sample_script.py`, the stand-alone script the bundle ships."""
    audit = loop.world.call("GET", f"/audits/{loop.audit}", "C", 200).json()
    frame = connection.execute(
        text("SELECT frame FROM coding_audit WHERE id = :id"), {"id": loop.audit}
    ).scalar_one()
    frame = frame if isinstance(frame, list) else json.loads(frame)
    assert frame_digest(frame) == sample_script.frame_digest(frame) == audit["frame_sha256"]


def test_an_audit_sampled_before_sample_events_named_its_parties_is_unreconciled_not_failed(
    loop: Loop, connection: Connection
) -> None:
    """Databases upgraded with audits already sampled: their sample events carry no `detail.parties`.
    The replay then cannot vouch for the stored parties, and says so instead of guessing."""

    replay = Replay()
    rows = connection.execute(text(f"SELECT seq, payload FROM {LEDGER.name} ORDER BY seq")).all()
    for seq, payload in rows:
        body = json.loads(bytes(payload))
        if body["type"] == "coding_audit.sample":
            body["detail"].pop("parties")  # as the event was written before this check
        replay.feed(seq, body)
    assert replay.tables["coding_audit"][loop.audit]["parties"] == LEGACY
    table = metadata.tables["coding_audit"]
    columns = [table.c[name] for name in ("id", *RECONCILED["coding_audit"])]
    stored = connection.execute(select(*columns).where(table.c.id == loop.audit)).mappings().one()
    assert stored["parties"], "the sampled audit has parties"
    reconciliation = Reconciliation(replay)
    assert list(reconciliation.compare("coding_audit", [dict(stored)])) == []
    unreconciled = [(u.table, u.field, u.rows) for u in reconciliation.unreconciled()]
    assert unreconciled == [("coding_audit", "parties", 1)]
