"""Verification reconciles the state tables with the ledger, naming table, id and field of each difference.

Everything is built through the real services inside the test's rolled-back transaction, then
changed behind the services' back with plain SQL, as an insider with the app's database role would.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.attestation.service import attest
from audit.encounter.codes import add_code, change_code
from audit.encounter.oversight import add_note
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, EncounterCreate
from audit.encounter.service import create_encounter
from audit.engagement.schemas import EngagementCreate
from audit.engagement.service import open_engagement
from audit.ledger import service as ledger
from audit.ledger.chain import canonical_json
from audit.ledger.events import Actor, EventDraft
from audit.ledger.problems import COLUMN, EVENT, FIELD, ROW_MISSING, ROW_UNEXPECTED, Problem
from audit.ledger.replay import Replay
from audit.ledger.verification import Verification, verify_ledger
from audit.models import User, utcnow
from audit.principal import CurrentUser
from audit.user.records import public_view, user_event
from tests.conftest import People
from tests.support import IS_POSTGRES, PASSWORD


@dataclass
class Scene:
    provider: CurrentUser
    coder: CurrentUser
    compliance: CurrentUser
    auditor: CurrentUser
    encounter: str
    lines: list[str]
    delegation: str
    engagement: str
    note: str


@pytest.fixture
def scene(people: People, uow: Callable[[], Any]) -> Scene:
    provider, coder = people.make("provider"), people.make("coder")
    compliance, auditor = people.make("compliance"), people.make("auditor")
    delegation = people.delegate(provider, coder)
    with uow() as s:
        data = EncounterCreate(
            external_id="R-1",
            patient_ref="MRN-1",
            date_of_service=date.today() - timedelta(days=2),
            rendering_provider_id=provider.id,
        )
        encounter = create_encounter(s, user=coder, data=data).id
    lines = []
    for system, code in (("ICD-10-CM", "E11.9"), ("CPT", "99213")):
        with uow() as s:
            data = CodeLineCreate(system=system, code=code)
            lines.append(add_code(s, user=coder, encounter_id=encounter, data=data).line.id)
    with uow() as s:
        attest(s, user=provider, encounter_id=encounter, password=PASSWORD)
    with uow() as s:  # an amendment: supersedes the attestation
        patch = CodeLinePatch(code="99214", reason="level 4 documented")
        change_code(s, user=coder, encounter_id=encounter, line_id=lines[1], if_match='"1"', data=patch)
    with uow() as s:
        note = add_note(s, user=compliance, encounter_id=encounter, kind="flag", text="check the level").id
    with uow() as s:
        data = EngagementCreate(
            auditor_id=auditor.id,
            date_from=date.today() - timedelta(days=30),
            date_to=date.today(),
            expires_at=utcnow() + timedelta(days=5),
        )
        engagement = open_engagement(s, user=compliance, data=data).id
    return Scene(provider, coder, compliance, auditor, encounter, lines, delegation, engagement, note)


def verify(connection: Connection) -> Verification:
    with Session(connection, join_transaction_mode="create_savepoint") as session:
        return verify_ledger(session)


def sql(connection: Connection, statement: str, **params: Any) -> None:
    connection.execute(text(statement), params)


def only(result: Verification, kind: str) -> Problem:
    assert not result.ok
    found = [p for p in result.problems if p.kind == kind]
    assert len(found) == 1, result.problems
    return found[0]


def test_a_ledger_written_by_the_services_reconciles_with_nothing_unaccounted(
    scene: Scene, connection: Connection
) -> None:
    result = verify(connection)
    assert result.ok, result.problems
    assert result.problem_count == 0 and result.unreconciled == []
    assert result.events_checked >= 13


EDITS = {
    # table, the column edited, the SQL value, the scene attribute naming the row
    "code": ("code_line", "code", "'99215'", "lines.1"),
    "entered_by": ("code_line", "entered_by", ":provider", "lines.0"),
    "entered_at": ("code_line", "entered_at", "'2020-01-01 00:00:00'", "lines.0"),
    "roles": ("app_user", "roles", '\'["admin", "coder"]\'', "coder"),
    "password_hash": ("app_user", "password_hash", "'$argon2id$forged'", "provider"),
    "encounter_status": ("encounter", "status", "'attested'", "encounter"),
    "attestation_status": ("attestation", "status", "'valid'", None),
    "delegation_revoked_by": ("delegation", "revoked_by", ":provider", "delegation"),
    "engagement_date_to": ("engagement", "date_to", "'2099-12-31'", "engagement"),
    "note_text": ("encounter_note", "text", "'nothing to see'", "note"),
}


def _row_id(scene: Scene, connection: Connection, locator: str | None) -> str:
    if locator is None:
        return str(connection.execute(text("SELECT id FROM attestation")).scalar_one())
    name, _, index = locator.partition(".")
    value = getattr(scene, name)
    value = value[int(index)] if index else value
    return value.id if isinstance(value, CurrentUser) else value


@pytest.mark.parametrize("name", list(EDITS))
def test_a_row_edited_behind_the_ledger_is_named_by_table_id_and_field(
    name: str, scene: Scene, connection: Connection
) -> None:
    table, column, value, locator = EDITS[name]
    row_id = _row_id(scene, connection, locator)
    sql(
        connection,
        f"UPDATE {table} SET {column} = {value} WHERE id = :id",
        id=row_id,
        provider=scene.provider.id,
    )
    problem = only(verify(connection), FIELD)
    assert (problem.table, problem.id, problem.field) == (table, row_id, column)
    assert problem.expected != problem.found


def test_rows_with_no_event_and_events_with_no_row(scene: Scene, connection: Connection) -> None:
    sql(
        connection,
        "INSERT INTO encounter_note (id, encounter_id, kind, text, author_id, created_at) "
        "VALUES ('forged-note', :e, 'annotation', 'all fine', :a, :t)",
        e=scene.encounter,
        a=scene.compliance.id,
        t=datetime(2024, 1, 1),
    )
    sql(connection, "DELETE FROM engagement WHERE id = :id", id=scene.engagement)
    result = verify(connection)
    unexpected, missing = only(result, ROW_UNEXPECTED), only(result, ROW_MISSING)
    assert (unexpected.table, unexpected.id) == ("encounter_note", "forged-note")
    assert (missing.table, missing.id) == ("engagement", scene.engagement)


def test_a_token_with_no_sign_in_is_named(scene: Scene, connection: Connection, people: People) -> None:
    """Tokens from real sign-ins reconcile; one written into api_token (to act as the admin) does not."""
    people.headers(scene.compliance)
    assert verify(connection).ok
    sql(
        connection,
        "INSERT INTO api_token (id, token_hash, user_id, issued_at, expires_at) "
        "VALUES ('minted', 'f00d', :u, :t, :t)",
        u=scene.provider.id,
        t=datetime(2026, 1, 1, 12, 0),
    )
    problem = only(verify(connection), ROW_UNEXPECTED)
    assert (problem.table, problem.id, problem.field) == ("api_token", "minted", "issued_at")


def _drop_ledger_guards(connection: Connection) -> None:
    """Inside the test's transaction, so the rollback restores them."""
    if IS_POSTGRES:
        sql(connection, "DROP TRIGGER ledger_event_no_update_delete ON ledger_event")
    else:
        sql(connection, "DROP TRIGGER ledger_event_no_update")


