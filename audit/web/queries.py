"""The encounter tables of the provider's queue and the coder's worklist: SQL inside the ReadScope
the API's encounter list uses (`encounter_list_scope` + `encounter_clause`), then filters, sorts on
indexed or joined columns, and one page (never the whole table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, and_, func
from sqlmodel import Session, col, select

from audit.encounter.service import capped_count
from audit.models import Encounter, User
from audit.policy.filters import encounter_clause
from audit.policy.scope import Area, ReadScope, encounter_list_scope
from audit.principal import CurrentUser
from audit.web.deps import Listing

SORTS: dict[str, Any] = {
    "dos": col(Encounter.date_of_service),
    "external_id": col(Encounter.external_id),
    "patient_ref": col(Encounter.patient_ref),
    "status": col(Encounter.status),
    "provider": col(User.display_name),
    "created": col(Encounter.created_at),
}


@dataclass(frozen=True)
class Filters:
    external_id: str = ""
    patient_ref: str = ""
    provider_id: str = ""
    status: str = ""
    date_from: date | None = None
    date_to: date | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "external_id": self.external_id,
            "patient_ref": self.patient_ref,
            "provider_id": self.provider_id,
            "status": self.status,
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
        }


def starts_with(column: Any, prefix: str, dialect: str) -> ColumnElement[bool]:
    """`column` starts with `prefix`, in a form an index serves: on SQLite a range over the BINARY
    order (exact, and case-sensitive as on PostgreSQL); on PostgreSQL a LIKE prefix, which the
    `text_pattern_ops` index turns into the same range whatever the database's collation."""
    following = ord(prefix[-1]) + 1
    if dialect == "sqlite" and following < 0xD800:  # the successor is a plain character
        return and_(column >= prefix, column < prefix[:-1] + chr(following))
    if dialect == "sqlite":
        return func.substr(column, 1, len(prefix)) == prefix
    escaped = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return column.like(escaped + "%", escape="\\")


@dataclass(frozen=True)
class EncounterRows:
    """One page of a web encounter table: the rows (encounter, rendering provider), the total counted
    up to TOTAL_CAP (`capped`: there are more), and the scope they were read in."""

    rows: list[tuple[Encounter, User]]
    total: int
    capped: bool
    scope: ReadScope


def encounter_page(
    session: Session,
    user: CurrentUser,
    filters: Filters,
    lst: Listing,
    *,
    statuses: tuple[str, ...] = (),
    own: bool = False,
) -> EncounterRows:
    """A page of the encounters in the user's list scope, filtered, sorted on an indexed column."""
    providers = [user.id] if own else ([filters.provider_id] if filters.provider_id else [])
    scope = encounter_list_scope(session, user, Area.of(filters.date_from, filters.date_to, providers))
    dialect = session.get_bind().dialect.name
    stmt = select(col(Encounter.id)).where(encounter_clause(scope))
    if own:
        stmt = stmt.where(col(Encounter.rendering_provider_id) == user.id)
    if statuses:
        stmt = stmt.where(col(Encounter.status).in_(statuses))
    if filters.status:
        stmt = stmt.where(col(Encounter.status) == filters.status)
    if filters.external_id:
        stmt = stmt.where(starts_with(col(Encounter.external_id), filters.external_id, dialect))
    if filters.patient_ref:
        stmt = stmt.where(starts_with(col(Encounter.patient_ref), filters.patient_ref, dialect))
    total, capped = capped_count(session, stmt)
    # Two steps: sort and cut the page over narrow rows (ids and the sort key), then load those rows.
    if lst.sort == "provider":
        stmt = stmt.join(User, col(User.id) == col(Encounter.rendering_provider_id))
    order = SORTS[lst.sort]
    page = stmt.order_by(order.desc() if lst.desc else order.asc(), col(Encounter.id)).limit(lst.per)
    ids = list(session.exec(page.offset(lst.offset)).all())
    if not ids:
        return EncounterRows([], total, capped, scope)
    loaded = select(Encounter, User).join(User, col(User.id) == col(Encounter.rendering_provider_id))
    rows = {e.id: (e, u) for e, u in session.exec(loaded.where(col(Encounter.id).in_(ids))).all()}
    return EncounterRows([rows[i] for i in ids if i in rows], total, capped, scope)
