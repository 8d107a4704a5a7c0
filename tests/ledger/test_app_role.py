"""The least-privilege PostgreSQL role from `audit db grant-app-role`, tested by connecting AS that role.

It cannot UPDATE, DELETE or TRUNCATE the ledger or the checkpoints, nor disable or drop their
triggers; the services work under it; and what it can still do behind the services' back (rewrite a
user's roles or password hash or a code line, insert rows, append a forged event with a recomputed
chain, a forged checkpoint) is caught by verification, run as the same role.
"""

from __future__ import annotations

import random
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

from audit.attestation.service import attest
from audit.config import get_settings
from audit.db import make_engine
from audit.delegation.service import revoke_delegation
from audit.encounter.codes import add_code, change_code, void_code
from audit.encounter.oversight import add_note
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, ReasonIn
from audit.engagement.schemas import EngagementCreate
from audit.engagement.service import open_engagement, revoke_engagement
from audit.errors import DomainError
from audit.ledger import checkpoints
from audit.ledger.verification import Verification, verify_ledger
from audit.models import utcnow
from audit.principal import CurrentUser
from audit.trail.service import verify_as
from audit.uow import unit_of_work
from audit.user import entry
from audit.user.service import sign_out
from tests.ledger.population import Population, populated_database, witness_at, witness_copy
from tests.ledger.tampering import Ctx, Expect, forged_checkpoint, forged_state_append, row, token_minted
from tests.support import IS_POSTGRES, PASSWORD, TEST_DB_URL, run_cli

pytestmark = pytest.mark.skipif(not IS_POSTGRES, reason="database roles are PostgreSQL's")


@dataclass
class AppRole:
    name: str
    engine: Engine  # connected AS the role
    pop: Population


