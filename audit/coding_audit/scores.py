"""Reading an audit's scores: authorised and recorded like any read of the audit."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from audit.coding_audit.access import authorize_audit, load_audit
from audit.coding_audit.scoring import score_audit
from audit.coding_audit.service import MANAGERS
from audit.ledger import service as ledger
from audit.principal import CurrentUser


def read_scores(session: Session, *, user: CurrentUser, audit_id: str) -> dict[str, Any]:
    audit = load_audit(session, audit_id)
    grant = authorize_audit(session, user, "coding_audit.read", audit)
    scores = score_audit(session, audit.id)
    ledger.append_one(
        session, grant.event(detail={"view": "scores", "method_version": scores["method"]["version"]})
    )
    if not user.roles & MANAGERS:  # a party sees the audit's figures and their own rows only
        scores["providers"] = [p for p in scores["providers"] if p["provider_id"] == user.id]
        scores["coders"] = [c for c in scores["coders"] if c["coder_id"] == user.id]
    return {"audit_id": audit.id, **scores}
