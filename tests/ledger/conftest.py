"""Fixtures for the ledger tests that need committed data in their own database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from audit.config import get_settings
from audit.ledger import service as ledger
from audit.ledger.events import Actor, EventDraft
from audit.migrate import upgrade


@pytest.fixture
def committed(fresh_db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """A fresh database with committed events, signed in this process with the key `run_cli` uses."""
    from audit.db import make_engine
    from audit.uow import unit_of_work

    upgrade(fresh_db_url)
    monkeypatch.setenv("AUDIT_SIGNING_KEY_FILE", str(tmp_path / "cli.key"))
    get_settings.cache_clear()
    engine = make_engine(fresh_db_url)
    with unit_of_work(engine) as s:
        ledger.append(s, [EventDraft(type="test.tick", actor=Actor(None, "cli", "test"))] * 5)
    yield engine
    engine.dispose()
