"""Coding-audit tables (issue 13). Every change to them is a ledger event; these rows are the current
state the API reads, the events are the evidence."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel

import audit.db  # noqa: F401  (applies the naming convention before any table is declared)
from audit.dbtypes import UTCDateTime


def _new_id() -> str:
    return str(uuid.uuid4())


def _id() -> Any:
    return Field(default_factory=_new_id, primary_key=True, max_length=36)


def _utc(nullable: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable))


def _json(default: Any = list) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class CodingAudit(SQLModel, table=True):
    """An audit: its scope, sampling plan and seed; once drawn, the frozen frame and its sample."""

    __tablename__ = "coding_audit"

    id: str = _id()
    name: str = Field(max_length=200)
    auditor_id: str = Field(foreign_key="app_user.id", max_length=36, index=True)
    engagement_id: str | None = Field(default=None, max_length=36)
    date_from: date
    date_to: date
    provider_ids: list[str] = _json()
    code_systems: list[str] = _json()
    em_only: bool = False
    method: str = Field(max_length=16)  # random | stratified | probe
    n: int
    strata: str | None = Field(default=None, max_length=16)  # provider | em_level
    seed: int = Field(sa_column=Column(BigInteger, nullable=False))
    status: str = Field(default="open", max_length=16)  # scheduled | open | sampled | signed
    parent_id: str | None = Field(default=None, max_length=36)  # the audit this re-audits
    not_before: date | None = None  # a re-audit's sample is drawn no sooner than this
    frame: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    frame_sha256: str | None = Field(default=None, max_length=64)
    sample: list[str] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    sampled_at: datetime | None = _utc(nullable=True)
    parties: list[str] = _json()
    opened_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AuditFinding(SQLModel, table=True):
    """One verdict on one line (or one line the coder missed) of a sampled encounter. A later finding
    on the same line replaces it (`replaced_by`); only current findings are scored."""

    __tablename__ = "audit_finding"
    __table_args__ = (Index("ix_audit_finding_audit_current", "audit_id", "replaced_by"),)

    id: str = _id()
    audit_id: str = Field(foreign_key="coding_audit.id", max_length=36)
    encounter_id: str = Field(foreign_key="encounter.id", max_length=36, index=True)
    provider_id: str = Field(max_length=36)
    line_id: str | None = Field(default=None, max_length=36)
    line_version: int | None = None
    line_system: str | None = Field(default=None, max_length=16)
    line_code: str | None = Field(default=None, max_length=16)
    line_author_id: str | None = Field(default=None, max_length=36)
    attested_by: str | None = Field(default=None, max_length=36)
    attestation_id: str | None = Field(default=None, max_length=36)
    verdict: str = Field(max_length=16)  # agree | disagree | added
    revised: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    revised_code: str | None = Field(default=None, max_length=16)
    category: str | None = Field(default=None, max_length=40)
    rationale: str = Field(sa_column=Column(Text, nullable=False))
    auditor_id: str = Field(max_length=36)
    recorded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    status: str = Field(default="open", max_length=16)  # open | accepted | disputed | upheld | reversed
    decision_comment: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    decided_by: str | None = Field(default=None, max_length=36)
    decided_at: datetime | None = _utc(nullable=True)
    replaced_by: str | None = Field(default=None, max_length=36)


class FindingResponse(SQLModel, table=True):
    """A provider's or coder's answer to a finding."""

    __tablename__ = "audit_finding_response"

    id: str = _id()
    finding_id: str = Field(foreign_key="audit_finding.id", max_length=36, index=True)
    responder_id: str = Field(max_length=36)
    role: str = Field(max_length=16)
    response: str = Field(max_length=16)  # accept | dispute
    comment: str = Field(sa_column=Column(Text, nullable=False))
    responded_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))


class AuditSignature(SQLModel, table=True):
    """The auditor's signature over the audit report: manifestation, meaning and a digest over the
    findings and scores (21 CFR 11.50 / 11.70), superseded by any later change to a finding."""

    __tablename__ = "audit_signature"

    id: str = _id()
    audit_id: str = Field(foreign_key="coding_audit.id", max_length=36, index=True)
    signer_id: str = Field(max_length=36)
    printed_name: str = Field(max_length=200)
    credential: str = Field(max_length=20)
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    meaning: str = Field(max_length=2000)
    findings_digest: str = Field(max_length=64)
    method_version: str = Field(max_length=32)
    policy_version: str = Field(max_length=64)
    report: dict[str, Any] = _json(dict)
    status: str = Field(default="valid", max_length=16)
    superseded_at: datetime | None = _utc(nullable=True)
    ledger_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class AuditFollowUp(SQLModel, table=True):
    """What a signed audit set in motion: an education task, a re-audit, an overpayment clock."""

    __tablename__ = "audit_follow_up"

    id: str = _id()
    audit_id: str = Field(foreign_key="coding_audit.id", max_length=36, index=True)
    kind: str = Field(max_length=16)  # education | reaudit | overpayment
    provider_id: str = Field(max_length=36)
    encounter_id: str | None = Field(default=None, max_length=36)
    reaudit_id: str | None = Field(default=None, max_length=36)
    identified_on: date
    due_on: date
    detail: dict[str, Any] = _json(dict)
    created_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