@pytest.mark.parametrize(
    ("column", "value"), [("encounter_id", "'another-encounter'"), ("ts", "'2001-01-01'")]
)
def test_an_indexed_column_edit_is_named_by_seq_and_column(
    column: str, value: str, scene: Scene, connection: Connection
) -> None:
    seq = connection.execute(text("SELECT min(seq) FROM ledger_event WHERE type = 'code.add'")).scalar_one()
    _drop_ledger_guards(connection)
    sql(connection, f"UPDATE ledger_event SET {column} = {value} WHERE seq = :s", s=seq)
    result = verify(connection)
    problem = only(result, COLUMN)
    assert (problem.seq, problem.field) == (seq, column)
    assert result.first_bad_seq == seq


def append(connection: Connection, draft: EventDraft) -> int:
    with Session(connection, join_transaction_mode="create_savepoint") as s:
        seq = ledger.append_one(s, draft)
        s.commit()
    return seq


def test_a_privilege_granted_in_the_table_shows_on_every_event_it_is_used_for(
    scene: Scene, connection: Connection, client: Any, people: People
) -> None:
    sql(connection, 'UPDATE app_user SET roles = \'["admin", "coder"]\' WHERE id = :id', id=scene.coder.id)
    body = {
        "username": "backdoor",
        "password": "a long enough password",
        "display_name": "B",
        "roles": ["admin"],
    }
    made = client.post("/api/v1/users", json=body, headers=people.headers(scene.coder))
    assert made.status_code == 201, made.text
    sql(connection, "UPDATE app_user SET roles = '[\"coder\"]' WHERE id = :id", id=scene.coder.id)  # cover up
    result = verify(connection)
    problem = only(result, EVENT)
    assert (problem.table, problem.id, problem.field) == ("app_user", scene.coder.id, "actor.role")
    assert problem.found == "admin" and problem.seq == result.first_bad_seq


