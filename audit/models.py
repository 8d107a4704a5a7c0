"""Every table. Times are stored as naive UTC and returned as aware UTC on both databases."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    UniqueConstraint,
    text,
)
from sqlmodel import Field, SQLModel

import audit.db  # noqa: F401  (applies the naming convention before any table is declared)
from audit.dbtypes import UTCDateTime


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(UTC)


def _utc(nullable: bool = False, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UTCDateTime(), nullable=nullable, index=index))


def _json_list() -> Any:
    return Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class User(SQLModel, table=True):
    __tablename__ = "app_user"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    username: str = Field(max_length=64, sa_column_kwargs={"unique": True}, index=False)
    display_name: str = Field(max_length=200)
    password_hash: str = Field(max_length=255)
    roles: list[str] = _json_list()
    npi: str | None = Field(default=None, max_length=10)
    credential: str | None = Field(default=None, max_length=20)
    credential_active: bool = True
    is_active: bool = True
    failed_signings: int = 0
    # Set only by an administrator: every action of a locked account is refused (Cedar
    # segregation.locked_principal). Failed sign-ins never lock an account: they back off.
    locked_until: datetime | None = _utc(nullable=True)
    # Repeated wrong passwords at signing lock signing only (Cedar attestation.signing_locked).
    signing_locked_until: datetime | None = _utc(nullable=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token, stored only as its SHA-256 so a database read cannot replay it."""

    __tablename__ = "api_token"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    token_hash: str = Field(max_length=64, sa_column_kwargs={"unique": True})
    user_id: str = Field(foreign_key="app_user.id", index=True, max_length=36)
    issued_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = _utc(nullable=True)


