"""Encounters: create, read, list. Code lines live in audit.encounter.codes."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, func, or_, union
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audit.delegation.lookup import candidate_delegations
from audit.encounter.schemas import EncounterCreate
from audit.encounter.views import encounter_state
from audit.errors import Conflict, InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import ROW_TIME
from audit.models import CodeLine, Encounter, User, utcnow
from audit.policy.engine import EncounterRes
from audit.policy.filters import encounter_branches, encounter_clause
from audit.policy.guard import Target, authorize
from audit.policy.scope import Area, ReadScope, authorize_encounter_read, encounter_list_scope
from audit.principal import CurrentUser


def acting_user(
    session: Session, user: CurrentUser, on_behalf_of: str | None
) -> tuple[CurrentUser, CurrentUser | None]:
    """(whose authority is used, the integration account submitting for them or None)."""
    if on_behalf_of is None:
        return user, None
    if not (user.has("integration") or user.has("operator")):  # operator: `audit import` at the shell
        raise InvalidInput("on_behalf_of", "only integration accounts may act on behalf of another user")
    named = session.get(User, on_behalf_of)
    if named is None or not named.is_active:
        raise InvalidInput("on_behalf_of", f"user {on_behalf_of} does not exist or is disabled")
    return CurrentUser.of(named), user


def _provider(session: Session, user_id: str, field: str) -> User:
    """A provider who can answer for the encounter: one with an NPI, which the claim and any
    signature must carry (a provider account without one may not render, supervise or sign)."""
    provider = session.get(User, user_id)
    if provider is None or "provider" not in provider.roles:
        raise InvalidInput(field, f"user {user_id} is not a provider")
    if not (provider.npi or "").strip():
        raise InvalidInput(
            field,
            f"provider {provider.display_name} ({user_id}) has no NPI; an administrator must add it",
        )
    return provider


def create_encounter(session: Session, *, user: CurrentUser, data: EncounterCreate) -> Encounter:
    actor_user, via = acting_user(session, user, data.on_behalf_of)
    _provider(session, data.rendering_provider_id, "rendering_provider_id")
    for i, sup in enumerate(data.supervising_provider_ids):
        _provider(session, sup, f"supervising_provider_ids[{i}]")
    target = Target("encounter", None, provider_id=data.rendering_provider_id)
    resource = EncounterRes(
        id="new",
        rendering_provider_id=data.rendering_provider_id,
        supervising_provider_ids=frozenset(data.supervising_provider_ids),
        date_of_service=data.date_of_service,
    )
    delegations = candidate_delegations(session, actor_user, data.rendering_provider_id)
    grant = authorize(actor_user, "encounter.create", target, resource, via=via, delegations=delegations)
    existing = session.exec(
        select(Encounter).where(Encounter.source == data.source, Encounter.external_id == data.external_id)
    ).first()
    if existing is not None:
        raise Conflict(
            f"encounter {data.source}/{data.external_id} already exists", field="external_id", id=existing.id
        )
    encounter = Encounter(
        source=data.source,
        external_id=data.external_id,
        patient_ref=data.patient_ref,
        date_of_service=data.date_of_service,
        rendering_provider_id=data.rendering_provider_id,
        supervising_provider_ids=sorted(set(data.supervising_provider_ids)),
        created_by=actor_user.id,
        created_at=utcnow(),
    )
    session.add(encounter)
    try:
        session.flush()
    except IntegrityError as exc:
        raise Conflict(
            f"encounter {data.source}/{data.external_id} already exists", field="external_id"
        ) from exc
    ledger.append_one(
        session,
        grant.event(
            subject_id=encounter.id,
            encounter_id=encounter.id,
            after=encounter_state(encounter),
            detail=dict(ROW_TIME),
        ),
        now=encounter.created_at,
    )
    return encounter


def load_encounter(session: Session, encounter_id: str, *, for_update: bool = False) -> Encounter:
    stmt = select(Encounter).where(Encounter.id == encounter_id)
    if for_update:
        stmt = stmt.with_for_update()
    encounter = session.exec(stmt).first()
    if encounter is None:
        raise NotFound(f"encounter {encounter_id} not found")
    return encounter


def read_encounter(session: Session, *, user: CurrentUser, encounter_id: str) -> Encounter:
    return read_encounter_scoped(session, user=user, encounter_id=encounter_id)[0]


def read_encounter_scoped(
    session: Session, *, user: CurrentUser, encounter_id: str
) -> tuple[Encounter, ReadScope]:
    """The encounter, if the policy lets the user read it, and the scope that read covers."""
    encounter = load_encounter(session, encounter_id)
    _, scope = authorize_encounter_read(
        session,
        user,
        encounter_res(encounter),
        Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id),
        delegations=candidate_delegations(session, user, encounter.rendering_provider_id),
    )
    return encounter, scope


def encounter_res(encounter: Encounter) -> EncounterRes:
    """The encounter as the policy sees it."""
    return EncounterRes(
        id=encounter.id,
        rendering_provider_id=encounter.rendering_provider_id,
        supervising_provider_ids=frozenset(encounter.supervising_provider_ids),
        date_of_service=encounter.date_of_service,
        status=encounter.status,
    )


def active_lines(session: Session, encounter_id: str) -> list[CodeLine]:
    return list(
        session.exec(
            select(CodeLine)
            .where(CodeLine.encounter_id == encounter_id, CodeLine.status == "active")
            .order_by(CodeLine.entered_at, CodeLine.id)  # type: ignore[arg-type]
        ).all()
    )


TOTAL_CAP = 10_000  # a list counts its rows up to here, then says "10,000+"


@dataclass(frozen=True)
class EncounterListPage:
    """One page of the encounter list, newest date of service first. `total` counts the rows in scope
    up to `TOTAL_CAP` (`total_capped`: there are more); `next_cursor` resumes after the last row."""

    items: list[Encounter]
    total: int
    total_capped: bool
    next_cursor: str | None


def encode_cursor(encounter: Encounter) -> str:
    """The keyset position after `encounter` in (date of service descending, id) order, opaque."""
    raw = f"{encounter.date_of_service.isoformat()}|{encounter.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[date, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        day, encounter_id = raw.split("|", 1)
        return date.fromisoformat(day), encounter_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput("cursor", "not a cursor this list returned (next_cursor)") from exc


def after_cursor(cursor: str) -> ColumnElement[bool]:
    """Rows after the cursor's in (date_of_service DESC, id ASC) order: a range on ix_encounter_dos_id."""
    day, encounter_id = decode_cursor(cursor)
    dos, eid = col(Encounter.date_of_service), col(Encounter.id)
    return or_(dos < day, and_(dos == day, eid > encounter_id))


