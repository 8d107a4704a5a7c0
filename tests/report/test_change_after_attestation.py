"""The changes after attestation the ledger writer keeps (audit.ledger.changes): after a mix of real
operations they are exactly the events a replay of the ledger, in Python, finds; `audit verify` names
a forged, missing or moved row; migration 0016 fills the table from existing events."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import delete, insert, inspect, select, text, update
from sqlmodel import Session

from audit.config import get_settings
from audit.db import make_engine
from audit.ledger import changes
from audit.ledger.problems import ROLLUP
from audit.ledger.verification import verify_ledger
from audit.migrate import downgrade, upgrade
from audit.models import LedgerEvent
from tests.report.scenario import Org

PREVIOUS = "0015_rollup_em"


def _log_id() -> str:
    return get_settings().log_id


def replayed(session: Session) -> dict[int, tuple[str, str]]:
    """seq -> (type, encounter) of every allowed code event after its encounter's first allowed
    attestation, found by reading the hashed payloads in order (not the indexed columns or SQL)."""
    attested: set[str] = set()
    found: dict[int, tuple[str, str]] = {}
    rows = session.exec(
        select(LedgerEvent.seq, LedgerEvent.payload)  # type: ignore[call-overload]
        .where(LedgerEvent.log_id == _log_id())
        .order_by(LedgerEvent.seq)
    )
    for seq, payload in rows:
        event = json.loads(bytes(payload))
        encounter = event.get("encounter_id")
        if event["outcome"] != "allowed" or not encounter:
            continue
        if event["type"] == "encounter.attest":
            attested.add(encounter)
        elif event["type"] in ("code.add", "code.change", "code.void") and encounter in attested:
            found[seq] = (event["type"], encounter)
    return found


def stored(session: Session) -> dict[int, str]:
    rows = session.execute(select(changes.CHANGES.c.seq, changes.CHANGES.c.encounter_id))
    return {seq: encounter for seq, encounter in rows}


def test_the_kept_changes_are_what_a_replay_of_the_ledger_finds(org: Org, session: Session) -> None:
    replay = replayed(session)
    assert len(replay) == 2  # the scenario changes two lines after attestation
    assert stored(session) == {seq: encounter for seq, (_, encounter) in replay.items()}
    assert list(changes.problems(session, _log_id())) == []


@pytest.mark.parametrize("how", ["deleted", "inserted", "moved", "re-pointed"])
def test_verify_names_a_forged_or_missing_change(org: Org, session: Session, how: str) -> None:
    table, first = changes.CHANGES, min(stored(session))
    if how == "deleted":
        session.execute(delete(table).where(table.c.seq == first))
    elif how == "inserted":
        row = session.execute(select(table).where(table.c.seq == first)).mappings().one()
        session.execute(insert(table).values({**row, "seq": first - 1}))
    elif how == "moved":
        row = session.execute(select(table.c.ts).where(table.c.seq == first)).scalar_one()
        session.execute(update(table).where(table.c.seq == first).values(ts=row.replace(year=row.year - 1)))
    else:
        session.execute(update(table).where(table.c.seq == first).values(encounter_id="not-this-one"))
    result = verify_ledger(session)
    assert not result.ok
    found = [p for p in result.problems if p.kind == ROLLUP and p.table == changes.TABLE]
    expected_id = str(first - 1 if how == "inserted" else first)
    assert [p.id for p in found] == [expected_id], result.problems[:3]
    assert found[0].field == {"moved": "ts", "re-pointed": "encounter_id"}.get(how)


EVENT = (
    "INSERT INTO ledger_event (log_id, seq, event_id, ts, type, actor_id, encounter_id, provider_id, "
    "outcome, payload, leaf_hash, chain_hash) VALUES (:log, :seq, :eid, :ts, :type, 'k1', :enc, 'u1', "
    ":outcome, :blob, :blob, :blob)"
)


def test_the_migration_fills_the_table_from_existing_events(fresh_db_url: str) -> None:
    """From the previous head with events: a change before the attestation, a denied attestation, an
    allowed one, then an allowed and a denied change, and a change of an encounter never attested."""
    upgrade(fresh_db_url, PREVIOUS)
    events = [
        ("code.add", "allowed", "e1"), ("encounter.attest", "denied", "e1"),
        ("code.change", "allowed", "e1"), ("encounter.attest", "allowed", "e1"),
        ("code.change", "allowed", "e1"), ("code.void", "denied", "e1"),
        ("code.add", "allowed", "e2"), ("code.void", "allowed", "e1"),
    ]  # fmt: skip
    engine = make_engine(fresh_db_url)
    with engine.begin() as conn:
        for seq, (type_, outcome, eid) in enumerate(events):
            conn.execute(text(EVENT), {"log": _log_id(), "seq": seq, "eid": f"ev-{seq}", "type": type_,
                                       "ts": f"2026-01-05 10:00:{seq:02d}", "enc": eid, "outcome": outcome,
                                       "blob": b"x"})  # fmt: skip
    engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT seq, encounter_id, ts FROM change_after_attestation ORDER BY seq"))
        assert [(seq, enc, str(ts)[:19]) for seq, enc, ts in rows] == [
            (4, "e1", "2026-01-05 10:00:04"),
            (7, "e1", "2026-01-05 10:00:07"),
        ]
        assert list(changes.problems(conn, _log_id())) == []
        late_index = {ix["name"] for ix in inspect(conn).get_indexes("attestation")}
        assert "ix_attestation_late_signed_at" in late_index
    engine.dispose()
    downgrade(fresh_db_url, PREVIOUS)
    upgrade(fresh_db_url)
