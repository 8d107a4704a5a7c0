"""The baseline of the write benchmark: a bare FastAPI + SQLModel app with one insert endpoint.

POST /lines/{encounter_id} inserts one row (the columns of a code line) and commits: no token, no
policy, no ledger. It uses the product's engine factory (`audit.db.make_engine`), so SQLite gets the
same pragmas (WAL, synchronous, BEGIN IMMEDIATE) and PostgreSQL the same isolation level.

Run: BARE_DATABASE_URL=... python tests/perf/bare_insert_app.py PORT
"""

from __future__ import annotations

import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from sqlmodel import Field, Session, SQLModel  # noqa: E402

from audit.db import make_engine  # noqa: E402


class BareLine(SQLModel, table=True):
    __tablename__ = "bare_code_line"
    id: str = Field(default_factory=lambda: str(uuid.uuid4()), primary_key=True)
    encounter_id: str = Field(index=True)
    system: str
    code: str
    units: int
    entered_at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class LineIn(BaseModel):
    system: str
    code: str
    units: int = 1


def create_app() -> FastAPI:
    engine = make_engine(os.environ["BARE_DATABASE_URL"])
    SQLModel.metadata.create_all(engine)  # this process imports no other table
    app = FastAPI()

    @app.post("/lines/{encounter_id}", status_code=201)
    def add(encounter_id: str, data: LineIn) -> dict[str, str]:
        with Session(engine, expire_on_commit=False) as session:
            line = BareLine(encounter_id=encounter_id, system=data.system, code=data.code, units=data.units)
            session.add(line)
            session.commit()
            return {"id": line.id}

    return app


if __name__ == "__main__":
    import uvicorn

    # The same uvicorn settings as `audit serve` (audit/cli.py): one worker, no access log.
    uvicorn.run(create_app(), host="127.0.0.1", port=int(sys.argv[1]), workers=1, access_log=False)