def capped_count(session: Session, stmt: Select[Any]) -> tuple[int, bool]:
    """How many rows `stmt` has, counting no further than TOTAL_CAP + 1: (count, more than the cap)."""
    first = stmt.with_only_columns(col(Encounter.id)).order_by(None).limit(TOTAL_CAP + 1).subquery()
    n = int(session.execute(select(func.count()).select_from(first)).scalar_one())
    return min(n, TOTAL_CAP), n > TOTAL_CAP


def list_encounters(
    session: Session,
    *,
    user: CurrentUser,
    status: str | None = None,
    provider_id: str | None = None,
    date_from: date | None = None,
    date_to: date | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> EncounterListPage:
    """A page of the encounters the user may list (see `encounter_list_scope`), filtered by the
    request inside that scope; the total counts the same rows (capped). A cursor pages by keyset
    (each page costs its rows, however deep); `offset` still works for clients that send it."""
    if cursor is not None and offset:
        raise InvalidInput("cursor", "send either cursor or offset, not both")
    narrow = Area.of(date_from, date_to, [provider_id] if provider_id else ())
    scope = encounter_list_scope(session, user, narrow)
    stmt = select(Encounter).where(encounter_clause(scope))
    if status:
        stmt = stmt.where(col(Encounter.status) == status)
    total, capped = capped_count(session, stmt)
    extra = [after_cursor(cursor)] if cursor else []
    if status:
        extra.append(col(Encounter.status) == status)
    rows = _newest_first(session, scope, extra, limit + 1, offset)
    more = len(rows) > limit
    rows = rows[:limit]
    return EncounterListPage(rows, total, capped, encode_cursor(rows[-1]) if more and rows else None)


def _newest_first(
    session: Session, scope: ReadScope, extra: list[ColumnElement[bool]], count: int, offset: int
) -> list[Encounter]:
    """`count` encounters of the scope after `offset`, newest date of service first. A scope made of
    several facts (areas, supervised) is read as a union of per-fact pages, each walking its own
    index in order and stopping at offset + count rows, so the page never sorts the whole scope."""
    newest = (col(Encounter.date_of_service).desc(), col(Encounter.id))
    branches = encounter_branches(scope)
    if branches is None or len(branches) == 1:
        where = encounter_clause(scope) if branches is None else branches[0]
        stmt = select(Encounter).where(where, *extra).order_by(*newest).limit(count).offset(offset)
        return list(session.exec(stmt).all())
    if not branches:
        return []
    per_fact = [
        select(col(Encounter.id), col(Encounter.date_of_service))
        .where(branch, *extra)
        .order_by(*newest)
        .limit(offset + count)
        .subquery()
        for branch in branches
    ]
    merged = union(*(select(p.c.id, p.c.date_of_service) for p in per_fact)).subquery()
    page = (
        select(merged.c.id).order_by(merged.c.date_of_service.desc(), merged.c.id).limit(count).offset(offset)
    )
    ids = list(session.execute(page).scalars())
    found = {e.id: e for e in session.exec(select(Encounter).where(col(Encounter.id).in_(ids))).all()}
    return [found[i] for i in ids if i in found]


def lines_by_encounter(session: Session, encounter_ids: list[str]) -> dict[str, list[CodeLine]]:
    """The active lines of several encounters in one query, each encounter's in `active_lines` order."""
    found: dict[str, list[CodeLine]] = {i: [] for i in encounter_ids}
    if not encounter_ids:
        return found
    stmt = (
        select(CodeLine)
        .where(col(CodeLine.encounter_id).in_(encounter_ids), CodeLine.status == "active")
        .order_by(col(CodeLine.encounter_id), col(CodeLine.entered_at), col(CodeLine.id))
    )
    for line in session.exec(stmt).all():
        found[line.encounter_id].append(line)
    return found
