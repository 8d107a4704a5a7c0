"""The report roll-ups (audit.ledger.rollups) after a mix of real operations: every stored row equals
the GROUP BY over the tables and the ledger, provider-responsibility from the roll-ups equals the same
report from the GROUP BYs for every kind of scope, and `audit verify` names a forged or stale row."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import and_, delete, func, insert, select, text, update
from sqlmodel import Session

from audit.config import get_settings
from audit.db import make_engine
from audit.ledger import rollups
from audit.ledger.models import CODE_EVENTS
from audit.ledger.problems import ROLLUP
from audit.ledger.verification import verify_ledger
from audit.migrate import downgrade, upgrade
from audit.models import User, utcnow
from audit.policy.filters import in_log
from audit.policy.scope import Area, ReadScope
from audit.report import dashboard, queries, responsibility
from audit.report.listing import PageRequest
from audit.report.schemas import Report
from tests.report.scenario import Org, today

LOG = "coding-audit"


def _log_id() -> str:
    return get_settings().log_id


def slow(session: Session, scope: ReadScope) -> Report:
    """The report from the GROUP BYs over encounters and events (the path before the roll-ups)."""
    original = responsibility.by_provider_and_day
    responsibility.by_provider_and_day = lambda f: False  # type: ignore[assignment]
    try:
        return responsibility.provider_responsibility(session, scope, utcnow())
    finally:
        responsibility.by_provider_and_day = original


def test_roll_ups_equal_the_group_by_after_a_mix_of_operations(org: Org, session: Session) -> None:
    assert list(rollups.problems(session, _log_id())) == []
    have = rollups.stored(session)
    assert sum(c["encounters"] for c in have.per_day.values()) == 5 + 4  # five by hand, four imported
    assert sum(c["changes_after_attestation"] for c in have.per_day.values()) == 2
    assert sum(have.denied.values()) >= 2
    assert sum(have.per_author.values()) == 6 + 7
    assert sum(have.per_code.values()) >= 7  # the seven imported lines are E/M levels
    assert have.per_code == rollups.em_lines(session)


def test_a_new_line_after_attestation_is_recounted_not_added_twice(org: Org, session: Session) -> None:
    """The writer adds a batch of new lines to the roll-ups before it knows whether one is a change after
    attestation (audit.ledger.pipelined); when one is, the key's recount must replace that addition."""
    key = next(
        k
        for k in rollups.stored(session).per_day
        if k[0] == org.users["P2"].id and k[1] == today() - timedelta(days=20)
    )
    before = rollups.stored(session)
    org.code("P2", "E4", "99214", reason="a second E/M level was documented")  # E4 is attested: a change
    after = rollups.stored(session)
    assert list(rollups.problems(session, _log_id())) == []
    assert (
        after.per_day[key]["changes_after_attestation"]
        == before.per_day[key]["changes_after_attestation"] + 1
    )
    assert after.per_code[(*key, "99214")] == before.per_code.get((*key, "99214"), 0) + 1
    assert (
        after.per_author[(*key, org.users["P2"].id)]
        == before.per_author.get((*key, org.users["P2"].id), 0) + 1
    )


def test_the_report_from_roll_ups_equals_the_group_bys_for_every_scope(org: Org, session: Session) -> None:
    u = org.users
    week_ago = today() - timedelta(days=7)
    scopes = [
        ReadScope("c", None),  # compliance, everything
        ReadScope("c", None, narrow=Area.of(today() - timedelta(days=365), today())),
        ReadScope("c", None, narrow=Area.of(week_ago, today(), [u["P1"].id])),
        ReadScope("a", (Area.of(today() - timedelta(days=30), today(), [u["P1"].id]),)),  # an auditor
        ReadScope("a", (Area.of(None, week_ago), Area.of(week_ago, None, [u["P2"].id]))),
    ]
    for scope in scopes:
        fast = responsibility.provider_responsibility(session, scope, utcnow())
        assert responsibility.by_provider_and_day(scope)
        expected = slow(session, scope)
        assert [s.rows for s in fast.sections] == [s.rows for s in expected.sections], scope
    whole = responsibility.provider_responsibility(session, scopes[0], utcnow()).main.rows
    assert {r[1] for r in whole} >= {"Dr Ada Okafor", "Dr Ben Stone"}
    provider = ReadScope("p", (Area.of(providers=[u["P1"].id]),), party_id=u["P1"].id)
    assert not responsibility.by_provider_and_day(provider)  # supervised encounters: the GROUP BYs


def _changes_from_ledger(scope: ReadScope) -> Any:
    """The changes after attestation found in the ledger alone (each encounter's first attestation among
    its events): the definition the kept table follows."""
    first = responsibility.first_attestations(scope)
    led, enc = queries.LED, queries.ENC
    joined = led.join(first, and_(led.c.encounter_id == first.c.encounter_id, led.c.seq > first.c.first_seq))
    return (
        select(*queries.CHANGE_COLUMNS)
        .select_from(joined.join(enc, enc.c.id == led.c.encounter_id))
        .where(in_log(), led.c.type.in_(CODE_EVENTS), led.c.outcome == "allowed")
        .order_by(led.c.seq)
    )


