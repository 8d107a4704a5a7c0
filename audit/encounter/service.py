"""Encounters: create, read, list. Code lines live in audit.encounter.codes."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import String, and_, cast, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audit.delegation.lookup import candidate_delegations
from audit.encounter.schemas import EncounterCreate
from audit.encounter.views import encounter_state
from audit.errors import Conflict, InvalidInput, NotFound
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import CodeLine, Delegation, Encounter, Engagement, User, utcnow
from audit.policy.engine import EncounterRes
from audit.policy.guard import Target, authorize
from audit.policy.scope import auditor_context, encounter_scope, live_engagements
from audit.principal import CurrentUser


def acting_user(
    session: Session, user: CurrentUser, on_behalf_of: str | None
) -> tuple[CurrentUser, CurrentUser | None]:
    """(whose authority is used, the integration account submitting for them or None)."""
    if on_behalf_of is None:
        return user, None
    if not user.has("integration"):
        raise InvalidInput("on_behalf_of", "only integration accounts may act on behalf of another user")
    named = session.get(User, on_behalf_of)
    if named is None or not named.is_active:
        raise InvalidInput("on_behalf_of", f"user {on_behalf_of} does not exist or is disabled")
    return CurrentUser.of(named), user


def _provider(session: Session, user_id: str, field: str) -> User:
    provider = session.get(User, user_id)
    if provider is None or "provider" not in provider.roles:
        raise InvalidInput(field, f"user {user_id} is not a provider")
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
        EventDraft(
            type="encounter.create",
            actor=via.actor("integration") if via else actor_user.actor(grant.role),
            on_behalf_of=_on_behalf(grant, actor_user, via),
            subject_type="encounter",
            subject_id=encounter.id,
            encounter_id=encounter.id,
            provider_id=encounter.rendering_provider_id,
            policy=grant.policy,
            after=encounter_state(encounter),
        ),
    )
    return encounter


def _on_behalf(grant: Any, actor_user: CurrentUser, via: CurrentUser | None) -> dict[str, Any] | None:
    if via is not None:
        return {"user_id": actor_user.id, "role": grant.role, "delegation_id": grant.delegation_id}
    return grant.on_behalf_of


def load_encounter(session: Session, encounter_id: str, *, for_update: bool = False) -> Encounter:
    stmt = select(Encounter).where(Encounter.id == encounter_id)
    if for_update:
        stmt = stmt.with_for_update()
    encounter = session.exec(stmt).first()
    if encounter is None:
        raise NotFound(f"encounter {encounter_id} not found")
    return encounter


def read_encounter(session: Session, *, user: CurrentUser, encounter_id: str) -> Encounter:
    encounter = load_encounter(session, encounter_id)
    authorize(
        user,
        "encounter.read",
        Target("encounter", encounter.id, encounter.id, encounter.rendering_provider_id),
        encounter_res(encounter),
        auditor_context(session, user, **encounter_scope(encounter)),
        delegations=candidate_delegations(session, user, encounter.rendering_provider_id),
    )
    return encounter


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
) -> tuple[list[Encounter], int]:
    stmt = select(Encounter)
    stmt = _visible_to(stmt, session, user)
    if status:
        stmt = stmt.where(Encounter.status == status)
    if provider_id:
        stmt = stmt.where(Encounter.rendering_provider_id == provider_id)
    if date_from:
        stmt = stmt.where(Encounter.date_of_service >= date_from)
    if date_to:
        stmt = stmt.where(Encounter.date_of_service <= date_to)
    total = session.exec(select(func.count()).select_from(stmt.subquery())).one()
    page = stmt.order_by(Encounter.date_of_service.desc(), Encounter.id).limit(limit).offset(offset)  # type: ignore[attr-defined]
    return list(session.exec(page).all()), int(total)


def _visible_to(stmt: Any, session: Session, user: CurrentUser) -> Any:
    """Row-level scope for lists, matching the encounter.read rules (a per-row policy call would not
    scale): compliance sees all; a provider their own and supervised encounters; a coder those of
    providers with a live delegation to them (within its date-of-service window); an auditor what a
    live engagement covers. A user with several roles sees the union."""
    if user.has("compliance"):
        return stmt
    now = utcnow()
    visible: list[Any] = []
    if user.has("provider"):
        visible += [
            col(Encounter.rendering_provider_id) == user.id,
            cast(col(Encounter.supervising_provider_ids), String).contains(user.id),
        ]
    if user.has("coder"):
        visible += [
            _delegated(d)
            for d in session.exec(
                select(Delegation).where(
                    Delegation.coder_id == user.id,
                    col(Delegation.revoked_at).is_(None),
                    col(Delegation.valid_from) <= now,
                    col(Delegation.valid_until) >= now,
                )
            ).all()
        ]
    if user.has("auditor"):
        visible += [_engaged(e) for e in live_engagements(session, user.id, now)]
    return stmt.where(or_(*visible)) if visible else stmt.where(col(Encounter.id).is_(None))


def _delegated(d: Delegation) -> Any:
    condition = col(Encounter.rendering_provider_id) == d.provider_id
    if d.dos_from:
        condition = and_(condition, col(Encounter.date_of_service) >= d.dos_from)
    if d.dos_until:
        condition = and_(condition, col(Encounter.date_of_service) <= d.dos_until)
    return condition


def _engaged(e: Engagement) -> Any:
    condition = and_(
        col(Encounter.date_of_service) >= e.date_from, col(Encounter.date_of_service) <= e.date_to
    )
    if e.provider_ids:
        condition = and_(condition, col(Encounter.rendering_provider_id).in_(e.provider_ids))
    return condition
