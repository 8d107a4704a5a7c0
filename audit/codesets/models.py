"""Persisted code-set releases (imported files). Migrations are generated from these by the lead."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, ForeignKey, Index, Integer
from sqlmodel import Field, SQLModel

import audit.db  # noqa: F401  (applies the naming convention before any table is declared)
from audit.dbtypes import UTCDateTime

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT (PTP tables run to millions).
_BigId = BigInteger().with_variant(Integer(), "sqlite")


def _release_fk() -> Any:
    return Field(
        sa_column=Column(Integer, ForeignKey("code_set_release.id", ondelete="CASCADE"), nullable=False)
    )


class CodeSetRelease(SQLModel, table=True):
    """One imported file: a release of a code system (or an NCCI PTP / MUE table version)."""

    __tablename__ = "code_set_release"
    __table_args__ = (Index("ix_code_set_release_system_from", "system", "effective_from"),)

    id: int | None = Field(default=None, primary_key=True)
    system: str = Field(max_length=16)  # CPT | HCPCS | ICD-10-CM | ICD-10-PCS | NCCI-PTP | MUE
    label: str = Field(max_length=100)
    effective_from: date
    effective_until: date | None = None  # inclusive; None = open-ended
    source_file: str = Field(max_length=255)
    sha256: str = Field(max_length=64)
    imported_at: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    code_count: int = 0


class CodeSetCode(SQLModel, table=True):
    __tablename__ = "code_set_code"
    __table_args__ = (Index("ix_code_set_code_release_code", "release_id", "code"),)

    id: int | None = Field(default=None, sa_column=Column(_BigId, primary_key=True, autoincrement=True))
    release_id: int = _release_fk()
    code: str = Field(max_length=8)  # normal form (ICD-10-CM dotted)
    billable: bool = True
    is_modifier: bool = False  # HCPCS Level II modifier records
    added: date | None = None
    terminated: date | None = None  # last valid day


class NcciPtpEdit(SQLModel, table=True):
    __tablename__ = "ncci_ptp_edit"
    __table_args__ = (Index("ix_ncci_ptp_edit_release_pair", "release_id", "column1", "column2"),)

    id: int | None = Field(default=None, sa_column=Column(_BigId, primary_key=True, autoincrement=True))
    release_id: int = _release_fk()
    column1: str = Field(max_length=5)
    column2: str = Field(max_length=5)
    effective: date
    deleted: date | None = None
    modifier_indicator: int  # 0, 1 or 9


class MueLimit(SQLModel, table=True):
    __tablename__ = "mue_limit"
    __table_args__ = (Index("ix_mue_limit_release_code", "release_id", "code"),)

    id: int | None = Field(default=None, sa_column=Column(_BigId, primary_key=True, autoincrement=True))
    release_id: int = _release_fk()
    code: str = Field(max_length=5)
    units: int
    mai: int  # 1 line, 2 date of service (absolute), 3 date of service (clinical)