def test_the_changes_report_from_the_kept_table_equals_the_ledger_for_every_scope(
    org: Org, session: Session
) -> None:
    u = org.users
    week_ago = today() - timedelta(days=7)
    scopes = [
        ReadScope("c", None),
        ReadScope("c", None, narrow=Area.of(week_ago, today(), [u["P1"].id])),
        ReadScope("a", (Area.of(None, week_ago), Area.of(week_ago, None, [u["P2"].id]))),
        ReadScope("p", (Area.of(providers=[u["P2"].id]),), party_id=u["P2"].id),
    ]
    for scope in scopes:
        kept = queries.changes_after_attestation(session, scope, utcnow()).main.rows
        assert kept == queries.changes_report(session, _changes_from_ledger(scope)).main.rows, scope
    everything = queries.changes_after_attestation(session, scopes[0], utcnow()).main.rows
    assert len(everything) == 2  # E1's change and E4's added line (tests/report/scenario.py)
    assert queries.changes_after_attestation(session, scopes[3], utcnow()).main.rows == [
        r for r in everything if r[6] == "Dr Ben Stone"
    ]


@pytest.mark.parametrize("how", ["edited", "deleted", "inserted", "denied edited", "E/M edited"])
def test_verify_names_a_forged_or_stale_roll_up_row(org: Org, session: Session, how: str) -> None:
    day, author = next(iter(rollups.stored(session).per_day)), rollups.PER_AUTHOR
    key = rollups.row_id(day)
    if how == "edited":
        where = (rollups.PER_DAY.c.provider_id == day[0]) & (rollups.PER_DAY.c.day == day[1])
        session.execute(
            update(rollups.PER_DAY).where(where).values(encounters=rollups.PER_DAY.c.encounters + 1)
        )
        named = ("rollup_provider_day", key, "encounters")
    elif how == "deleted":
        session.execute(delete(author).where(author.c.provider_id == day[0], author.c.day == day[1]))
        named = ("rollup_provider_day_author", None, None)
    elif how == "inserted":
        counts = dict.fromkeys(rollups.COUNTS, 0) | {"encounters": 3, "attested": 3}
        session.execute(
            insert(rollups.PER_DAY).values(provider_id=day[0], day=day[1] - timedelta(days=900), **counts)
        )
        named = ("rollup_provider_day", rollups.row_id((day[0], day[1] - timedelta(days=900))), None)
    elif how == "denied edited":
        session.execute(update(rollups.DENIED).values(attempts=rollups.DENIED.c.attempts + 5))
        named = ("rollup_denied", None, "attempts")
    else:
        session.execute(update(rollups.PER_CODE).values(lines=rollups.PER_CODE.c.lines + 1))
        named = ("rollup_provider_day_code", None, "lines")
    result = verify_ledger(session)
    assert not result.ok
    found = [p for p in result.problems if p.kind == ROLLUP]
    assert found, result.problems[:3]
    assert any(
        p.table == named[0] and named[1] in (None, p.id) and named[2] in (None, p.field) for p in found
    )


def test_the_migration_fills_the_roll_ups_from_existing_data(fresh_db_url: str) -> None:
    """Upgrade from the previous head with encounters, lines, an attestation and events already there."""
    upgrade(fresh_db_url, "0010_encounter_reads")
    engine = make_engine(fresh_db_url)
    stamp = "'2026-01-05 10:00:00'"
    with engine.begin() as conn:
        conn.execute(text(
            "INSERT INTO app_user (id, username, display_name, password_hash, roles, credential_active, "
            f"is_active, failed_signings, created_at) VALUES ('u1', 'dr.a', 'Dr A', 'x', '[\"provider\"]', "
            f"true, true, 0, {stamp}), ('k1', 'k.a', 'K A', 'x', '[\"coder\"]', true, true, 0, {stamp})"
        ))  # fmt: skip
        for eid, status in (("e1", "amended"), ("e2", "open")):
            conn.execute(text(
                "INSERT INTO encounter (id, source, external_id, patient_ref, date_of_service, "
                "rendering_provider_id, supervising_provider_ids, status, created_by, created_at) VALUES "
                f"('{eid}', 'api', 'V-{eid}', 'MRN', '2026-01-02', 'u1', '[]', '{status}', 'u1', {stamp})"
            ))  # fmt: skip
        for lid, who in (("l1", "u1"), ("l2", "k1"), ("l3", "k1")):
            conn.execute(text(
                "INSERT INTO code_line (id, encounter_id, system, code, modifiers, units, "
                "diagnosis_pointers, version, status, entered_by, entered_role, entered_at, changed_by, "
                "changed_at) VALUES "
                f"('{lid}', 'e1', 'CPT', '99213', '[]', 1, '[]', 1, 'active', '{who}', 'coder', {stamp}, "
                f"'{who}', {stamp})"
            ))  # fmt: skip
        events = [("encounter.attest", "allowed", "e1"), ("code.change", "allowed", "e1"),
                  ("code.add", "denied", "e2"), ("delegation.grant", "denied", None)]  # fmt: skip
        for seq, (type_, outcome, eid) in enumerate(events):
            conn.execute(
                text(
                    "INSERT INTO ledger_event (log_id, seq, event_id, ts, type, actor_id, encounter_id, "
                    "provider_id, outcome, payload, leaf_hash, chain_hash) VALUES "
                    f"(:log, :seq, :eid, {stamp}, :type, 'k1', :enc, 'u1', :outcome, :blob, :blob, :blob)"
                ),
                {"log": _log_id(), "seq": seq, "eid": f"ev-{seq}", "type": type_, "enc": eid,
                 "outcome": outcome, "blob": b"x"},
            )  # fmt: skip
    engine.dispose()
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with engine.connect() as conn:
        have = rollups.stored(conn)
        assert have == rollups.expected(conn, _log_id())
    day = date(2026, 1, 2)
    assert have.per_day == {("u1", day): {"encounters": 2, "attested": 0, "unattested": 1, "amended": 1,
                                          "attested_late": 0, "changes_after_attestation": 1}}  # fmt: skip
    assert have.per_author == {("u1", day, "u1"): 1, ("u1", day, "k1"): 2}
    assert have.per_code == {("u1", day, "99213"): 3}
    assert have.denied == {("encounter", "u1", "u1", day): 1, ("unattached", "u1", "", date(2026, 1, 5)): 1}
    engine.dispose()
    downgrade(fresh_db_url, "0010_encounter_reads")
    upgrade(fresh_db_url)


