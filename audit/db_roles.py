"""The least-privilege PostgreSQL role the service runs as (`audit db grant-app-role ROLE`).

Migrations run as the schema owner; the service runs as a role that reads everything, appends to the
ledger and the checkpoints and cannot change or remove either (no UPDATE, DELETE or TRUNCATE, and not
the owner, so it cannot disable or drop their triggers), inserts the rows the services create and
updates only the columns the services change. Reference data (code sets) and the schema version are
read-only: imports and migrations run as the owner. What the role can still do (rewrite a user's
roles or password hash, a code line, append a forged event) is what verification's reconciliation
catches (see docs/threat-model.md).

Every table must have an entry below: a test fails when a migration adds a table without one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.engine import Connection

from audit.errors import InvalidInput

APPEND_ONLY = ("ledger_event", "checkpoint")
INSERT_ONLY = (
    "change_after_attestation",  # kept by the ledger writer; `audit verify` compares it with the ledger
    "encounter_note",
    "merkle_frontier",
    "encounter_supervisor",
    "audit_finding_response",
    "audit_follow_up",
)
# Only these columns change after a row is written; identity and authorship columns never do.
UPDATABLE: dict[str, tuple[str, ...]] = {
    # the signing lock and its counter; profile, roles, password and status for the user-admin events
    "app_user": (
        "failed_signings",
        "signing_locked_until",
        "locked_until",
        "display_name",
        "roles",
        "password_hash",
        "npi",
        "credential",
        "credential_active",
        "is_active",
    ),
    "api_token": ("revoked_at",),
    "encounter": ("status",),
    "code_line": (
        "code",
        "modifiers",
        "units",
        "diagnosis_pointers",
        "version",
        "status",
        "void_reason",
        "changed_by",
        "changed_at",
    ),
    "attestation": ("status", "superseded_at", "ledger_seq"),
    "import_line": ("digest",),  # a feed row applied again after it changed
    "delegation": ("revoked_at", "revoked_by", "reason"),
    "engagement": ("revoked_at", "revoked_by"),
    # coding audits: the sample drawn once, then the status; a finding's answer and decision
    "coding_audit": ("frame", "frame_sha256", "sample", "sampled_at", "status", "parties"),
    "audit_finding": ("replaced_by", "status", "decision_comment", "decided_by", "decided_at"),
    "audit_signature": ("status", "superseded_at", "ledger_seq"),
}
# Operational counters (sign-in back-off and bursts of failures): no evidence lives in them (the ledger
# holds the events), and they are pruned, so the role may also update and delete their rows.
# The report roll-ups (audit.ledger.rollups) are recounted in place as events are appended; `audit verify`
# recomputes them, so a rewrite by the role is found like any other stale roll-up.
COUNTERS = (
    "signin_backoff",
    "signin_burst",
    "rollup_provider_day",
    "rollup_provider_day_author",
    "rollup_denied",
    "rollup_provider_day_code",
)
READ_ONLY = ("alembic_version", "code_set_release", "code_set_code", "ncci_ptp_edit", "mue_limit")
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def covered_tables() -> set[str]:
    return {*APPEND_ONLY, *INSERT_ONLY, *UPDATABLE, *COUNTERS, *READ_ONLY}


@dataclass
class GrantReport:
    role: str
    created: bool
    granted: list[str] = field(default_factory=list)  # one line per table
    warnings: list[str] = field(default_factory=list)


class RoleRefused(InvalidInput):
    """The role cannot be made least-privilege (a superuser, the owner, ...): nothing was changed."""

    kind = "RoleRefused"


def grant_app_role(conn: Connection, role: str, *, password: str | None = None) -> GrantReport:
    """Create ROLE if missing (LOGIN, no special attributes) and give it exactly the service's
    privileges, revoking anything else it had on the schema's tables. Idempotent; re-run after every
    migration (new tables get nothing until then). Runs in the caller's transaction as the owner."""
    if not ROLE_NAME.match(role):
        raise InvalidInput("role", "a role name is lower-case letters, digits and _ (at most 63)")
    q = f'"{role}"'
    report = GrantReport(role, created=_ensure_role(conn, role, q, password))
    _refuse_powerful(conn, role)
    tables = _schema_tables(conn)
    unknown = sorted(tables - covered_tables())
    if unknown:
        raise RoleRefused("role", f"tables with no privilege entry in audit.db_roles: {', '.join(unknown)}")
    conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {_schema(conn)} FROM {q}"))
    conn.execute(text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {_schema(conn)} FROM {q}"))
    conn.execute(text(f"REVOKE CREATE ON SCHEMA {_schema(conn)} FROM {q}"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA {_schema(conn)} TO {q}"))
    for table in sorted(tables):
        report.granted.append(f"{table}: {_grant_table(conn, table, q)}")
    if conn.execute(
        text("SELECT has_schema_privilege(:r, current_schema(), 'CREATE')"), {"r": role}
    ).scalar():
        report.warnings.append(
            "the role can still CREATE in the schema through PUBLIC: "
            f"REVOKE CREATE ON SCHEMA {_schema(conn)} FROM PUBLIC (PostgreSQL before 15 grants it)"
        )
    return report


def _ensure_role(conn: Connection, role: str, q: str, password: str | None) -> bool:
    exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
    secret = f" PASSWORD {_literal(conn, password)}" if password else ""
    if exists:
        if secret:
            conn.execute(text(f"ALTER ROLE {q}{secret}"))
        return False
    conn.execute(
        text(f"CREATE ROLE {q} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS{secret}")
    )
    return True


def _literal(conn: Connection, value: str) -> str:
    quoted = conn.execute(text("SELECT quote_literal(:v)"), {"v": value}).scalar_one()
    return str(quoted)


def _refuse_powerful(conn: Connection, role: str) -> None:
    attrs = conn.execute(
        text("SELECT rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = :r"), {"r": role}
    ).one()
    if attrs.rolsuper or attrs.rolbypassrls or attrs.rolcreaterole:
        raise RoleRefused("role", f"{role} is a superuser or may bypass row security or create roles")
    owner = conn.execute(
        text(
            "SELECT tableowner FROM pg_tables "
            "WHERE schemaname = current_schema() AND tablename = 'ledger_event'"
        )
    ).scalar_one_or_none()
    if owner is None:
        raise RoleRefused("role", "the schema has no ledger_event table: run `audit db upgrade` first")
    member = conn.execute(text("SELECT pg_has_role(:r, :o, 'MEMBER')"), {"r": role, "o": owner}).scalar()
    if member:
        raise RoleRefused(
            "role", f"{role} is (or is a member of) {owner}, the tables' owner: it could disable triggers"
        )


def _schema(conn: Connection) -> str:
    return '"' + str(conn.execute(text("SELECT current_schema()")).scalar_one()) + '"'


def _schema_tables(conn: Connection) -> set[str]:
    rows = conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))
    return {str(r[0]) for r in rows}


def _grant_table(conn: Connection, table: str, q: str) -> str:
    granted = ["SELECT"]
    conn.execute(text(f'GRANT SELECT ON "{table}" TO {q}'))
    if table in READ_ONLY:
        return "SELECT"
    conn.execute(text(f'GRANT INSERT ON "{table}" TO {q}'))
    granted.append("INSERT")
    for sequence in _sequences(conn, table):
        conn.execute(text(f"GRANT USAGE ON SEQUENCE {sequence} TO {q}"))
        granted.append(f"USAGE on {sequence}")
    if table in COUNTERS:
        conn.execute(text(f'GRANT UPDATE, DELETE ON "{table}" TO {q}'))
        return ", ".join([*granted, "UPDATE", "DELETE"])
    columns = UPDATABLE.get(table)
    if columns:
        conn.execute(text(f'GRANT UPDATE ({", ".join(columns)}) ON "{table}" TO {q}'))
        granted.append(f"UPDATE ({', '.join(columns)})")
    return ", ".join(granted)


def _sequences(conn: Connection, table: str) -> list[str]:
    """The sequences that number the table's rows (serial or identity columns)."""
    rows = conn.execute(
        text(
            "SELECT pg_get_serial_sequence(quote_ident(table_name), column_name) "
            "FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = :t "
            "AND (column_default LIKE 'nextval(%' OR is_identity = 'YES')"
        ),
        {"t": table},
    )
    return [str(r[0]) for r in rows if r[0]]
