"""The sampling frame: every encounter in an audit's scope, with the facts strata are drawn by.

An encounter is in the frame when its date of service is in [from, to], its provider of record is
one of the scope's providers (any, when none are named), and it has at least one active code line
(in one of the scope's code systems, when named; an E/M line, when `em_only`)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.coding_audit.models import CodingAudit
from audit.models import CodeLine, Encounter

EM_CODE = re.compile(r"^99[2-4][0-9][0-9]$")  # policies/audit_scoring.yaml `em_codes`


def is_em(system: str | None, code: str | None) -> bool:
    return system == "CPT" and bool(code) and bool(EM_CODE.match(code or ""))


def build_frame(session: Session, audit: CodingAudit) -> list[dict[str, Any]]:
    """The frame rows `{id, provider_id, em_level}` sorted by id; `em_level` is the encounter's
    highest E/M code ("" when it has none)."""
    enc, line = Encounter.__table__, CodeLine.__table__  # type: ignore[attr-defined]
    stmt = (
        select(enc.c.id, enc.c.rendering_provider_id, line.c.system, line.c.code)
        .join(line, line.c.encounter_id == enc.c.id)
        .where(
            enc.c.date_of_service >= audit.date_from,
            enc.c.date_of_service <= audit.date_to,
            line.c.status == "active",
        )
    )
    if audit.provider_ids:
        stmt = stmt.where(enc.c.rendering_provider_id.in_(sorted(audit.provider_ids)))
    rows: dict[str, dict[str, Any]] = {}
    for encounter_id, provider_id, system, code in session.execute(stmt):
        row = rows.setdefault(
            encounter_id, {"id": encounter_id, "provider_id": provider_id, "em_level": "", "hit": False}
        )
        if is_em(system, code) and code > row["em_level"]:
            row["em_level"] = code
        if (not audit.code_systems or system in audit.code_systems) and (
            not audit.em_only or is_em(system, code)
        ):
            row["hit"] = True
    return [
        {"id": r["id"], "provider_id": r["provider_id"], "em_level": r["em_level"]}
        for _, r in sorted(rows.items())
        if r["hit"]
    ]