def three_scopes(org: Org) -> list[ReadScope]:
    """Compliance over everything, compliance narrowed to a provider and a month, and an auditor."""
    u = org.users
    return [
        ReadScope("c", None),
        ReadScope("c", None, narrow=Area.of(today() - timedelta(days=30), today(), [u["P1"].id])),
        ReadScope("a", (Area.of(today() - timedelta(days=60), today(), [u["P2"].id]),)),
    ]


def test_the_dashboard_aging_chart_from_roll_ups_equals_the_report(
    org: Org, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    now, scopes = utcnow(), three_scopes(org)
    fast = [dashboard.aging_buckets(session, scope, now) for scope in scopes]
    assert sum(fast[0].values()) == 3 + 4  # E1 amended, E3 and E5 open; four imported, open
    monkeypatch.setattr(dashboard, "by_provider_and_day", lambda f: False)
    assert fast == [dashboard.aging_buckets(session, scope, now) for scope in scopes]


def test_the_em_distribution_from_roll_ups_equals_the_group_by(
    org: Org, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    now, scopes = utcnow(), three_scopes(org)
    fast = [queries.em_distribution(session, scope, now).main.rows for scope in scopes]
    assert sum(r[5] for r in fast[0]) >= 7  # lines per (provider, code) in the whole organisation
    monkeypatch.setattr(queries, "by_provider_and_day", lambda f: False)
    assert fast == [queries.em_distribution(session, scope, now).main.rows for scope in scopes]


def test_the_dashboard_counts_equal_a_count_of_its_lists(org: Org, session: Session) -> None:
    """The narrower count of changes and late signatures, and the aging buckets' total, are the
    number of rows each list's own query finds, for every kind of scope and window."""
    now, day = utcnow(), today()
    for scope in three_scopes(org):
        for since in (None, now - timedelta(days=1)):
            for key, listing in dashboard.listings(day, since).items():
                rows = listing.query(session, scope, day).subquery()
                assert (
                    listing.count(session, scope, day)
                    == session.execute(select(func.count()).select_from(rows)).scalar_one()
                ), (key, scope, since)
        aging = dashboard.listings(day)["aging"].count(session, scope, day)
        assert sum(dashboard.aging_buckets(session, scope, now).values()) == aging, scope


@pytest.mark.parametrize("tied", [False, True])
def test_aging_pages_walked_by_group_equal_one_order_by(org: Org, session: Session, tied: bool) -> None:
    """Sorted by provider, NPI or status, the aging list reads only the groups a page covers; every
    page equals the same page of one ORDER BY over all rows, ties between providers included."""
    if tied:  # two providers of the same name and NPI: their encounters interleave by id
        p1, users = org.users["P1"], User.__table__  # type: ignore[attr-defined]
        same = {"display_name": p1.display_name, "npi": p1.npi}
        session.execute(update(users).where(users.c.id == org.users["P2"].id).values(**same))
    day = today()
    walked = dashboard.listings(day)["aging"]
    plain = replace(walked, groups=None)
    for scope in three_scopes(org):
        for sort in ("provider", "npi", "status"):
            for desc in (False, True):
                req = PageRequest(sort=sort, desc=desc, size=2)
                assert walked.groups and walked.groups(session, scope, sort, desc) is not None
                pages = [walked.page(session, scope, day, replace(req, page=n)) for n in range(1, 7)]
                ordered = [plain.page(session, scope, day, replace(req, page=n)) for n in range(1, 7)]
                assert [p.rows for p in pages] == [p.rows for p in ordered], (scope, sort, desc)
                assert [p.total for p in pages] == [p.total for p in ordered]
        assert sum(len(p.rows) for p in pages) == pages[0].total
