"""The report roll-ups: per provider of record and day of service, the counts the reports sum.

Derived data, never evidence: kept in the same transaction as the events they count (audit.ledger.
rollups, called by the ledger writer), rebuilt by the migration, and recomputed from the tables and
the ledger by `audit verify`, which names every row that differs."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Column, Date, Index, String
from sqlmodel import Field, SQLModel

from audit.dbtypes import UTCDateTime


class RollupProviderDay(SQLModel, table=True):
    """Encounters of one provider of record on one date of service, by status (`unattested` is
    open), late (valid) attestations, and allowed code events after the first attestation."""

    __tablename__ = "rollup_provider_day"

    provider_id: str = Field(sa_column=Column(String(36), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    encounters: int = 0
    attested: int = 0
    unattested: int = 0
    amended: int = 0
    attested_late: int = 0
    changes_after_attestation: int = 0


class RollupProviderDayAuthor(SQLModel, table=True):
    """Code lines on one provider's encounters of one date of service, per author."""

    __tablename__ = "rollup_provider_day_author"

    provider_id: str = Field(sa_column=Column(String(36), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    entered_by: str = Field(sa_column=Column(String(36), primary_key=True))
    lines: int = 0


class RollupDenied(SQLModel, table=True):
    """Denied events naming a provider, counted by the provider they name. `kind` says what `day` is:
    `encounter` (on an encounter: its date of service, and `encounter_provider_id` its provider of
    record), `unattached` (on no encounter: the UTC day of the event) or `orphan` (naming an
    encounter that does not exist: the UTC day of the event)."""

    __tablename__ = "rollup_denied"

    kind: str = Field(sa_column=Column(String(16), primary_key=True))
    provider_id: str = Field(sa_column=Column(String(36), primary_key=True))
    encounter_provider_id: str = Field(sa_column=Column(String(36), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    attempts: int = 0


CODE_EVENTS = ("code.add", "code.change", "code.void")
"""The ledger event types that change a code line: what "a change" means in every report and check."""

EM_FAMILIES = {
    "established": ("99211", "99212", "99213", "99214", "99215"),
    "new": ("99202", "99203", "99204", "99205"),
}
"""The office E/M levels (CPT) by family, as the E/M distribution report compares them."""
EM_CODES = tuple(code for family in EM_FAMILIES.values() for code in family)


class RollupProviderDayCode(SQLModel, table=True):
    """Active CPT E/M lines (EM_CODES) on one provider's encounters of one date of service, per code:
    what the E/M level distribution sums."""

    __tablename__ = "rollup_provider_day_code"
    # The distribution sums per (provider, code): read in that order, covering, with no sort.
    __table_args__ = (Index("ix_rollup_provider_day_code_sum", "provider_id", "code", "day", "lines"),)

    provider_id: str = Field(sa_column=Column(String(36), primary_key=True))
    day: date = Field(sa_column=Column(Date, primary_key=True))
    code: str = Field(sa_column=Column(String(16), primary_key=True))
    lines: int = 0


class ChangeAfterAttestation(SQLModel, table=True):
    """One allowed code event (add, change, void) on an encounter that already had an allowed
    attestation earlier in the log: the events the compliance dashboard lists, counts and charts.

    A narrow copy of the ledger's key (log, seq) with the event's time and encounter, so that the
    dashboard reads the few thousand changes of a window by time instead of testing every code event
    of the window against the encounter's attestations (0.78 s a view at 1,000,000 events). The rest
    of each event is read from the ledger row by its key."""

    __tablename__ = "change_after_attestation"
    __table_args__ = (
        Index("ix_change_after_attestation_ts", "log_id", "ts"),
        Index("ix_change_after_attestation_encounter", "encounter_id"),  # the roll-ups count them per key
    )

    log_id: str = Field(sa_column=Column(String(64), primary_key=True))
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    ts: datetime = Field(sa_column=Column(UTCDateTime(), nullable=False))
    encounter_id: str = Field(sa_column=Column(String(36), nullable=False))
