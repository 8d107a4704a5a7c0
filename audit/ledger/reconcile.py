"""Compare the tables with the state the ledger implies (pure: rows in, problems out).

`Reconciliation` takes a finished `Replay` and is fed each table's rows in pages (any order; the
reader pages by id). Every row the ledger does not account for, every row an event implies that the
table lacks, and every field that differs is a problem naming the table, the row id and the field.
Fields no event vouches for are counted as unreconciled, not compared.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

from audit.ledger.problems import FIELD, ROW_MISSING, ROW_UNEXPECTED, Problem, Unreconciled
from audit.ledger.replay import (
    ATTESTATION_STATE,
    DELEGATION_STATE,
    ENGAGEMENT_STATE,
    LEGACY,
    LINE_STATE,
    USER_PUBLIC,
    Replay,
    plain,
)
from audit.ledger.replay_audits import AUDIT_TABLES, RECONCILED_AUDITS, as_events_show_it

# The columns of each table that the ledger vouches for. The reader selects `id` plus these;
# `password_hash` is compared as its SHA-256 (what the events carry).
RECONCILED: dict[str, tuple[str, ...]] = {
    "app_user": (*USER_PUBLIC, "is_active", "credential_active", "password_hash", "created_at"),
    "encounter": (
        "source",
        "external_id",
        "patient_ref",
        "date_of_service",
        "rendering_provider_id",
        "supervising_provider_ids",
        "status",
        "created_by",
        "created_at",
    ),
    "code_line": (
        "encounter_id",
        *LINE_STATE,
        "entered_by",
        "entered_role",
        "delegation_id",
        "entered_at",
        "changed_by",
        "changed_at",
    ),
    "attestation": (*ATTESTATION_STATE, "superseded_at", "ledger_seq"),
    "delegation": (*DELEGATION_STATE, "granted_by", "granted_at"),
    "engagement": (*ENGAGEMENT_STATE, "opened_by", "opened_at"),
    "encounter_note": ("encounter_id", "kind", "text", "author_id", "created_at"),
    **RECONCILED_AUDITS,
}

# Tokens are not replayed row by row: each must match an allowed sign-in of its user at its issue time.
TOKEN_COLUMNS = ("user_id", "issued_at")

# What no event records, and why (for the report and the threat model).
NOT_RECONCILED: dict[str, str] = {
    "app_user.failed_signings, signing_locked_until, locked_until": "signing and account locks",
    "api_token.expires_at, revoked_at": "a token's lifetime and sign-out (sign-out events name no token)",
    "checkpoint": "signed notes: checked by their signature, not by replay",
    "code_set_release, code_set_code, ncci_ptp_edit, mue_limit": "reference data imported by the owner",
    "audit_signature.report outside what the signature covers": "the audit's own fields in the report",
    "coding_audit.parties, older audits": "sampled before sample events named them: unreconciled",
}


def password_digest(password_hash: str) -> str:
    """What events carry for a password: SHA-256 of the stored hash (never the hash itself)."""
    return hashlib.sha256(password_hash.encode()).hexdigest()


def _account_as_events_show_it(row: dict[str, Any]) -> dict[str, Any]:
    """Roles are a set (events list them sorted); the password hash is compared as its digest."""
    shown = dict(row)
    if isinstance(row.get("roles"), list):
        shown["roles"] = sorted(row["roles"], key=str)
    if isinstance(row.get("password_hash"), str):
        shown["password_hash"] = password_digest(row["password_hash"])
    return shown


class Reconciliation:
    def __init__(self, replay: Replay) -> None:
        self.expected = replay.tables
        self.last_seq = replay.last_seq
        self.signins = replay.signins
        self.legacy: Counter[tuple[str, str]] = Counter()

    def compare(self, table: str, rows: Iterable[dict[str, Any]]) -> Iterator[Problem]:
        """Each stored row (a dict with `id` and the RECONCILED columns) against its expected row,
        which is then forgotten; what remains afterwards is reported by `missing`."""
        expected = self.expected[table]
        fields = RECONCILED[table]
        for row in rows:
            row_id = row["id"]
            want = expected.pop(row_id, None)
            if want is None:
                yield Problem(
                    ROW_UNEXPECTED, f"no event accounts for this {table} row", table=table, id=row_id
                )
                continue
            if table == "app_user":
                row = _account_as_events_show_it(row)
            elif table in AUDIT_TABLES:
                row = as_events_show_it(table, row)
            for name in fields:
                expected_value = want[name]
                if expected_value == LEGACY:
                    self.legacy[(table, name)] += 1
                elif row[name] != expected_value:
                    yield self._field(table, row_id, name, expected_value, row[name])

    def tokens(self, rows: Iterable[dict[str, Any]]) -> Iterator[Problem]:
        """Every bearer token (a dict with `id` and TOKEN_COLUMNS) must come from a sign-in event."""
        for row in rows:
            if (row["user_id"], row["issued_at"]) not in self.signins:
                yield Problem(
                    ROW_UNEXPECTED,
                    "no sign-in event of this user at this token's issue time: a minted token",
                    table="api_token",
                    id=row["id"],
                    field="issued_at",
                    found=plain(row["issued_at"]),
                )

    def _field(self, table: str, row_id: str, name: str, expected: Any, found: Any) -> Problem:
        seq = self.last_seq.get((table, row_id))
        return Problem(
            FIELD,
            f"{table}.{name} differs from what the ledger implies (as of seq {seq})",
            table=table,
            id=row_id,
            field=name,
            expected=plain(expected),
            found=plain(found),
        )

    def missing(self, table: str) -> Iterator[Problem]:
        """Rows an event created that the table no longer holds, in id order."""
        for row_id in sorted(self.expected[table]):
            seq = self.last_seq.get((table, row_id))
            yield Problem(
                ROW_MISSING,
                f"the {table} row the event at seq {seq} wrote is not in the table",
                table=table,
                id=row_id,
            )

    def unreconciled(self) -> list[Unreconciled]:
        return [
            Unreconciled(table, name, count, "written before its events recorded this field")
            for (table, name), count in sorted(self.legacy.items())
        ]
