"""``codes-invalid-for-date``: the lines a code-set import re-checked and changed its mind about.

Source: the ``codeset.recheck`` events (one per line whose decision an import changed: now invalid,
or no longer unverified), the latest per line, on encounters in scope, for lines still active at
the version that was re-checked (a line changed since was validated again when it was written).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlmodel import Session

from audit.policy.filters import encounter_clause
from audit.policy.scope import ReadScope
from audit.report.schemas import Report, Section
from audit.report.sql import ENC, LED, LINE, in_log, name_of, names

RECHECK = "codeset.recheck"
COLUMNS = [
    "status", "previous_status", "date_of_service", "encounter_id", "external_id", "provider", "line_id",
    "line_version", "system", "code", "modifiers", "release", "message", "checked_at", "seq",
]  # fmt: skip


def codes_invalid_for_date(session: Session, f: ReadScope, now: datetime) -> Report:
    latest = (
        select(LED.c.subject_id.label("line_id"), func.max(LED.c.seq).label("seq"))
        .select_from(LED.join(ENC, ENC.c.id == LED.c.encounter_id))
        .where(in_log(), LED.c.type == RECHECK, encounter_clause(f))
        .group_by(LED.c.subject_id)
        .subquery()
    )
    stmt = (
        select(
            LED.c.seq, LED.c.ts, LED.c.encounter_id, LED.c.payload, ENC.c.external_id, ENC.c.date_of_service,
            ENC.c.rendering_provider_id, LINE.c.id.label("line_id"), LINE.c.version,
        )
        .select_from(
            latest.join(LED, and_(in_log(), LED.c.seq == latest.c.seq))
            .join(ENC, ENC.c.id == LED.c.encounter_id)
            .join(LINE, LINE.c.id == latest.c.line_id)
        )
        .where(LINE.c.status == "active")
        .order_by(ENC.c.date_of_service, LED.c.seq)
    )  # fmt: skip
    result = session.execute(stmt).all()
    who = names(session, [r.rendering_provider_id for r in result])
    rows = []
    for r in result:
        detail = json.loads(bytes(r.payload)).get("detail") or {}
        if detail.get("line_version") != r.version:
            continue
        rows.append(
            [detail.get("status"), detail.get("previous_status"), r.date_of_service, r.encounter_id,
             r.external_id, name_of(who, r.rendering_provider_id), r.line_id, r.version, detail.get("system"),
             detail.get("code"), "-".join(detail.get("modifiers") or []),
             (detail.get("release") or {}).get("label"), detail.get("message"), r.ts, r.seq]
        )  # fmt: skip
    rows.sort(key=lambda row: (row[0] != "invalid", row[2], row[-1]))
    title = "Codes invalid for their date of service (re-checked when a code-set release was imported)"
    return Report("codes-invalid-for-date", title, [Section("lines", "", COLUMNS, rows)])