@pytest.fixture(scope="module")
def app_role() -> Iterator[AppRole]:
    name = f"audit_app_{uuid.uuid4().hex[:8]}"
    try:
        with populated_database(encounters=4) as (url, _, pop):
            granted = run_cli(["db", "grant-app-role", name], url, Path(tempfile.mkdtemp()))
            assert granted.returncode == 0, granted.stdout + granted.stderr
            assert "ledger_event: SELECT, INSERT\n" in granted.stdout
            engine = make_engine(make_url(url).set(username=name).render_as_string(hide_password=False))
            yield AppRole(name, engine, pop)
            engine.dispose()
    finally:
        admin = make_engine(TEST_DB_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{name}"'))
        admin.dispose()


def _refused(engine: Engine, statement: str) -> str:
    with engine.connect() as conn, conn.begin() as transaction:
        with pytest.raises(DBAPIError) as info:
            conn.execute(text(statement))
        transaction.rollback()
    return str(info.value.orig)


GUARDED = {"ledger_event": "ledger_event_no_update_delete", "checkpoint": "checkpoint_no_update_delete"}


@pytest.mark.parametrize("table", list(GUARDED))
def test_the_app_role_cannot_change_remove_or_unguard_the_ledger(app_role: AppRole, table: str) -> None:
    trigger = GUARDED[table]
    for statement in (
        f"UPDATE {table} SET log_id = log_id",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
    ):
        assert "permission denied" in _refused(app_role.engine, statement), statement
    for statement in (
        f"ALTER TABLE {table} DISABLE TRIGGER ALL",
        f"ALTER TABLE {table} DISABLE TRIGGER {trigger}",
        f"DROP TRIGGER {trigger} ON {table}",
    ):
        assert "must be owner" in _refused(app_role.engine, statement), statement
    assert "permission denied" in _refused(app_role.engine, "SET session_replication_role = replica")


def test_the_app_role_cannot_rewrite_authorship_or_delete_records(app_role: AppRole) -> None:
    for statement in (
        "UPDATE code_line SET entered_by = changed_by",
        "UPDATE code_line SET entered_at = changed_at",
        "UPDATE encounter SET rendering_provider_id = created_by",
        "UPDATE attestation SET code_set_digest = 'x'",
        "DELETE FROM code_line",
        "DELETE FROM app_user",
        "TRUNCATE attestation",
        "INSERT INTO code_set_code (release_id, code, billable, is_modifier) VALUES (1, 'X', true, false)",
        "CREATE TABLE shadow (id int)",
    ):
        assert "permission denied" in _refused(app_role.engine, statement), statement


def test_the_services_run_under_the_app_role(app_role: AppRole) -> None:
    """Every kind of write the services make, as the role: a missing grant would fail here. The writes
    commit to the shared population, so its checkpoints go to the population's own witness file."""
    assert app_role.pop.witness is not None
    with witness_at(app_role.pop.witness):
        _services_run_under(app_role)


def _services_run_under(app_role: AppRole) -> None:
    bind, u = app_role.engine, app_role.pop.users

    def run(fn: Callable[..., object], **kw: object) -> object:
        with unit_of_work(bind) as session:
            return fn(session, **kw)

    token, _ = entry.sign_in(bind, username="pop.coder1", password=PASSWORD, address="192.0.2.11")
    run(sign_out, token=token, user=u["coder1"])
    for _ in range(6):  # failed sign-ins count and start the back-off
        with pytest.raises(DomainError):
            entry.sign_in(bind, username="pop.coder3", password="not it at all", address="192.0.2.11")
    encounter = app_role.pop.encounters[0]
    coder, provider = u["coder1"], u["provider1"]
    line = run(
        add_code,
        user=coder,
        encounter_id=encounter,
        data=CodeLineCreate(system="CPT", code="99212", reason="seen again"),
    )
    line_id = line.line.id  # type: ignore[attr-defined]
    run(
        change_code,
        user=coder,
        encounter_id=encounter,
        line_id=line_id,
        if_match='"1"',
        data=CodeLinePatch(code="99213", reason="level 3"),
    )
    run(attest, user=provider, encounter_id=encounter, password=PASSWORD)
    run(void_code, user=coder, encounter_id=encounter, line_id=line_id, data=ReasonIn(reason="duplicate"))
    run(add_note, user=u["compliance"], encounter_id=encounter, kind="annotation", text="reviewed")
    delegation = _live_delegation(bind, u["provider2"])
    run(revoke_delegation, user=u["provider2"], delegation_id=delegation, reason="reassigned")
    data = EngagementCreate(
        auditor_id=u["auditor1"].id,
        date_from=date.today() - timedelta(days=9),
        date_to=date.today(),
        expires_at=utcnow() + timedelta(days=2),
    )
    opened = run(open_engagement, user=u["compliance"], data=data)
    run(revoke_engagement, user=u["compliance"], engagement_id=opened.id, reason="done")  # type: ignore[attr-defined]
    assert checkpoints.create_in_own_transaction(bind) is not None
    verified = run(verify_as, user=u["compliance"])
    assert isinstance(verified, Verification) and verified.ok, verified.problems  # type: ignore[union-attr]


def _live_delegation(bind: Engine, provider: CurrentUser) -> str:
    with bind.connect() as conn:
        return str(
            conn.execute(
                text("SELECT id FROM delegation WHERE provider_id = :p AND revoked_at IS NULL LIMIT 1"),
                {"p": provider.id},
            ).scalar_one()
        )


def _roles(c: Ctx) -> Expect:
    coder = c.user("coder2").id
    c.conn.execute(text('UPDATE app_user SET roles = \'["admin", "coder"]\' WHERE id = :id'), {"id": coder})
    return row("app_user", coder, "roles")


def _password(c: Ctx) -> Expect:
    admin = c.user("admin").id
    stolen = c.conn.execute(
        text("SELECT password_hash FROM app_user WHERE id = :id"), {"id": c.user("coder1").id}
    )
    c.conn.execute(
        text("UPDATE app_user SET password_hash = :h WHERE id = :id"), {"h": stolen.scalar_one(), "id": admin}
    )
    return row("app_user", admin, "password_hash")


def _code(c: Ctx) -> Expect:
    line = c.rng.choice(c.ids("code_line"))
    code, units = c.conn.execute(text("SELECT code, units FROM code_line WHERE id = :id"), {"id": line}).one()
    # always a different code and units: a line already billed as 99215 once made this a units-only change
    changed = {"id": line, "code": "99214" if code == "99215" else "99215", "units": units + 2}
    c.conn.execute(text("UPDATE code_line SET code = :code, units = :units WHERE id = :id"), changed)
    return row("code_line", line, "code")


def _new_admin(c: Ctx) -> Expect:
    c.conn.execute(
        text(
            "INSERT INTO app_user (id, username, display_name, password_hash, roles, credential_active,"
            " is_active, failed_signings, created_at) SELECT 'shadow-admin', 'shadow', 'S',"
            " password_hash, '[\"admin\"]', true, true, 0, created_at FROM app_user LIMIT 1"
        )
    )
    return row("app_user", "shadow-admin")


def _new_line(c: Ctx) -> Expect:
    """A copy of a line under a new id, with a code no one entered."""
    line = c.record("code_line", c.rng.choice(c.ids("code_line")))
    columns = ", ".join(line)
    c.conn.execute(
        text(
            f"INSERT INTO code_line ({columns}) SELECT 'shadow-line', {columns.split(', ', 1)[1]} "
            "FROM code_line WHERE id = :id"
        ),
        {"id": line["id"]},
    )
    return row("code_line", "shadow-line")


STILL_POSSIBLE: dict[str, Callable[[Ctx], Expect]] = {
    "make a coder an admin": _roles,
    "give the admin a known password": _password,
    "change a billed code": _code,
    "add an admin with no event": _new_admin,
    "add a code line with no event": _new_line,
    "append a forged event with a recomputed chain": forged_state_append,
    "insert a forged checkpoint": forged_checkpoint,
    "mint a bearer token for another user": token_minted,
}


@pytest.mark.parametrize("what", list(STILL_POSSIBLE))
def test_what_the_app_role_can_still_do_is_caught(app_role: AppRole, what: str, tmp_path: Path) -> None:
    with witness_at(witness_copy(app_role.pop, tmp_path)), app_role.engine.connect() as conn:
        transaction = conn.begin()
        try:
            assert _verify(conn).ok  # the control, as the role
            expect = STILL_POSSIBLE[what](Ctx(conn, random.Random(what), app_role.pop, get_settings().log_id))
            result = _verify(conn)
        finally:
            transaction.rollback()
    assert not result.ok and expect.named_by(result.problems), result.problems


def _verify(conn: Connection) -> Verification:
    checkpoints._frontier.clear()
    with Session(conn, join_transaction_mode="create_savepoint") as session:
        return verify_ledger(session)
