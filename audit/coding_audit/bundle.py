"""What an export bundle carries of the coding audits in its scope, so an outside party can re-derive
every score and the sample from the bundle alone (plain file names: the bundle is flat):

- `audit_sample.py`: the service's own sampling code (stand-alone), `audit_scoring.yaml`: the method;
- per audit `audit-<id>.json` (the audit), `audit-<id>-frame.json` (frame, its SHA-256, the plan and
  seed: the input of `python3 audit_sample.py audit-<id>-frame.json`), `audit-<id>-sample.json`,
  `audit-<id>-findings.json` (every finding, replaced ones too, with its responses),
  `audit-<id>-scores.json`, `audit-<id>-follow-up.json`, and `audit-<id>-signed-report.json` (the
  valid signature with the report it signed) when the audit is signed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlmodel import Session, col, select

from audit.coding_audit import sample_script
from audit.coding_audit.models import (
    AuditFinding,
    AuditFollowUp,
    AuditSignature,
    CodingAudit,
    FindingResponse,
)
from audit.coding_audit.scoring import method_path, score_audit
from audit.coding_audit.views import (
    audit_state,
    finding_state,
    follow_up_state,
    response_state,
    signature_state,
)
from audit.policy.scope import ReadScope

SCRIPT_NAME = "audit_sample.py"


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=1, sort_keys=True, ensure_ascii=False).encode()


def frame_file(audit: CodingAudit) -> dict[str, Any]:
    return {
        "frame": audit.frame,
        "frame_sha256": audit.frame_sha256,
        "plan": {"method": audit.method, "n": audit.n, "strata": audit.strata, "seed": audit.seed},
        "algorithm_version": sample_script.ALGORITHM_VERSION,
    }


def audits_in_scope(session: Session, scope: ReadScope) -> list[CodingAudit]:
    """The sampled audits inside the export's dates: every one for compliance, the reader's own for
    anyone else (an auditor's engagement-scoped export)."""
    stmt = select(CodingAudit).where(col(CodingAudit.sample).is_not(None))
    if not scope.everything:
        stmt = stmt.where(CodingAudit.auditor_id == scope.reader_id)
    area = scope.effective()
    if area.date_from is not None:
        stmt = stmt.where(CodingAudit.date_from >= area.date_from)
    if area.date_to is not None:
        stmt = stmt.where(CodingAudit.date_to <= area.date_to)
    return list(session.exec(stmt.order_by(col(CodingAudit.id))).all())


def _findings(session: Session, audit_id: str) -> list[dict[str, Any]]:
    findings = session.exec(
        select(AuditFinding).where(AuditFinding.audit_id == audit_id).order_by(col(AuditFinding.id))
    ).all()
    ids = [f.id for f in findings]
    answers: dict[str, list[dict[str, Any]]] = {i: [] for i in ids}
    if ids:
        rows = session.exec(select(FindingResponse).where(col(FindingResponse.finding_id).in_(ids))).all()
        for r in sorted(rows, key=lambda r: (r.responded_at, r.id)):
            answers[r.finding_id].append(response_state(r))
    return [{**finding_state(f), "responses": answers[f.id]} for f in findings]


def audit_files(session: Session, scope: ReadScope) -> dict[str, bytes]:
    audits = audits_in_scope(session, scope)
    if not audits:
        return {}
    files = {
        SCRIPT_NAME: Path(sample_script.__file__).read_bytes(),
        "audit_scoring.yaml": method_path().read_bytes(),
    }
    for audit in audits:
        stem = f"audit-{audit.id}"
        files[f"{stem}.json"] = _json(audit_state(audit))
        files[f"{stem}-frame.json"] = _json(frame_file(audit))
        files[f"{stem}-sample.json"] = _json({"encounter_ids": audit.sample})
        files[f"{stem}-findings.json"] = _json(_findings(session, audit.id))
        files[f"{stem}-scores.json"] = _json(score_audit(session, audit.id))
        follow = session.exec(select(AuditFollowUp).where(AuditFollowUp.audit_id == audit.id)).all()
        files[f"{stem}-follow-up.json"] = _json([follow_up_state(f) for f in follow])
        signed = session.exec(
            select(AuditSignature).where(
                AuditSignature.audit_id == audit.id, AuditSignature.status == "valid"
            )
        ).first()
        if signed is not None:
            files[f"{stem}-signed-report.json"] = _json(
                {"signature": signature_state(signed), "report": signed.report}
            )
    return files
