"""Follow-up of a signed audit (compliance.yaml `coding_audits`):

- a provider whose encounter error rate is over `error_rate_threshold` (default 20%, CMS Targeted
  Probe and Educate) gets an education task and a re-audit: a new audit of their encounters coded
  after this one, with its own seed and sample, drawn no sooner than `reaudit_after_days` (>= 45);
- an encounter with a finding that stands in an overpayment category is a confirmed overpayment
  identified on the signing date: the 60-day clock of 42 CFR 401.305 runs from then.

Each is written once per audit (signing again after a supersession adds nothing twice), each with its
own ledger event under the signing's decision."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from audit.coding_audit.models import AuditFinding, AuditFollowUp, CodingAudit
from audit.coding_audit.scoring import Row as ScoreRow
from audit.coding_audit.scoring import outcome
from audit.coding_audit.views import audit_state, follow_up_state
from audit.ledger import service as ledger
from audit.ledger.digest import ledger_safe
from audit.ledger.events import ROW_TIME
from audit.policy.guard import Grant
from audit.policy.runtime import get_compliance

REAUDIT_PROBE = 10  # OIG: a probe of 5-10 records per physician


def _seed(audit: CodingAudit, provider_id: str) -> int:
    """The re-audit's own seed, derived so that it is reproducible and differs from the parent's."""
    digest = hashlib.sha256(f"{audit.seed}:{audit.id}:{provider_id}:reaudit".encode()).hexdigest()
    return int(digest[:15], 16)


def _existing(session: Session, audit_id: str) -> set[tuple[str, str, str | None]]:
    rows = session.exec(select(AuditFollowUp).where(AuditFollowUp.audit_id == audit_id)).all()
    return {(f.kind, f.provider_id, f.encounter_id) for f in rows}


def _record(session: Session, grant: Grant, item: AuditFollowUp, now: datetime, **extra: Any) -> None:
    session.add(item)
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            type="coding_audit.follow_up",
            subject_type="audit_follow_up",
            subject_id=item.id,
            encounter_id=item.encounter_id,
            provider_id=item.provider_id,
            after={**follow_up_state(item), **extra},
            detail={**ROW_TIME, "audit_id": item.audit_id},
        ),
        now=now,
    )


def _reaudit(
    session: Session, grant: Grant, audit: CodingAudit, provider_id: str, now: datetime
) -> CodingAudit:
    rule = get_compliance().coding_audits
    signed_on = now.date()
    child = CodingAudit(
        name=f"Re-audit of {audit.name}",
        auditor_id=audit.auditor_id,
        engagement_id=audit.engagement_id,
        date_from=signed_on,
        date_to=signed_on + timedelta(days=rule.reaudit_after_days),
        provider_ids=[provider_id],
        code_systems=list(audit.code_systems),
        em_only=audit.em_only,
        method="probe",
        n=audit.n if audit.method == "probe" else REAUDIT_PROBE,
        seed=_seed(audit, provider_id),
        status="scheduled",
        parent_id=audit.id,
        not_before=signed_on + timedelta(days=rule.reaudit_after_days),
        opened_at=now,
    )
    session.add(child)
    session.flush()
    ledger.append_one(
        session,
        grant.event(
            type="coding_audit.open",
            subject_id=child.id,
            provider_id=provider_id,
            reason=f"re-audit after audit {audit.id}",
            after=audit_state(child),
            detail=dict(ROW_TIME),
        ),
        now=now,
    )
    return child


def follow_up(
    session: Session,
    *,
    grant: Grant,
    audit: CodingAudit,
    scores: dict[str, Any],
    findings: list[AuditFinding],
    now: datetime,
) -> None:
    rule = get_compliance().coding_audits
    done = _existing(session, audit.id)
    day = now.date()
    for p in scores["providers"]:
        rate = p["encounter_error_rate"]
        provider_id = p["provider_id"]
        if rate is None or rate <= rule.error_rate_threshold or ("education", provider_id, None) in done:
            continue
        why = ledger_safe({"encounter_error_rate": rate, "threshold": rule.error_rate_threshold})
        education = AuditFollowUp(
            audit_id=audit.id,
            kind="education",
            provider_id=provider_id,
            identified_on=day,
            due_on=day + timedelta(days=rule.reaudit_after_days),
            detail=why,
            created_at=now,
        )
        _record(session, grant, education, now)
        child = _reaudit(session, grant, audit, provider_id, now)
        reaudit = AuditFollowUp(
            audit_id=audit.id,
            kind="reaudit",
            provider_id=provider_id,
            reaudit_id=child.id,
            identified_on=day,
            due_on=child.not_before or day,
            detail=why,
            created_at=now,
        )
        _record(session, grant, reaudit, now)
    for encounter_id, provider_id, categories in _overpayments(findings, rule.overpayment_categories):
        if ("overpayment", provider_id, encounter_id) in done:
            continue
        clock = AuditFollowUp(
            audit_id=audit.id,
            kind="overpayment",
            provider_id=provider_id,
            encounter_id=encounter_id,
            identified_on=day,
            due_on=day + timedelta(days=rule.overpayment_days),
            detail={"categories": categories, "rule": "42 CFR 401.305"},
            created_at=now,
        )
        _record(session, grant, clock, now)


def _overpayments(findings: list[AuditFinding], categories: list[str]) -> list[tuple[str, str, list[str]]]:
    """Encounters with an error that stands in an overpayment category, in encounter id order."""
    found: dict[str, tuple[str, set[str]]] = {}
    for f in findings:
        row = ScoreRow(
            f.encounter_id, f.provider_id, f.line_author_id, f.verdict, f.status, None, None, f.category
        )
        if outcome(row) == "error" and f.category in categories:
            found.setdefault(f.encounter_id, (f.provider_id, set()))[1].add(f.category)
    return [(e, p, sorted(c)) for e, (p, c) in sorted(found.items())]
