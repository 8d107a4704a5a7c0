"""What a reader may see. Authorising a read yields a `ReadScope`; every read's SQL is built from it
(by `audit.policy.filters`, the only translation into SQL), never from the request's parameters.

The decision stays in Cedar (`authorize`), and the scope is made of the same facts Cedar judged:

- **compliance**: the whole organisation (a permit among `FULL_ACCESS_RULES`), narrowed by the request;
- **auditor**: one live engagement, the newest whose range contains the request. The Cedar context is
  the engagement plus the requested dates of service and providers, with what the request leaves out
  taken from the engagement; the scope is exactly that context's area;
- **provider** (reports): their own encounters as provider of record; no `provider_id` means their own;
- **one encounter** (read, history, timeline, FHIR Provenance and `entity=`): that encounter, decided
  by the encounter's own rules (provider of record or supervising, delegation, engagement);
- **lists** (encounters, delegations, engagements, users): each fact the user holds (provider of
  record, supervising provider, each live delegation, each live engagement, a party to the row) is
  judged on its own, and the list holds the union of the permitted facts. A list's query parameters
  are filters inside that union: a list never refuses, it shows nothing it may not.

Request parameters can only narrow: the scope's SQL is `authorised AND narrowing`, and for reads of the
whole system (reports, events, exports, samples) a request reaching outside the authorised area is
refused by Cedar (403 with a `denied` event) before any SQL runs.

**Which ledger events a scoped reader (auditor, provider) sees.** Events on encounters inside the scope
(date of service and provider of record, read from the `encounter` row, never from the event), whoever
caused them and whatever their outcome, including refusals; and the allowed `delegation.grant` and
`delegation.revoke` events of delegations from an in-scope provider whose date-of-service window (if
any) overlaps the scope's dates, so the auditor can see who held coding authority and since when. Nothing
else: no sign-ins, no user or role administration, no engagements, no other readers' report views,
searches or exports, not even the auditor's own. Those belong to compliance, who sees every event; when
compliance narrows by dates of service or providers, events on no encounter are matched by their time
and indexed provider instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlmodel import Session, col, select

from audit.models import Delegation, Engagement, utcnow
from audit.policy.engine import EncounterRes, EngagementRes, SystemRes, UserRes
from audit.policy.guard import Grant, Target, authorize, check, delegation_res
from audit.principal import CurrentUser

#: Permits that mean "the whole organisation": a read they allow is limited only by the request.
FULL_ACCESS_RULES = frozenset(
    {
        "audit.compliance_full_access",
        "audit.compliance_manages_engagements",
        "oversight.compliance_reads_encounters",
        "oversight.compliance_reads_users",
        "users.admin_manages_users",
    }
)
MAX_FACTS = 50  # live delegations or engagements one user's list is built from


@dataclass(frozen=True)
class Area:
    """Encounters by date of service and provider of record. None is unbounded; an empty provider
    set matches nothing."""

    date_from: date | None = None
    date_to: date | None = None
    provider_ids: frozenset[str] | None = None

    @classmethod
    def of(
        cls, date_from: date | None = None, date_to: date | None = None, providers: Iterable[str] = ()
    ) -> Area:
        """An area from request parameters (no providers: any provider)."""
        return cls(date_from, date_to, frozenset(providers) or None)

    @classmethod
    def from_context(cls, ctx: Mapping[str, Any]) -> Area:
        providers = ctx.get("scope_provider_ids")  # an empty set stays empty: it matches nothing
        return cls(
            ctx.get("scope_from"), ctx.get("scope_to"), None if providers is None else frozenset(providers)
        )

    @property
    def bounded(self) -> bool:
        return self != Area()

    def context(self) -> dict[str, Any]:
        """The area as Cedar context keys."""
        ctx: dict[str, Any] = {}
        if self.date_from is not None:
            ctx["scope_from"] = self.date_from
        if self.date_to is not None:
            ctx["scope_to"] = self.date_to
        if self.provider_ids is not None:
            ctx["scope_provider_ids"] = self.provider_ids
        return ctx

    def intersect(self, other: Area) -> Area:
        starts = [d for d in (self.date_from, other.date_from) if d is not None]
        ends = [d for d in (self.date_to, other.date_to) if d is not None]
        sets = [p for p in (self.provider_ids, other.provider_ids) if p is not None]
        providers = frozenset.intersection(*sets) if sets else None
        return Area(max(starts) if starts else None, min(ends) if ends else None, providers)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.date_from.isoformat() if self.date_from else None,
            "to": self.date_to.isoformat() if self.date_to else None,
            "provider_ids": sorted(self.provider_ids) if self.provider_ids is not None else None,
        }


@dataclass(frozen=True)
class ReadScope:
    """What one authorised read may return.

    `areas` is what the policy allowed (their union; None: the whole organisation); `party_id` adds
    what that user is a named party to (encounters they supervise, delegations they granted or hold,
    engagements opened for them, their own user row). `narrow` and `encounter_id` are what the request
    asked for inside that; they only ever restrict.
    """

    reader_id: str
    areas: tuple[Area, ...] | None
    party_id: str | None = None
    narrow: Area = Area()
    encounter_id: str | None = None
    basis: tuple[str, ...] = ()  # the permitting rules, or the facts a list was built from
    engagement_id: str | None = None  # the engagement an auditor's read was judged in

    @property
    def everything(self) -> bool:
        return self.areas is None

    @property
    def unlimited(self) -> bool:
        """The whole ledger: full access and no narrowing."""
        return self.everything and not self.narrow.bounded and self.encounter_id is None

    def narrowed(self, area: Area) -> ReadScope:
        return replace(self, narrow=self.narrow.intersect(area))

    def effective(self) -> Area:
        """The one area this read covers (reads of the whole system have a single area)."""
        if self.areas is None or len(self.areas) != 1:
            return self.narrow
        return self.areas[0].intersect(self.narrow)

    def without_provider_narrowing(self) -> ReadScope:
        """The same dates over every provider the reader may see (a report's comparison group)."""
        return replace(self, narrow=replace(self.narrow, provider_ids=None), encounter_id=None)

    def as_dict(self) -> dict[str, Any]:
        """The effective scope as reports, events and bundle manifests state it."""
        return {**self.effective().as_dict(), "encounter_id": self.encounter_id}

    def evidence(self) -> dict[str, Any]:
        """What a read's audit event adds about its authority: the engagement it was judged in."""
        return {"engagement_id": self.engagement_id} if self.engagement_id else {}


# --- facts -------------------------------------------------------------------------------------------


def engagement_res(e: Engagement) -> EngagementRes:
    return EngagementRes(
        id=e.id,
        auditor_id=e.auditor_id,
        date_from=e.date_from,
        date_to=e.date_to,
        provider_ids=frozenset(e.provider_ids),
        expires_at=e.expires_at,
        revoked=e.revoked_at is not None,
    )


def live_engagements(session: Session, auditor_id: str, now: datetime) -> list[Engagement]:
    """The auditor's unrevoked, unexpired engagements, newest first."""
    return list(
        session.exec(
            select(Engagement)
            .where(
                Engagement.auditor_id == auditor_id,
                col(Engagement.revoked_at).is_(None),
                col(Engagement.expires_at) > now,
            )
            .order_by(col(Engagement.opened_at).desc(), col(Engagement.id))
            .limit(MAX_FACTS)
        ).all()
    )


def live_delegations(session: Session, coder_id: str, now: datetime) -> list[Delegation]:
    """The coder's unrevoked delegations valid now, newest first."""
    return list(
        session.exec(
            select(Delegation)
            .where(
                Delegation.coder_id == coder_id,
                col(Delegation.revoked_at).is_(None),
                col(Delegation.valid_from) <= now,
                col(Delegation.valid_until) >= now,
            )
            .order_by(col(Delegation.granted_at).desc(), col(Delegation.id))
            .limit(MAX_FACTS)
        ).all()
    )


def engagement_area(e: Engagement) -> Area:
    return Area(e.date_from, e.date_to, frozenset(e.provider_ids) or None)


def _in_engagement(asked: Area, e: Engagement) -> dict[str, Any]:
    """The Cedar context for `asked` inside engagement `e`: what `asked` leaves out comes from `e`."""
    own = engagement_area(e)
    filled = Area(
        asked.date_from if asked.date_from is not None else own.date_from,
        asked.date_to if asked.date_to is not None else own.date_to,
        asked.provider_ids if asked.provider_ids is not None else own.provider_ids,
    )
    return {"engagement": engagement_res(e), **filled.context()}


def _contains(e: Engagement, ctx: Mapping[str, Any]) -> bool:
    area = Area.from_context(ctx)
    assert area.date_from is not None and area.date_to is not None
    inside_dates = e.date_from <= area.date_from <= area.date_to <= e.date_to
    return inside_dates and (not e.provider_ids or set(area.provider_ids or ()) <= set(e.provider_ids))


def engagement_context(session: Session, user: CurrentUser, asked: Area = Area()) -> dict[str, Any]:
    """For an auditor: the context of the newest live engagement containing `asked` (else the newest,
    which the policy will refuse). Empty for anyone else."""
    if not user.has("auditor"):
        return {}
    engagements = live_engagements(session, user.id, utcnow())
    contexts = [_in_engagement(asked, e) for e in engagements]
    inside = [ctx for e, ctx in zip(engagements, contexts, strict=True) if _contains(e, ctx)]
    return (inside or contexts or [{}])[0]


# --- reads of the whole system: reports, events, exports, samples ------------------------------------


def _system_contexts(session: Session, user: CurrentUser, asked: Area) -> list[dict[str, Any]]:
    """The contexts a read over `asked` may be judged in, most authoritative first."""
    contexts: list[dict[str, Any]] = []
    if user.has("compliance"):
        contexts.append(asked.context())
    if user.has("auditor"):
        contexts.append(engagement_context(session, user, asked) or asked.context())
    if user.has("provider"):
        mine = asked if asked.provider_ids is not None else replace(asked, provider_ids=frozenset({user.id}))
        contexts.append(mine.context())
    return contexts or [asked.context()]


def _engagement_id(ctx: Mapping[str, Any]) -> str | None:
    engagement = ctx.get("engagement")
    return engagement.id if engagement is not None else None


def authorize_read(
    session: Session,
    user: CurrentUser,
    action: str,
    target: Target,
    asked: Area = Area(),
    *,
    encounter_id: str | None = None,
) -> tuple[Grant, ReadScope]:
    """Decide a read of the whole system (`report.view`, `audit.read_events`, `report.export`,
    `sample.draw`) over the `asked` area; refuse (recorded) or return the grant and its scope."""
    contexts = _system_contexts(session, user, asked)
    chosen = next((c for c in contexts[:-1] if check(user, action, SystemRes(), c).allowed), contexts[-1])
    grant = authorize(user, action, target, SystemRes(), chosen)
    if FULL_ACCESS_RULES.intersection(grant.rule_ids):
        scope = ReadScope(user.id, None, narrow=asked, encounter_id=encounter_id, basis=grant.rule_ids)
    else:
        area = Area.from_context(chosen)
        scope = ReadScope(
            user.id,
            (area,),
            narrow=asked,
            encounter_id=encounter_id,
            basis=grant.rule_ids,
            engagement_id=_engagement_id(chosen),
        )
    return grant, scope


def encounter_area(encounter: EncounterRes) -> Area:
    dos = encounter.date_of_service
    return Area(dos, dos, frozenset({encounter.rendering_provider_id}))


def authorize_encounter_read(
    session: Session,
    user: CurrentUser,
    encounter: EncounterRes,
    target: Target,
    delegations: Sequence[Delegation] = (),
) -> tuple[Grant, ReadScope]:
    """Decide reading one encounter (and its history); the scope is that encounter."""
    area = encounter_area(encounter)
    context = engagement_context(session, user, area)
    grant = authorize(user, "encounter.read", target, encounter, context, delegations=delegations)
    scope = ReadScope(
        user.id,
        (area,),
        narrow=area,
        encounter_id=encounter.id,
        basis=grant.rule_ids,
        engagement_id=_engagement_id(context),
    )
    return grant, scope


# --- lists ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fact:
    context: dict[str, Any]
    area: Area | None = None  # None: the fact adds no area (a party fact)
    party: bool = False
    label: str = ""


def _list_facts(session: Session, user: CurrentUser, now: datetime) -> list[_Fact]:
    facts: list[_Fact] = []
    if user.has("compliance"):
        facts.append(_Fact({}, Area(), label="compliance"))
    if user.has("provider"):
        own = Area(provider_ids=frozenset({user.id}))
        facts.append(_Fact(own.context(), own, label="provider"))
        facts.append(_Fact({"supervisor": user.id}, party=True, label="supervisor"))
    if user.has("coder"):
        for d in live_delegations(session, user.id, now):
            area = Area(d.dos_from, d.dos_until, frozenset({d.provider_id}))
            facts.append(
                _Fact({"delegation": delegation_res(d), **area.context()}, area, label=f"delegation:{d.id}")
            )
    if user.has("auditor"):
        for e in live_engagements(session, user.id, now):
            area = engagement_area(e)
            facts.append(_Fact(_in_engagement(area, e), area, label=f"engagement:{e.id}"))
    return facts


def encounter_list_scope(session: Session, user: CurrentUser, narrow: Area = Area()) -> ReadScope:
    """The encounters a user may list: the union of the facts Cedar permits (`encounter.list`)."""
    areas: list[Area] = []
    party: str | None = None
    basis: list[str] = []
    for fact in _list_facts(session, user, utcnow()):
        decision = check(user, "encounter.list", SystemRes(), fact.context)
        if not decision.allowed:
            continue
        if FULL_ACCESS_RULES.intersection(decision.rule_ids):
            return ReadScope(user.id, None, narrow=narrow, basis=decision.rule_ids)
        basis.append(fact.label)
        if fact.party:
            party = user.id
        elif fact.area is not None:
            areas.append(fact.area)
    return ReadScope(user.id, tuple(areas), party_id=party, narrow=narrow, basis=tuple(basis))


def delegation_list_scope(
    session: Session, user: CurrentUser
) -> tuple[ReadScope, Callable[[Delegation], bool]]:
    """The delegations a user may list, and the per-row policy check of `delegation.read` that
    confirms each row of a page: compliance all; a provider or coder those they are a party to; an
    auditor those of the providers and dates of their live engagements."""
    now = utcnow()
    engagements = live_engagements(session, user.id, now) if user.has("auditor") else []
    contexts: list[dict[str, Any]] = [{}] + [{"engagement": engagement_res(e)} for e in engagements]

    def readable(d: Delegation) -> bool:
        return any(check(user, "delegation.read", delegation_res(d), c).allowed for c in contexts)

    if user.has("compliance"):
        return ReadScope(user.id, None, basis=("compliance",)), readable
    party = user.id if user.roles & {"provider", "coder"} else None
    areas = tuple(engagement_area(e) for e in engagements)
    labels = tuple(f"engagement:{e.id}" for e in engagements)
    return ReadScope(user.id, areas, party_id=party, basis=labels), readable


def engagement_list_scope(user: CurrentUser) -> tuple[Grant, ReadScope]:
    """Compliance lists every engagement, an auditor those opened for them; anyone else is refused."""
    grant = authorize(user, "engagement.read", Target("engagement", None), SystemRes())
    if FULL_ACCESS_RULES.intersection(grant.rule_ids):
        return grant, ReadScope(user.id, None, basis=grant.rule_ids)
    return grant, ReadScope(user.id, (), party_id=user.id, basis=grant.rule_ids)


def user_list_scope(user: CurrentUser) -> tuple[Grant, ReadScope]:
    """Administrators and compliance list every user; anyone else is refused (a permit that is not
    full access would show only the reader's own row)."""
    grant = authorize(user, "user.read", Target("user", None), UserRes(id="all", roles=frozenset()))
    if FULL_ACCESS_RULES.intersection(grant.rule_ids):
        return grant, ReadScope(user.id, None, basis=grant.rule_ids)
    return grant, ReadScope(user.id, (), party_id=user.id, basis=grant.rule_ids)
