"""The bare FastAPI + SQLModel endpoints bench_reads.py compares the product with: the same rows (an
encounter with its active lines and valid attestation; an encounter's ledger events with the names of
their actors; a page of 50 encounters one provider renders or supervises, with lines and attestations),
no authentication, no policy, no audit. Served by uvicorn with the product's settings.

    BENCH_DATABASE_URL=sqlite:///... python -m uvicorn tests.perf.bare_reads:app --port 9202
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI
from sqlalchemy import create_engine, event, union
from sqlmodel import Session, col, select

from audit.ledger.service import LEDGER
from audit.models import Attestation, CodeLine, Encounter, EncounterSupervisor, User

URL = os.environ["BENCH_DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://")
if URL.startswith("sqlite"):
    engine = create_engine(URL, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _wal(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
else:
    engine = create_engine(URL)
app = FastAPI()
SUP = EncounterSupervisor.__table__  # type: ignore[attr-defined]


def session() -> Iterator[Session]:
    with Session(engine) as s:
        yield s


S = Annotated[Session, Depends(session)]


def with_children(s: Session, encounters: list[Encounter]) -> list[dict[str, Any]]:
    ids = [e.id for e in encounters]
    lines = s.exec(select(CodeLine).where(col(CodeLine.encounter_id).in_(ids), CodeLine.status == "active"))
    attestations = s.exec(
        select(Attestation).where(col(Attestation.encounter_id).in_(ids), Attestation.status == "valid")
    )
    out = {e.id: {**e.model_dump(), "codes": [], "attestation": None} for e in encounters}
    for line in lines:
        out[line.encounter_id]["codes"].append(line.model_dump())
    for a in attestations:
        out[a.encounter_id]["attestation"] = a.model_dump()
    return list(out.values())


@app.get("/enc/{encounter_id}")
def one(s: S, encounter_id: str) -> dict[str, Any]:
    encounter = s.get(Encounter, encounter_id)
    assert encounter is not None
    return with_children(s, [encounter])[0]


@app.get("/hist/{encounter_id}")
def history(s: S, encounter_id: str) -> list[dict[str, Any]]:
    rows = s.execute(
        select(LEDGER.c.payload).where(LEDGER.c.encounter_id == encounter_id).order_by(LEDGER.c.seq)
    ).all()
    events = [json.loads(bytes(r[0])) for r in rows]
    ids = {e["actor"]["id"] for e in events if e["actor"].get("id")}
    names = dict(s.execute(select(col(User.id), col(User.display_name)).where(col(User.id).in_(ids))).all())
    return [{**e, "actor": {**e["actor"], "display_name": names.get(e["actor"].get("id"))}} for e in events]


@app.get("/list/{provider_id}")
def page(s: S, provider_id: str) -> list[dict[str, Any]]:
    """The newest 50 the provider renders or supervises: each set's newest 50 by index, merged."""
    newest = (col(Encounter.date_of_service).desc(), col(Encounter.id))
    own = select(col(Encounter.id), col(Encounter.date_of_service)).where(
        col(Encounter.rendering_provider_id) == provider_id
    )
    supervised = select(col(Encounter.id), col(Encounter.date_of_service)).where(
        col(Encounter.id).in_(select(SUP.c.encounter_id).where(SUP.c.provider_id == provider_id))
    )
    parts = [q.order_by(*newest).limit(50).subquery() for q in (own, supervised)]
    merged = union(*(select(p.c.id, p.c.date_of_service) for p in parts)).subquery()
    ids = s.execute(select(merged.c.id).order_by(merged.c.date_of_service.desc(), merged.c.id).limit(50))
    order = list(ids.scalars())
    found = {e.id: e for e in s.exec(select(Encounter).where(col(Encounter.id).in_(order)))}
    return with_children(s, [found[i] for i in order])