class Encounter(SQLModel, table=True):
    __tablename__ = "encounter"
    __table_args__ = (
        UniqueConstraint("source", "external_id", name="uq_encounter_source_external_id"),
        Index("ix_encounter_provider_dos", "rendering_provider_id", "date_of_service"),
        Index("ix_encounter_provider_dos_status", "rendering_provider_id", "date_of_service", "status", "id"),
        # Keyset pages of the encounter list (newest date of service first) and the web tables' sorts
        # inside one provider's encounters: each ORDER BY walks an index instead of sorting the scope.
        Index("ix_encounter_dos_id", "date_of_service", "id"),  # replaces ix_encounter_dos
        Index("ix_encounter_provider_external_id", "rendering_provider_id", "external_id", "id"),
        Index("ix_encounter_provider_patient_ref", "rendering_provider_id", "patient_ref", "id"),
        Index("ix_encounter_provider_status", "rendering_provider_id", "status", "date_of_service", "id"),
        Index("ix_encounter_provider_created", "rendering_provider_id", "created_at", "id"),
        # Prefix search (the worklist's external id and patient reference boxes): a range on SQLite,
        # LIKE 'x%' through text_pattern_ops on PostgreSQL (see audit.web.queries.starts_with).
        Index("ix_encounter_external_id", "external_id", postgresql_ops={"external_id": "text_pattern_ops"}),
        Index("ix_encounter_patient_ref", "patient_ref", postgresql_ops={"patient_ref": "text_pattern_ops"}),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    source: str = Field(default="manual", max_length=64)
    external_id: str = Field(max_length=128)
    patient_ref: str = Field(max_length=128)
    date_of_service: date
    rendering_provider_id: str = Field(foreign_key="app_user.id", max_length=36)
    supervising_provider_ids: list[str] = _json_list()
    status: str = Field(default="open", max_length=16, index=True)
    created_by: str = Field(foreign_key="app_user.id", max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class EncounterSupervisor(SQLModel, table=True):
    """One row per supervising provider of an encounter: the index the encounter list's scope joins
    ("encounters I supervise") instead of searching `encounter.supervising_provider_ids`, which stays
    the record the ledger vouches for. Database triggers (migration 0010) write it from that column on
    every insert or change of an encounter, whatever the path (API, import, a loader's raw INSERT), so
    it cannot drift; nothing in the application writes it. Like the column, it names users without a
    foreign key to them."""

    __tablename__ = "encounter_supervisor"

    provider_id: str = Field(primary_key=True, max_length=36)
    encounter_id: str = Field(
        sa_column=Column(
            String(36), ForeignKey("encounter.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )


class CodeLine(SQLModel, table=True):
    """The current version of a code line. Every earlier version lives in the ledger's before/after."""

    __tablename__ = "code_line"
    __table_args__ = (Index("ix_code_line_encounter_entered_by", "encounter_id", "entered_by"),)

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    encounter_id: str = Field(foreign_key="encounter.id", index=True, max_length=36)
    system: str = Field(max_length=16)
    code: str = Field(max_length=16)
    modifiers: list[str] = _json_list()
    units: int = 1
    diagnosis_pointers: list[int] = _json_list()
    version: int = 1
    status: str = Field(default="active", max_length=16)
    entered_by: str = Field(foreign_key="app_user.id", max_length=36, index=True)
    entered_role: str = Field(max_length=16)
    delegation_id: str | None = Field(default=None, max_length=36)
    entered_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    changed_by: str = Field(foreign_key="app_user.id", max_length=36)
    changed_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    void_reason: str | None = Field(default=None, max_length=500)


class ImportLine(SQLModel, table=True):
    """Which code line a bulk feed's line became: the same (source, external_id, line_ref) is never
    imported twice. `digest` is the SHA-256 of the feed row's line fields as last applied, so a re-run
    skips an unchanged row without reading its line, and a changed row becomes a change event."""

    __tablename__ = "import_line"

    source: str = Field(primary_key=True, max_length=64)
    external_id: str = Field(primary_key=True, max_length=128)
    line_ref: str = Field(primary_key=True, max_length=128)
    line_id: str = Field(foreign_key="code_line.id", max_length=36, index=True)
    digest: str = Field(max_length=64)


REFUSED_ONLY = text("outcome <> 'allowed'")
"""The partial index of refused (denied or failed) events: queries name it literally (report.queries)."""


class LedgerEvent(SQLModel, table=True):
    """One audit event. `payload` is the exact hashed bytes; the other columns are indexed copies."""

    __tablename__ = "ledger_event"
    __table_args__ = (
        Index("ix_ledger_event_encounter_seq", "encounter_id", "seq"),
        Index("ix_ledger_event_provider_ts", "provider_id", "ts"),
        Index("ix_ledger_event_type_ts", "type", "ts"),
        Index("ix_ledger_event_actor_ts", "actor_id", "ts"),
        Index("ix_ledger_event_ts", "ts"),
        Index("ix_ledger_event_outcome_provider", "outcome", "provider_id"),
        Index(
            "ix_ledger_event_refused_ts",
            "log_id",
            "ts",
            sqlite_where=REFUSED_ONLY,
            postgresql_where=REFUSED_ONLY,
        ),
    )

    log_id: str = Field(primary_key=True, max_length=64)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    event_id: str = Field(max_length=36)
    ts: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    type: str = Field(max_length=64)
    actor_id: str | None = Field(default=None, max_length=36)
    actor_role: str | None = Field(default=None, max_length=64)
    on_behalf_of: str | None = Field(default=None, max_length=36)
    subject_type: str | None = Field(default=None, max_length=32)
    subject_id: str | None = Field(default=None, sa_column=Column(String(64), nullable=True))
    encounter_id: str | None = Field(default=None, max_length=36)
    provider_id: str | None = Field(default=None, max_length=36)
    outcome: str = Field(max_length=16)
    payload: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    leaf_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    chain_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Delegation(SQLModel, table=True):
    """A provider's grant of coding authority to a coder. Revoked, never deleted."""

    __tablename__ = "delegation"
    __table_args__ = (
        Index("ix_delegation_coder_provider", "coder_id", "provider_id"),
        Index("ix_delegation_provider", "provider_id"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    provider_id: str = Field(foreign_key="app_user.id", max_length=36)
    coder_id: str = Field(foreign_key="app_user.id", max_length=36)
    code_systems: list[str] = _json_list()
    valid_from: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    valid_until: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    dos_from: date | None = None
    dos_until: date | None = None
    granted_by: str = Field(foreign_key="app_user.id", max_length=36)
    granted_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    revoked_at: datetime | None = _utc(nullable=True)
    revoked_by: str | None = Field(default=None, foreign_key="app_user.id", max_length=36)
    reason: str | None = Field(default=None, max_length=500)


class Attestation(SQLModel, table=True):
    """A provider's electronic signature over the exact code set (21 CFR 11.50 / 11.70)."""

    __tablename__ = "attestation"
    __table_args__ = (
        Index("ix_attestation_encounter_status", "encounter_id", "status"),
        Index("ix_attestation_encounter_status_late", "encounter_id", "status", "late"),
        # The dashboard's late signatures, newest first (a range instead of a scan of every signature)
        Index("ix_attestation_late_signed_at", "late", "signed_at"),
    )

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    encounter_id: str = Field(foreign_key="encounter.id", max_length=36)
    signer_id: str = Field(foreign_key="app_user.id", max_length=36, index=True)
    printed_name: str = Field(max_length=200)
    credential: str = Field(max_length=20)
    npi: str = Field(max_length=10)
    signed_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    meaning: str = Field(max_length=2000)
    code_set_digest: str = Field(max_length=64)
    policy_version: str = Field(max_length=64)
    late: bool = False
    status: str = Field(default="valid", max_length=16)
    superseded_at: datetime | None = _utc(nullable=True)
    ledger_seq: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))


class EncounterNote(SQLModel, table=True):
    """A compliance officer's flag or annotation on an encounter."""

    __tablename__ = "encounter_note"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    encounter_id: str = Field(foreign_key="encounter.id", max_length=36, index=True)
    kind: str = Field(max_length=16)  # flag | annotation
    text: str = Field(max_length=2000)
    author_id: str = Field(foreign_key="app_user.id", max_length=36)
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class Engagement(SQLModel, table=True):
    """An external auditor's scope: a date-of-service range, optional providers, an expiry."""

    __tablename__ = "engagement"

    id: str = Field(default_factory=new_id, primary_key=True, max_length=36)
    auditor_id: str = Field(foreign_key="app_user.id", max_length=36, index=True)
    date_from: date
    date_to: date
    provider_ids: list[str] = _json_list()
    expires_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    opened_by: str = Field(foreign_key="app_user.id", max_length=36)
    opened_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))
    purpose: str | None = Field(default=None, max_length=500)
    revoked_at: datetime | None = _utc(nullable=True)
    revoked_by: str | None = Field(default=None, foreign_key="app_user.id", max_length=36)


class Checkpoint(SQLModel, table=True):
    """A signed note over the ledger head (C2SP tlog-checkpoint). Append-only, like the ledger."""

    __tablename__ = "checkpoint"
    __table_args__ = (UniqueConstraint("log_id", "tree_size", name="uq_checkpoint_log_id_tree_size"),)

    id: int | None = Field(default=None, primary_key=True)
    log_id: str = Field(max_length=64)
    tree_size: int = Field(sa_column=Column(BigInteger, nullable=False))
    root_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    chain_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    note: str = Field(sa_column=Column(String(4000), nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


class MerkleFrontier(SQLModel, table=True):
    """The Merkle tree's right edge (the O(log n) subtree roots) at a checkpoint's tree size, written
    with the checkpoint, so a new process extends the root from there instead of re-reading every
    leaf. A cache, never evidence: it is used only when its root equals the signed checkpoint's, and
    full verification recomputes every row and reports one that differs."""

    __tablename__ = "merkle_frontier"

    log_id: str = Field(primary_key=True, max_length=64)
    tree_size: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    nodes: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=Column(UTCDateTime(), nullable=False))


# Code-set tables live with their package; importing them here registers them for Alembic.
from audit.codesets.models import CodeSetCode, CodeSetRelease, MueLimit, NcciPtpEdit  # noqa: E402
from audit.coding_audit.models import (  # noqa: E402
    AuditFinding,
    AuditFollowUp,
    AuditSignature,
    CodingAudit,
    FindingResponse,
)
from audit.ledger.models import (  # noqa: E402
    ChangeAfterAttestation,
    RollupDenied,
    RollupProviderDay,
    RollupProviderDayAuthor,
    RollupProviderDayCode,
)
from audit.user.models import SigninBackoff, SigninBurst  # noqa: E402

__all__ = [
    "AuditFinding", "AuditFollowUp", "AuditSignature", "ChangeAfterAttestation", "CodeSetCode",
    "CodeSetRelease", "CodingAudit", "FindingResponse", "MueLimit", "NcciPtpEdit", "RollupDenied",
    "RollupProviderDay", "RollupProviderDayAuthor", "RollupProviderDayCode", "SigninBackoff", "SigninBurst",
]  # fmt: skip
