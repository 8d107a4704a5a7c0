"""Reproducible encounter samples: sorted candidate ids, then random.Random(seed).sample."""

from __future__ import annotations

import random
from datetime import date
from typing import Any

from sqlmodel import Session

from audit.ledger import service as ledger
from audit.policy.filters import ENC, encounter_ids
from audit.policy.guard import Target
from audit.policy.scope import ReadScope
from audit.principal import CurrentUser
from audit.report.service import authorize_report


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
    grant, scope = authorize_report(
        session,
        user,
        "sample.draw",
        Target("sample", None),
        date_from=date_from,
        date_to=date_to,
        provider_ids=[provider_id] if provider_id else (),
    )
    candidates = _candidates(session, scope)
    chosen = draw(candidates, n, seed)
    shown = scope.as_dict()
    detail = {"seed": seed, "n": n, "filters": shown, "candidates": len(candidates), "encounter_ids": chosen}
    event_detail = {**detail, **scope.evidence()}
    ledger.append_one(session, grant.event(detail=event_detail))
    return detail


def _candidates(session: Session, scope: ReadScope) -> list[str]:
    stmt = encounter_ids(scope).order_by(ENC.c.id)
    return list(session.execute(stmt).scalars())
