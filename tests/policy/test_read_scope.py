"""ReadScope and Area: narrowing only ever restricts, and the SQL matches the rule it states."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection

from audit.policy.filters import ENC, USR, encounter_clause
from audit.policy.scope import Area, ReadScope

DAY0 = date(2026, 1, 1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
PROVIDERS = ("p1", "p2", "p3")
days = st.one_of(st.none(), st.integers(0, 30).map(lambda n: DAY0 + timedelta(days=n)))
provider_sets = st.one_of(st.none(), st.frozensets(st.sampled_from(PROVIDERS), max_size=3))
areas = st.builds(Area, days, days, provider_sets)
encounters = st.tuples(st.integers(0, 30).map(lambda n: DAY0 + timedelta(days=n)), st.sampled_from(PROVIDERS))


def inside(area: Area, encounter: tuple[date, str]) -> bool:
    dos, provider = encounter
    return (
        (area.date_from is None or area.date_from <= dos)
        and (area.date_to is None or dos <= area.date_to)
        and (area.provider_ids is None or provider in area.provider_ids)
    )


@given(areas, areas, encounters)
def test_intersection_is_both(a: Area, b: Area, encounter: tuple[date, str]) -> None:
    assert inside(a.intersect(b), encounter) == (inside(a, encounter) and inside(b, encounter))


def test_empty_provider_sets_match_nothing_and_stay_empty() -> None:
    none = Area(provider_ids=frozenset({"p1"})).intersect(Area(provider_ids=frozenset({"p2"})))
    assert none.provider_ids == frozenset() and not inside(none, (DAY0, "p1"))
    assert Area.from_context(none.context()).provider_ids == frozenset()
    assert Area.from_context({}).provider_ids is None
    assert Area.of(None, None, []) == Area() and not Area().bounded


def test_effective_scope_is_the_authorised_area_within_the_request() -> None:
    scope = ReadScope("u", (Area(DAY0, DAY0 + timedelta(days=9), frozenset({"p1"})),))
    narrowed = scope.narrowed(Area(DAY0 + timedelta(days=5), DAY0 + timedelta(days=20)))
    assert narrowed.effective() == Area(DAY0 + timedelta(days=5), DAY0 + timedelta(days=9), frozenset({"p1"}))
    assert narrowed.as_dict() == {
        "from": "2026-01-06",
        "to": "2026-01-10",
        "provider_ids": ["p1"],
        "encounter_id": None,
    }
    assert ReadScope("u", None).unlimited and not ReadScope("u", None, encounter_id="e").unlimited
    assert ReadScope("u", None).without_provider_narrowing().narrow == Area()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(areas, max_size=3), areas, st.sampled_from((None, "p2")))
def test_encounter_sql_is_the_union_of_areas_within_the_narrowing(
    connection: Connection, authorised: list[Area], narrow: Area, supervisor: str | None
) -> None:
    """Against every (date, provider) pair, with p2 supervising the odd days' encounters."""
    savepoint = connection.begin_nested()
    try:
        connection.execute(
            insert(USR),
            [
                {
                    "id": p,
                    "username": f"u-{p}",
                    "display_name": p,
                    "password_hash": "x",
                    "roles": ["provider"],
                    "credential_active": True,
                    "is_active": True,
                    "failed_signings": 0,
                    "created_at": T0,
                }
                for p in PROVIDERS
            ],
        )
        grid = [(DAY0 + timedelta(days=n), p) for n in range(31) for p in PROVIDERS]
        connection.execute(
            insert(ENC),
            [
                {
                    "id": f"{p}-{dos.isoformat()}",
                    "source": "t",
                    "external_id": f"{p}-{dos}",
                    "patient_ref": "r",
                    "date_of_service": dos,
                    "rendering_provider_id": p,
                    "supervising_provider_ids": ["p2"] if dos.day % 2 else [],
                    "status": "open",
                    "created_by": p,
                    "created_at": T0,
                }
                for dos, p in grid
            ],
        )
        scope = ReadScope("u", tuple(authorised), party_id=supervisor, narrow=narrow)
        got = set(connection.execute(select(ENC.c.id).where(encounter_clause(scope))).scalars())
        want = {
            f"{p}-{dos.isoformat()}"
            for dos, p in grid
            if (any(inside(a, (dos, p)) for a in authorised) or (supervisor is not None and dos.day % 2 == 1))
            and inside(narrow, (dos, p))
        }
        assert got == want
    finally:
        savepoint.rollback()