def test_forged_events_that_contradict_the_ledger_are_named_by_seq(
    scene: Scene, connection: Connection
) -> None:
    line = scene.lines[0]
    state = json.loads(
        connection.execute(
            text("SELECT payload FROM ledger_event WHERE type = 'code.add' AND subject_id = :l"), {"l": line}
        ).scalar_one()
    )["after"]
    stale = {**state, "version": 7}
    forged = [
        EventDraft(
            type="code.change",
            actor=scene.coder.actor("coder"),
            subject_type="code_line",
            subject_id=line,
            encounter_id=scene.encounter,
            provider_id=scene.provider.id,
            before=stale,
            after={**stale, "code": "E11.65", "version": 8},
        ),
        EventDraft(type="report.view", actor=Actor("no-such-user", "compliance")),
        EventDraft(type="report.view", actor=scene.coder.actor("compliance")),
        EventDraft(
            type="code.void",
            actor=scene.coder.actor("coder"),
            subject_type="code_line",
            subject_id="never-added",
            encounter_id=scene.encounter,
            before={},
            after={},
        ),
        EventDraft(
            type="encounter.create",
            actor=scene.coder.actor("coder"),
            subject_type="encounter",
            subject_id="x",
            after="not an object",
        ),
    ]
    seqs = [append(connection, draft) for draft in forged]
    result = verify(connection)
    named = {p.seq for p in result.problems if p.kind == EVENT}
    assert named == set(seqs), result.problems
    assert result.first_bad_seq == seqs[0]
    version = [p for p in result.problems if p.seq == seqs[0] and p.field == "version"]
    assert version and version[0].expected == 1 and version[0].found == 7


def test_an_attestation_of_a_code_set_the_ledger_does_not_imply_is_named(
    scene: Scene, connection: Connection
) -> None:
    stored = json.loads(
        connection.execute(
            text("SELECT payload FROM ledger_event WHERE type = 'encounter.attest'")
        ).scalar_one()
    )
    after = {**stored["after"], "id": "forged-attestation", "code_set_digest": "0" * 64}
    seq = append(
        connection,
        EventDraft(
            type="encounter.attest",
            actor=scene.provider.actor("provider"),
            subject_type="attestation",
            subject_id="forged-attestation",
            encounter_id=scene.encounter,
            provider_id=scene.provider.id,
            after=after,
        ),
    )
    result = verify(connection)
    digest = [p for p in result.problems if p.kind == EVENT and p.field == "code_set_digest"]
    assert digest and digest[0].seq == seq
    missing = [p for p in result.problems if p.kind == ROW_MISSING]
    assert [(p.table, p.id) for p in missing] == [("attestation", "forged-attestation")]


def test_a_user_admin_event_built_by_user_event_is_reconciled(
    scene: Scene, connection: Connection, uow: Callable[[], Any]
) -> None:
    """The helper later user-admin events use: the roles and password digest it records are held
    against the row, so a change applied without its event, or an event without its change, shows."""
    with uow() as s:
        user = s.get(User, scene.coder.id)
        assert user is not None
        before = public_view(user)
        user.roles = ["coder", "auditor"]
        s.add(user)
        s.flush()
        draft = user_event("user.roles", user=user, actor=Actor(None, "test", "test"), before=before)
        ledger.append_one(s, draft)
    assert verify(connection).ok
    sql(connection, "UPDATE app_user SET roles = '[\"coder\"]' WHERE id = :id", id=scene.coder.id)
    problem = only(verify(connection), FIELD)
    assert (problem.field, problem.expected, problem.found) == ("roles", ["auditor", "coder"], ["coder"])


def test_events_from_before_the_evidence_existed_are_reported_as_unreconciled_not_failed(
    connection: Connection, uow: Callable[[], Any]
) -> None:
    """A user created by the previous version: its event has no account digest, and its created_at
    was stamped a moment before the event. Verification passes and says what it could not check."""
    with uow() as s:
        user = User(username="old.timer", display_name="Old", password_hash="$argon2id$old", roles=["coder"])
        s.add(user)
        s.flush()
        ledger.append_one(
            s,
            EventDraft(
                type="user.create",
                actor=Actor(None, "cli", "cli"),
                subject_type="user",
                subject_id=user.id,
                after=public_view(user),
            ),
        )
    result = verify(connection)
    assert result.ok, result.problems
    assert {(u.table, u.field, u.rows) for u in result.unreconciled} == {
        ("app_user", "password_hash", 1),
        ("app_user", "created_at", 1),
    }


