"""FHIR R4 reads and searches over the ledger (AuditEvent) and the attestations (Provenance).

Each request parses its parameters (InvalidInput naming the parameter), asks the policy for the read's
scope (compliance everything; an auditor only inside an engagement covering the requested scope;
anyone else is refused, and the refusal recorded), runs its SQL filtered by that scope
(`audit.policy.filters`), maps the rows, and records itself as a `fhir.search` or `fhir.read` event in
the request's transaction. A read by id uses the same scope as the search without an encounter: an
id outside it is 404, exactly as an id that does not exist (recorded as a failed read), so a reader
cannot tell the two apart.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlmodel import Session, col

from audit.attestation.service import attestation_view
from audit.encounter.history import event_display_names
from audit.errors import InvalidInput, NotFound
from audit.fhir import mapping
from audit.fhir.audit_event import audit_event
from audit.fhir.params import (
    FHIR_ID,
    Params,
    Search,
    parse_dates,
    parse_encounter_reference,
    parse_page,
    parse_subtypes,
    single,
    values,
)
from audit.fhir.provenance import Enterer, provenance
from audit.inputs import is_ascii_digits
from audit.ledger import service as ledger
from audit.ledger.events import ALLOWED, FAILED, EventDraft
from audit.ledger.models import CODE_EVENTS
from audit.ledger.service import LEDGER
from audit.models import Attestation, Encounter
from audit.policy.filters import attestation_clause, event_clause, event_page_clause, in_log
from audit.policy.guard import Grant, Target
from audit.policy.scope import Area, ReadScope, authorize_read
from audit.principal import CurrentUser

_COMPARE: dict[str, Any] = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
MAX_SEQ = 2**63 - 1


# --- helpers ----------------------------------------------------------------------------------------


def _encounter_area(session: Session, encounter_id: str) -> Area:
    """The area of one encounter (its date of service and provider), or no area when it does not exist."""
    row = session.execute(
        select(col(Encounter.rendering_provider_id), col(Encounter.date_of_service)).where(
            col(Encounter.id) == encounter_id
        )
    ).first()
    return Area(row[1], row[1], frozenset({str(row[0])})) if row else Area()


def _authorize_read(session: Session, user: CurrentUser, encounter_id: str | None) -> tuple[Grant, ReadScope]:
    """Every FHIR read is `audit.read_events`: compliance everything, an auditor their engagement.
    Naming an encounter asks for exactly that encounter, so an auditor outside it is refused."""
    asked = _encounter_area(session, encounter_id) if encounter_id is not None else Area()
    target = Target("ledger", None)
    return authorize_read(session, user, "audit.read_events", target, asked, encounter_id=encounter_id)


def _patients(session: Session, encounter_ids: Iterable[str]) -> dict[str, str]:
    """Patient references of the encounters (for AuditEvent's patient entity), in one query."""
    ids = sorted(set(encounter_ids))
    if not ids:
        return {}
    rows = session.execute(
        select(col(Encounter.id), col(Encounter.patient_ref)).where(col(Encounter.id).in_(ids))
    )
    return {str(eid): str(ref) for eid, ref in rows}


def _audit_events(session: Session, rows: Sequence[Any], base_url: str) -> list[dict[str, Any]]:
    """(payload, leaf_hash) rows as AuditEvents."""
    decoded = [(json.loads(bytes(payload)), bytes(payload), bytes(leaf)) for payload, leaf in rows]
    events = [event for event, _, _ in decoded]
    names = event_display_names(session, events)
    patients = _patients(session, (str(e["encounter_id"]) for e in events if e.get("encounter_id")))
    return [
        audit_event(
            event, payload=payload, leaf_hash=leaf, names=names, patients=patients, server_url=base_url
        )
        for event, payload, leaf in decoded
    ]


def _enterers(session: Session, attestations: Sequence[Attestation]) -> dict[str, list[Enterer]]:
    """By attestation id: who entered, changed or voided the codes it covers (the allowed code events on
    its encounter up to its own seq), and for whom, in the order they first did."""
    encounters = sorted({a.encounter_id for a in attestations if a.ledger_seq is not None})
    if not encounters:
        return {}
    rows = session.execute(
        select(LEDGER.c.encounter_id, LEDGER.c.seq, LEDGER.c.payload)
        .where(
            in_log(),
            LEDGER.c.encounter_id.in_(encounters),
            LEDGER.c.type.in_(CODE_EVENTS),
            LEDGER.c.outcome == ALLOWED,
        )
        .order_by(LEDGER.c.seq)
    ).all()
    events = [(str(eid), int(seq), json.loads(bytes(payload))) for eid, seq, payload in rows]
    names = event_display_names(session, [e for _, _, e in events])
    result: dict[str, list[Enterer]] = {}
    for attestation in attestations:
        found: dict[tuple[str, str | None], Enterer] = {}
        for eid, seq, event in events:
            if eid != attestation.encounter_id or seq > (attestation.ledger_seq or 0):
                continue
            actor, on_behalf = event.get("actor") or {}, event.get("on_behalf_of") or {}
            if not actor.get("id"):
                continue
            key = (str(actor["id"]), on_behalf.get("user_id"))
            found.setdefault(
                key,
                Enterer(
                    user_id=key[0],
                    role=actor.get("role"),
                    name=names.get(key[0]) or actor.get("username"),
                    on_behalf_id=key[1],
                    on_behalf_name=names.get(key[1] or ""),
                ),
            )
        result[attestation.id] = list(found.values())
    return result


def _provenances(session: Session, attestations: Sequence[Attestation]) -> list[dict[str, Any]]:
    enterers = _enterers(session, attestations)
    return [
        provenance({**attestation_view(a), "ledger_seq": a.ledger_seq}, enterers.get(a.id, []))
        for a in attestations
    ]


def _links(base: str, search: Search, total: int) -> list[tuple[str, str]]:
    page = search.page
    links = [("self", f"{base}?{search.query_string()}"), ("first", f"{base}?{search.query_string(0)}")]
    if page.offset > 0 and page.count > 0:
        links.append(("previous", f"{base}?{search.query_string(max(page.offset - page.count, 0))}"))
    if page.count > 0 and page.offset + page.count < total:
        links.append(("next", f"{base}?{search.query_string(page.offset + page.count)}"))
    return links


def _record_search(
    session: Session,
    user: CurrentUser,
    grant: Grant,
    scope: ReadScope,
    resource_type: str,
    search: Search,
    total: int,
    returned: int,
) -> None:
    ledger.append_one(
        session,
        grant.event(
            type="fhir.search",
            subject_type="fhir",
            subject_id=resource_type,
            detail={
                "resource": resource_type,
                "query": {
                    **search.applied,
                    "_count": [str(search.page.count)],
                    "_offset": [str(search.page.offset)],
                },
                "total": total,
                "returned": returned,
                **scope.evidence(),
            },
        ),
    )


def _read_event(
    user: CurrentUser, grant: Grant, scope: ReadScope, resource_type: str, resource_id: str | None
) -> EventDraft:
    """A read by id, as it was asked (`resource_id` None: the path held no valid FHIR id)."""
    return grant.event(
        type="fhir.read",
        subject_type="fhir",
        subject_id=resource_type,
        detail={"resource": resource_type, "id": resource_id, **scope.evidence()},
    )


def _not_found(draft: EventDraft, resource_type: str) -> NotFound:
    """404 for an id that does not exist or lies outside the reader's scope; recorded as failed."""
    draft.outcome = FAILED
    draft.reason = "no such resource in the reader's scope"
    return ledger.refuse_with(
        NotFound(f"{resource_type}: no such resource", field="id", resource=resource_type), draft
    )


# --- searches ---------------------------------------------------------------------------------------


def search_audit_events(
    session: Session, *, user: CurrentUser, params: Params, base_url: str
) -> dict[str, Any]:
    """`GET /fhir/AuditEvent`: date (ge/gt/le/lt/eq), entity=Encounter/<id>, subtype, _count, _offset."""
    search = Search(page=parse_page(params))
    dates = parse_dates(values(params, "date"))
    if dates.clauses:
        search.applied["date"] = values(params, "date")
    entity = single(params, "entity")
    encounter_id = parse_encounter_reference(entity, "entity") if entity is not None else None
    if encounter_id is not None:
        search.applied["entity"] = [f"Encounter/{encounter_id}"]
    subtypes = parse_subtypes(values(params, "subtype"))
    if subtypes:
        search.applied["subtype"] = [",".join(subtypes)]

    # `date` is when the event was recorded (AuditEvent.recorded): it narrows the events, while the
    # reader's scope (an engagement's dates of service and providers) always applies through the scope.
    grant, scope = _authorize_read(session, user, encounter_id)
    conditions: list[ColumnElement[bool]] = []
    for op, moment in dates.clauses:
        conditions.append(_COMPARE[op](LEDGER.c.ts, moment))
    if subtypes:
        conditions.append(LEDGER.c.type.in_(subtypes))
    counted = select(func.count()).select_from(LEDGER).where(event_clause(scope), *conditions)
    total = int(session.execute(counted).scalar_one())
    rows = (
        session.execute(
            select(LEDGER.c.payload, LEDGER.c.leaf_hash)
            .where(event_page_clause(session, scope), *conditions)
            .order_by(LEDGER.c.seq)
            .offset(search.page.offset)
            .limit(search.page.count)
        ).all()
        if search.page.count
        else []
    )
    base = f"{base_url}/AuditEvent"
    entries = [(f"{base}/{r['id']}", r) for r in _audit_events(session, rows, base_url)]
    result = mapping.bundle(total=total, entries=entries, links=_links(base, search, total))
    _record_search(session, user, grant, scope, "AuditEvent", search, total, len(entries))
    return result


def search_provenance(
    session: Session, *, user: CurrentUser, params: Params, base_url: str
) -> dict[str, Any]:
    """`GET /fhir/Provenance?target=Encounter/<id>`: every attestation, valid and superseded, oldest first.

    An auditor's scope is the encounter's date of service and rendering provider, as engagements are.
    """
    search = Search(page=parse_page(params))
    target = single(params, "target")
    if target is None:
        raise InvalidInput("target", "target: required (target=Encounter/<id>)")
    encounter_id = parse_encounter_reference(target, "target")
    search.applied["target"] = [f"Encounter/{encounter_id}"]
    grant, scope = _authorize_read(session, user, encounter_id)
    where = attestation_clause(scope)
    total = int(session.execute(select(func.count()).select_from(Attestation).where(where)).scalar_one())
    attestations: Sequence[Attestation] = []
    if search.page.count:
        attestations = (
            session.execute(
                select(Attestation)
                .where(where)
                .order_by(col(Attestation.signed_at), col(Attestation.id))
                .offset(search.page.offset)
                .limit(search.page.count)
            )
            .scalars()
            .all()
        )
    base = f"{base_url}/Provenance"
    entries = [(f"{base}/{p['id']}", p) for p in _provenances(session, attestations)]
    result = mapping.bundle(total=total, entries=entries, links=_links(base, search, total))
    _record_search(session, user, grant, scope, "Provenance", search, total, len(entries))
    return result


# --- reads by id ------------------------------------------------------------------------------------


def read_audit_event(session: Session, *, user: CurrentUser, event_id: str, base_url: str) -> dict[str, Any]:
    """`GET /fhir/AuditEvent/<seq>`, inside the scope `search_audit_events` has without `entity`."""
    grant, scope = _authorize_read(session, user, None)
    valid = is_ascii_digits(event_id) and len(event_id) <= 19 and int(event_id) <= MAX_SEQ
    draft = _read_event(user, grant, scope, "AuditEvent", event_id if valid else None)
    row = (
        session.execute(
            select(LEDGER.c.payload, LEDGER.c.leaf_hash).where(
                LEDGER.c.seq == int(event_id), event_clause(scope)
            )
        ).first()
        if valid
        else None
    )
    if row is None:
        raise _not_found(draft, "AuditEvent")
    (resource,) = _audit_events(session, [row], base_url)
    ledger.append_one(session, draft)
    return resource


def read_provenance(
    session: Session, *, user: CurrentUser, provenance_id: str, base_url: str
) -> dict[str, Any]:
    """`GET /fhir/Provenance/<attestation id>`, inside the scope the search has (the reader's areas)."""
    grant, scope = _authorize_read(session, user, None)
    valid = FHIR_ID.match(provenance_id) is not None
    draft = _read_event(user, grant, scope, "Provenance", provenance_id if valid else None)
    attestation = (
        session.execute(
            select(Attestation).where(col(Attestation.id) == provenance_id, attestation_clause(scope))
        ).scalar_one_or_none()
        if valid
        else None
    )
    if attestation is None:
        raise _not_found(draft, "Provenance")
    (resource,) = _provenances(session, [attestation])
    ledger.append_one(session, draft)
    return resource
