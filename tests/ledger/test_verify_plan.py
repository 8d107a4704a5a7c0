"""Verification reads the ledger with one ordered query that walks the primary key: on PostgreSQL
its server-side cursor is an index scan even before the table was ever ANALYZEd (keyset pages with
LIMIT were planned as a bitmap scan plus a sort of the whole ledger until then)."""

from __future__ import annotations

from sqlalchemy import text

from audit.config import get_settings
from audit.db import make_engine
from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from audit.ledger.verification import ledger_query
from audit.migrate import upgrade
from audit.uow import unit_of_work
from tests.support import IS_POSTGRES


def test_the_verification_query_walks_the_primary_key_without_a_sort(fresh_db_url: str) -> None:
    upgrade(fresh_db_url)
    engine = make_engine(fresh_db_url)
    with unit_of_work(engine) as s:
        ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * 300)
    sql = ledger_query(with_columns=True)
    params = {"log_id": get_settings().log_id, "start": 0}
    with engine.begin() as conn:
        if IS_POSTGRES:
            analyzed = conn.execute(
                text("SELECT last_analyze, last_autoanalyze FROM pg_stat_user_tables WHERE relname = :t"),
                {"t": "ledger_event"},
            ).one()
            plan = [r[0] for r in conn.execute(text(f"EXPLAIN DECLARE verify_plan CURSOR FOR {sql}"), params)]
            assert analyzed == (None, None)  # the case that used to go wrong
            assert plan[0].startswith("Index Scan using pk_ledger_event"), plan
        else:
            plan = [r[-1] for r in conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"), params)]
            assert plan == [
                "SEARCH ledger_event USING INDEX sqlite_autoindex_ledger_event_1 (log_id=? AND seq>?)"
            ]
        assert not any("Sort" in step or "TEMP B-TREE" in step for step in plan), plan
    engine.dispose()