def test_the_api_answer_keeps_its_fields_and_adds_a_bounded_list_of_problems(
    scene: Scene, connection: Connection, client: Any, people: People
) -> None:
    for n in range(130):
        sql(
            connection,
            "INSERT INTO encounter_note (id, encounter_id, kind, text, author_id, created_at) "
            "VALUES (:id, :e, 'annotation', 'x', :a, :t)",
            id=f"forged-{n:03d}",
            e=scene.encounter,
            a=scene.compliance.id,
            t=datetime.now(UTC),
        )
    answer = client.get("/api/v1/audit/verify", headers=people.headers(scene.compliance)).json()
    assert {"ok", "events_checked", "head_seq", "chain_hash", "first_bad_seq", "checkpoint"} <= set(answer)
    assert answer["ok"] is False and answer["problem_count"] == 130 and len(answer["problems"]) == 100
    assert answer["problems"][0] == {
        "kind": ROW_UNEXPECTED,
        "detail": "no event accounts for this encounter_note row",
        "table": "encounter_note",
        "id": "forged-000",
    }
    recorded = json.loads(
        connection.execute(
            text("SELECT payload FROM ledger_event WHERE type = 'audit.verify' ORDER BY seq DESC")
        ).first()[0]  # type: ignore[index]
    )
    assert recorded["detail"]["problem_count"] == 130 and recorded["detail"]["ok"] is False


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
TYPES = st.sampled_from(
    [
        "user.create",
        "encounter.create",
        "code.add",
        "code.change",
        "code.void",
        "encounter.attest",
        "attestation.supersede",
        "delegation.grant",
        "delegation.revoke",
        "engagement.open",
        "engagement.revoke",
        "encounter.flag",
        "user.roles",
    ]
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.fixed_dictionaries(
            {"type": TYPES, "outcome": st.just("allowed")},
            optional={
                "subject": JSON,
                "after": JSON,
                "before": JSON,
                "actor": JSON,
                "on_behalf_of": JSON,
                "encounter_id": JSON,
                "detail": JSON,
                "ts": JSON,
                "provider_id": JSON,
            },
        ),
        max_size=6,
    )
)
def test_replay_names_any_malformed_event_instead_of_crashing(bodies: list[dict[str, Any]]) -> None:
    replay = Replay()
    for seq, body in enumerate(bodies):
        replay.feed(seq, json.loads(canonical_json(body)))
    assert all(p.seq is not None for p in replay.problems)


def test_cli_verify_runs_every_check_by_default_and_chain_only_skips_reconciliation(
    fresh_db_url: str, tmp_path: Path
) -> None:
    from audit.db import make_engine
    from audit.migrate import upgrade
    from tests.support import run_cli

    upgrade(fresh_db_url)
    assert run_cli(["demo"], fresh_db_url, tmp_path).returncode == 0
    assert run_cli(["checkpoint"], fresh_db_url, tmp_path).returncode == 0
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:  # an insider changes a billed code with no event
        line, code = conn.execute(text("SELECT id, code FROM code_line ORDER BY id LIMIT 1")).one()
        conn.execute(text("UPDATE code_line SET code = 'Z9999' WHERE id = :id"), {"id": line})
    engine.dispose()
    full = run_cli(["verify"], fresh_db_url, tmp_path)
    assert full.returncode == 1 and "FAIL (full)" in full.stdout, full.stdout
    assert f"field          code_line {line} code: expected '{code}', found 'Z9999'" in full.stdout
    chain_only = run_cli(["verify", "--chain-only"], fresh_db_url, tmp_path)
    assert chain_only.returncode == 0 and "OK (chain-only)" in chain_only.stdout, chain_only.stdout
    incremental = run_cli(["verify", "--incremental"], fresh_db_url, tmp_path)
    assert incremental.returncode == 0 and "OK (incremental): 0 events" in incremental.stdout
    both = run_cli(["verify", "--incremental", "--chain-only"], fresh_db_url, tmp_path)
    assert both.returncode == 2


ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(ANY_JSON)
def test_the_fast_payload_parser_reads_every_payload_as_the_standard_library_does(value: Any) -> None:
    """msgspec speeds verification up; what it refuses goes to json, so no payload reads differently."""
    from audit.ledger.chain import parse_payload

    for form in (json.dumps(value, ensure_ascii=False).encode(), json.dumps(value).encode()):
        assert json.dumps(parse_payload(form)) == json.dumps(json.loads(form))
    for odd in (b'{"n":123456789012345678901234567890}', b'{"n":1e400}', b'{"n":NaN}', b'["\\ud800"]'):
        assert json.dumps(parse_payload(odd)) == json.dumps(json.loads(odd))
