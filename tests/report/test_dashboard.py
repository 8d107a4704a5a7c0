"""The compliance dashboard's service over the report scenario (known counts), on the real database:
counts, paged and sorted lists, scope, hostile sort/page values, flags resolved, charts = counts."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.encounter import oversight
from audit.errors import Conflict, Forbidden, InvalidInput
from audit.ledger.service import LEDGER
from audit.ledger.verification import verify_ledger
from audit.report.dashboard import Dashboard, DashboardRequest, build_dashboard
from audit.report.listing import PageRequest
from tests.conftest import People
from tests.report.scenario import API, Org, ago, build


@pytest.fixture
def org(client: TestClient, people: People) -> Org:
    return build(client, people)


def flag(org: Org, enc: str, text: str) -> str:
    r = org.client.post(
        f"{API}/encounters/{org.encounters[enc]}/flags", json={"text": text}, headers=org.headers["C"]
    )
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


def dash(session: Session, org: Org, who: str = "C", **kw: Any) -> Dashboard:
    return build_dashboard(session, user=org.users[who], req=DashboardRequest(**kw))


def test_counts_and_lists_match_the_scenario(session: Session, org: Org) -> None:
    d = dash(session, org)
    denied = org.report("C", "denied-attempts").json()["rows"]
    assert d.counts["changes"] == 2 and d.counts["late"] == 1 and d.counts["aging"] == 3
    assert d.counts["attempts"] == len(denied) >= 2
    changes = d.lists["changes"].rows
    assert [(r["external_id"], r["actor"]) for r in changes] == [
        ("V-E4", "Maria Lopez"),
        ("V-E1", "Wei Chen"),
    ]
    assert changes[1]["change"] == "CPT 99214 x1 -> CPT 99215 x1"
    assert changes[1]["reason"] == "documentation supports level 5"
    late = d.lists["late"].rows[0]
    assert (late["external_id"], late["provider"], late["days_after"]) == ("V-E2", "Dr Ada Okafor", 45)
    aging = d.lists["aging"].rows  # oldest first
    assert [(r["external_id"], r["days"], r["provider"]) for r in aging] == [
        ("V-E5", 70, "Dr Ben Stone"),
        ("V-E3", 10, "Dr Ada Okafor"),
        ("V-E1", 3, "Dr Ada Okafor"),
    ]
    assert {r["actor"] for r in d.lists["attempts"].rows} >= {"Wei Chen"}
    assert d.ledger.head_seq is not None and d.ledger.head_seq > 10


def test_charts_draw_the_counts(session: Session, org: Org) -> None:
    d = dash(session, org)
    by_title = {c.title: c for c in d.charts}
    assert sum(by_title["Changes after attestation per week"].series[0].values) == 2
    aging = by_title["Unattested encounters by days since date of service"]
    assert dict(zip(aging.categories, aging.series[0].values, strict=True)) == {
        "0-7": 1,
        "8-14": 1,
        "15-30": 0,
        "31-60": 0,
        "61+": 1,
    }
    attempts = by_title["Denied and failed attempts per week"]
    assert sum(sum(s.values) for s in attempts.series) == d.counts["attempts"]
    em = [c for c in d.charts if c.title.startswith("E/M levels")]
    assert em and all(c.unit == "%" for c in em)


def test_sorting_and_paging_happen_in_sql(session: Session, org: Org) -> None:
    page = dash(session, org, pages={"aging": PageRequest(sort="provider", desc=False, page=1, size=2)})
    aging = page.lists["aging"]
    assert aging.total == 3 and aging.pages == 2 and len(aging.rows) == 2
    assert [r["provider"] for r in aging.rows] == ["Dr Ada Okafor", "Dr Ada Okafor"]
    second = dash(session, org, pages={"aging": PageRequest(sort="provider", desc=False, page=2, size=2)})
    assert [r["external_id"] for r in second.lists["aging"].rows] == ["V-E5"]
    by_days = dash(session, org, pages={"aging": PageRequest(sort="days", desc=True)})
    assert [r["days"] for r in by_days.lists["aging"].rows] == [70, 10, 3]


@pytest.mark.parametrize(
    ("req", "field"),
    [
        (PageRequest(sort="payload"), "sort"),
        (PageRequest(sort="1; DROP TABLE encounter"), "sort"),
        (PageRequest(page=0), "page"),
        (PageRequest(size=0), "size"),
        (PageRequest(size=10_000), "size"),
    ],
)
def test_hostile_sort_and_page_are_refused_naming_the_field(
    session: Session, org: Org, req: PageRequest, field: str
) -> None:
    with pytest.raises(InvalidInput) as err:
        dash(session, org, pages={"changes": req})
    assert err.value.field == field


def test_flags_open_then_resolved(session: Session, org: Org, connection: Connection) -> None:
    first = flag(org, "E1", "level 5 after attestation: review")
    flag(org, "E3", "no documentation yet")
    d = dash(session, org)
    assert (d.counts["flags"], d.counts["flags_open"], d.counts["flags_resolved"]) == (2, 2, 0)
    oversight.resolve_flag(session, user=org.users["C"], flag_id=first, reason="op note supports 99215")
    d = dash(session, org, pages={"flags": PageRequest(sort="status", desc=False)})
    assert (d.counts["flags_open"], d.counts["flags_resolved"]) == (1, 1)
    assert [r["status"] for r in d.lists["flags"].rows] == ["open", "resolved"]
    verified = verify_ledger(session)  # the resolution note is replayed from its event
    assert verified.ok, verified.problems[:3]
    with pytest.raises(Conflict):
        oversight.resolve_flag(session, user=org.users["C"], flag_id=first, reason="again")
    with pytest.raises(Forbidden):
        oversight.resolve_flag(session, user=org.users["P1"], flag_id=first, reason="mine")


def test_auditor_sees_only_the_engagement(session: Session, org: Org) -> None:
    body = {
        "auditor_id": org.users["A"].id,
        "date_from": ago(30),
        "date_to": ago(0),
        "provider_ids": [org.users["P1"].id],
        "expires_at": "2099-01-01T00:00:00Z",
        "purpose": "review",
    }
    r = org.client.post(f"{API}/engagements", json=body, headers=org.headers["C"])
    assert r.status_code == 201, r.text
    d = dash(session, org, "A")
    assert {r["external_id"] for r in d.lists["aging"].rows} == {"V-E1", "V-E3"}  # P1, within 30 days
    assert {r["external_id"] for r in d.lists["changes"].rows} == {"V-E1"}
    with pytest.raises(Forbidden):
        dash(session, org, "K1")


def test_each_view_is_a_report_view_event(session: Session, org: Org) -> None:
    def views() -> int:
        stmt = select(func.count()).where(LEDGER.c.type == "report.view", LEDGER.c.subject_id == "dashboard")
        return int(session.execute(stmt).scalar_one())

    before = views()
    dash(session, org)
    assert views() == before + 1


def test_recent_window_is_by_event_time(session: Session, org: Org, connection: Connection) -> None:
    """The page's default view keeps what happened lately (by when, not by date of service): the
    scenario's events are from today, whatever their dates of service (3 to 70 days ago)."""
    recent = dash(session, org, recent_days=1)
    assert recent.counts["changes"] == 2 and recent.counts["late"] == 1
    assert recent.counts["aging"] == 3  # unattested encounters of any age stay
    by_dos = dash(session, org, date_from=date.today() - timedelta(days=5))
    assert by_dos.counts["changes"] == 1 and by_dos.counts["aging"] == 1  # only E1's date is that recent


def test_window_excludes_events_before_it(session: Session, org: Org) -> None:
    from audit.models import utcnow
    from audit.policy.scope import ReadScope
    from audit.report.dashboard import listings

    everyone, today = ReadScope(org.users["C"].id, None), date.today()
    later = listings(today, since=utcnow() + timedelta(minutes=5))
    earlier = listings(today, since=utcnow() - timedelta(minutes=5))
    for key in ("changes", "late", "attempts"):
        assert later[key].count(session, everyone, today) == 0
        assert earlier[key].count(session, everyone, today) > 0
