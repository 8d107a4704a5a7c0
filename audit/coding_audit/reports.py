"""The coding-audit reports (issue 13), rendered in JSON, CSV and PDF by the report package's renderers:

- `audit-summary` (`audit_id`): the audit's figures, findings by category, scores by provider, and
  every dispute with its outcome;
- `provider-scorecard` / `coder-scorecard`: accuracy per audit over time, for each provider or coder;
- `follow-up`: education tasks, re-audits and overpayment clocks with the days left.

audit-summary is a read of the audit (`coding_audit.read`); the others are reports over dates of
service and providers (`report.view`, in the reader's scope: compliance everything, an auditor their
engagement, a provider their own rows)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlmodel import Session, col, select

from audit.coding_audit.access import authorize_audit, load_audit
from audit.coding_audit.closure import current_findings
from audit.coding_audit.models import AuditFollowUp, AuditSignature, CodingAudit
from audit.coding_audit.scoring import score_audit
from audit.coding_audit.service import today
from audit.errors import InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.models import User, utcnow
from audit.policy.guard import Grant, Target
from audit.policy.scope import ReadScope
from audit.principal import CurrentUser
from audit.report.schemas import Report, Section
from audit.report.service import authorize_report, render_report

NAMES = ("audit-summary", "provider-scorecard", "coder-scorecard", "follow-up")
FIGURES = ("line_accuracy", "encounter_accuracy", "em_agreement", "encounter_error_rate")


@dataclass(frozen=True)
class AuditReportRequest:
    name: str
    audit_id: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    provider_id: str | None = None
    format: str = "json"
    section: str | None = None


def _names(session: Session) -> Any:
    cache: dict[str, str] = {}

    def name(user_id: str | None) -> str:
        if not user_id:
            return ""
        if user_id not in cache:
            u = session.get(User, user_id)
            cache[user_id] = u.display_name if u else user_id
        return cache[user_id]

    return name


def audit_summary(session: Session, audit: CodingAudit) -> Report:
    scores = score_audit(session, audit.id)
    findings = current_findings(session, audit.id)
    whole = scores["audit"]
    signed = session.exec(
        select(AuditSignature).where(AuditSignature.audit_id == audit.id, AuditSignature.status == "valid")
    ).first()
    summary = [
        ["audit", audit.name],
        ["status", audit.status],
        ["method_version", scores["method"]["version"]],
        ["frame_size", len(audit.frame or ())],
        ["frame_sha256", audit.frame_sha256],
        ["sample_size", len(audit.sample or ())],
        *(
            [k, whole[k]]
            for k in ("lines_reviewed", "error_lines", "encounters_reviewed", "correct_encounters")
        ),
        *([k, whole[k]] for k in FIGURES),
        ["disputes", sum(1 for f in findings if f.status in ("disputed", "upheld", "reversed"))],
        ["disputes_open", sum(1 for f in findings if f.status == "disputed")],
        ["upheld", sum(1 for f in findings if f.status == "upheld")],
        ["reversed", sum(1 for f in findings if f.status == "reversed")],
        ["signed_by", signed.printed_name if signed else None],
        ["findings_digest", signed.findings_digest if signed else None],
    ]
    by_category: dict[str, Counter[str]] = {}
    for f in findings:
        if f.category:
            by_category.setdefault(f.category, Counter())[f.status] += 1
    categories = [
        [c, sum(n.values()), n["disputed"], n["upheld"], n["reversed"]]
        for c, n in sorted(by_category.items())
    ]
    name = _names(session)
    providers = [
        [p["provider_id"], name(p["provider_id"]), *(p[k] for k in FIGURES)] for p in scores["providers"]
    ]
    disputes = [
        [f.id, f.encounter_id, f.category, f.status, f.decision_comment]
        for f in findings
        if f.status in ("disputed", "upheld", "reversed")
    ]
    return Report(
        "audit-summary",
        f"Coding audit summary: {audit.name}",
        [
            Section("summary", "Summary", ["metric", "value"], summary),
            Section(
                "categories",
                "Findings by category",
                ["category", "findings", "disputed", "upheld", "reversed"],
                categories,
            ),
            Section("providers", "Scores by provider", ["provider_id", "provider", *FIGURES], providers),
            Section(
                "disputes",
                "Disputes and outcomes",
                ["finding_id", "encounter_id", "category", "status", "decision"],
                disputes,
            ),
        ],
    )


def _audits_in(session: Session, user: CurrentUser, scope: ReadScope) -> list[CodingAudit]:
    area = scope.effective()
    stmt = select(CodingAudit).where(col(CodingAudit.sample).is_not(None))
    if area.date_from is not None:
        stmt = stmt.where(CodingAudit.date_to >= area.date_from)
    if area.date_to is not None:
        stmt = stmt.where(CodingAudit.date_from <= area.date_to)
    audits = list(session.exec(stmt.order_by(col(CodingAudit.opened_at), col(CodingAudit.id))).all())
    if user.has("compliance"):
        return audits
    return [a for a in audits if a.auditor_id == user.id or user.id in a.parties]


def _allowed(scope: ReadScope, user: CurrentUser, person_id: str) -> bool:
    providers = scope.effective().provider_ids
    if user.has("compliance") or user.has("auditor"):
        return providers is None or person_id in providers
    return person_id == user.id


def _sees_coder(user: CurrentUser, coder_id: str) -> bool:
    return user.has("compliance") or user.has("auditor") or coder_id == user.id


def scorecard(session: Session, user: CurrentUser, scope: ReadScope, kind: str) -> Report:
    key, group = ("provider_id", "providers") if kind == "provider" else ("coder_id", "coders")
    name = _names(session)
    rows = []
    for audit in _audits_in(session, user, scope):
        for s in score_audit(session, audit.id)[group]:
            if _allowed(scope, user, s[key]) if kind == "provider" else _sees_coder(user, s[key]):
                head = [s[key], name(s[key]), audit.id, audit.name, audit.opened_at, audit.status]
                rows.append([*head, s["encounters_reviewed"], s["lines_reviewed"], *(s[k] for k in FIGURES)])
    rows.sort(key=lambda r: (r[1], r[4]))
    columns = [
        key,
        kind,
        "audit_id",
        "audit",
        "opened_at",
        "status",
        "encounters_reviewed",
        "lines_reviewed",
        *FIGURES,
    ]
    title = f"{kind.capitalize()} scorecard: accuracy over time across audits"
    return Report(f"{kind}-scorecard", title, [Section(group, "", columns, rows)])


def follow_up_report(session: Session, user: CurrentUser, scope: ReadScope) -> Report:
    audits = {a.id: a for a in _audits_in(session, user, scope)}
    items = session.exec(
        select(AuditFollowUp)
        .where(col(AuditFollowUp.audit_id).in_(list(audits) or [""]))
        .order_by(col(AuditFollowUp.due_on))
    ).all()
    name, day = _names(session), today()
    rows = [
        [f.kind, f.provider_id, name(f.provider_id), f.audit_id, audits[f.audit_id].name, f.encounter_id,
         f.reaudit_id, f.identified_on, f.due_on, (f.due_on - day).days]
        for f in items
        if _allowed(scope, user, f.provider_id)
    ]  # fmt: skip
    columns = ["kind", "provider_id", "provider", "audit_id", "audit", "encounter_id", "reaudit_id",
               "identified_on", "due_on", "days_left"]  # fmt: skip
    return Report("follow-up", "Coding-audit follow-up: education, re-audits, overpayment clocks",
                  [Section("follow_up", "", columns, rows)])  # fmt: skip


def _build(
    session: Session, user: CurrentUser, req: AuditReportRequest
) -> tuple[Grant, dict[str, Any], Report]:
    if req.name not in NAMES:
        raise NotFound(f"no coding-audit report named {req.name!r}")
    if req.name == "audit-summary":
        if not req.audit_id:
            raise InvalidInput("audit_id", "audit-summary needs audit_id")
        audit = load_audit(session, req.audit_id)
        grant = authorize_audit(session, user, "coding_audit.read", audit)
        return grant, {"audit_id": audit.id}, audit_summary(session, audit)
    grant, scope = authorize_report(
        session,
        user,
        "report.view",
        Target("report", req.name),
        date_from=req.date_from,
        date_to=req.date_to,
        provider_ids=[req.provider_id] if req.provider_id else (),
    )
    if req.name == "follow-up":
        report = follow_up_report(session, user, scope)
    else:
        report = scorecard(session, user, scope, "provider" if req.name == "provider-scorecard" else "coder")
    return grant, {**scope.as_dict(), **scope.evidence()}, report


def view_audit_report(
    session: Session, *, user: CurrentUser, req: AuditReportRequest
) -> tuple[bytes, str, str]:
    """The rendered report (body, media type, file name), with its read event."""
    now = utcnow()
    grant, shown, report = _build(session, user, req)
    detail = {"name": report.name, "filters": shown, "format": req.format, "row_count": len(report.main.rows)}
    ledger.append_one(session, grant.event(detail={**detail, "view": "report"}))
    rendered = render_report(report, req.format, req.section, shown, now)
    return rendered.body, rendered.media_type, rendered.filename


def follow_up_for_dashboard(
    session: Session,
    *,
    user: CurrentUser,
    date_from: date | None,
    date_to: date | None,
    provider_id: str | None,
) -> Report:
    """The `follow-up` report (education, re-audits, overpayment clocks with the days left) for the
    compliance dashboard, authorised and recorded like any report view."""
    req = AuditReportRequest("follow-up", date_from=date_from, date_to=date_to, provider_id=provider_id)
    grant, shown, report = _build(session, user, req)
    detail = {"name": report.name, "filters": shown, "format": "html", "row_count": len(report.main.rows)}
    ledger.append_one(session, grant.event(detail={**detail, "view": "dashboard"}))
    return report
