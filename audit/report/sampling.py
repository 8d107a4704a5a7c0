"""Reproducible encounter samples: sorted candidate ids, then random.Random(seed).sample."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.policy.guard import Target
from audit.principal import CurrentUser
from audit.report.schemas import Filters
from audit.report.service import authorize_scope
from audit.report.sql import ENC, encounter_scope


def draw(ids: list[str], n: int, seed: int) -> list[str]:
    """The sample: the same ids, n and seed always give the same encounters in the same order."""
    return random.Random(seed).sample(sorted(ids), min(n, len(ids)))


def draw_sample(
    session: Session,
    *,
    user: CurrentUser,
    n: int,
    seed: int,
    date_from: date,
    date_to: date,
    provider_id: str | None = None,
) -> dict[str, Any]:
    grant, filters = authorize_scope(
        session,
        user,
        "sample.draw",
        Target("sample", None),
        date_from=date_from,
        date_to=date_to,
        provider_ids=[provider_id] if provider_id else None,
    )
    candidates = _candidates(session, filters)
    chosen = draw(candidates, n, seed)
    shown = filters.as_dict()
    detail = {"seed": seed, "n": n, "filters": shown, "candidates": len(candidates), "encounter_ids": chosen}
    ledger.append_one(
        session,
        EventDraft(
            type="sample.draw",
            actor=user.actor(grant.role),
            subject_type="sample",
            policy=grant.policy,
            detail=detail,
        ),
    )
    return detail


def _candidates(session: Session, filters: Filters) -> list[str]:
    stmt = select(ENC.c.id).where(*encounter_scope(filters)).order_by(ENC.c.id)
    return list(session.execute(stmt).scalars())
