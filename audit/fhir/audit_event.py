"""One ledger event as an R4 AuditEvent following IHE BALP (Basic Audit Log Patterns).

- `type` is the standard code that fits (`rest` for changes to encounters, codes and attestations and
  for FHIR searches; DICOM 110114 authentication, 110112 query for reports and exports, 110137 security
  attributes for delegations, users and engagements, 110100 application activity). `subtype` holds the
  FHIR `restful-interaction` (create, update, delete, read, search) when the event is one, then our
  own event type in `EVENT_TYPE_SYSTEM`.
- Agents, as BALP's slices: the user (`requestor`, type v3-ParticipationType AUT for changes, IRCP for
  reads and searches), the user they acted for when the ledger records `on_behalf_of` (type RESP, the
  delegation in `policy`; R4 has no agent.onBehalfOf), the client and the server (DICOM 110153 Source
  Role ID and 110152 Destination Role ID; swapped for a read, where the data flows to the client, as
  BALP's Read profile has it). The ledger records no client address, so the client agent has no
  `network`; the server's is the FHIR base URL when known.
- Entities: exactly one typed audit-entity-type 2 (System Object), which is what BALP's slices match:
  the query of a search (role 24 Query, the parameters base64 in `query`), otherwise the data the event
  touched (role 4 Domain Resource): the encounter, as `Encounter/<id>/_history/<seq>` when the event
  produced a new state of it (the encounter's version id is the seq of the event that made it, as in
  Provenance.target), or the subject when there is no encounter. A patient entity (type 1, role 1)
  names the encounter's patient by our patient reference. The subject inside an encounter (a code line,
  an attestation) and a search's results carry our own entity type. The change reason, before/after,
  policy and detail are `entity.detail` of the data entity; `outcomeDesc` only says why an attempt was
  denied or failed (outcome 4).
- A `ledger-event` entity (type 4 Other, role 13) holds the log id, seq, event id, leaf hash and the
  exact payload bytes (base64): a consumer can recompute SHA-256(0x00 || payload) and find it in the
  chain. The AuditEvent's id is the ledger seq, so `GET /fhir/AuditEvent/<seq>` reads it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from audit.fhir.mapping import (
    AUDIT_EVENT_TYPE,
    DICOM,
    ENTITY_TYPE,
    ENTITY_TYPE_SYSTEM,
    EVENT_TYPE_SYSTEM,
    LEDGER_SID,
    OBJECT_ROLE,
    PARTICIPATION_TYPE,
    PATIENT_REF_SYSTEM,
    PRODUCT,
    RESTFUL_INTERACTION,
    SOURCE_TYPE,
    b64,
    canonical_json,
    coding,
    concept,
    roles,
    user_ref,
)

OUTCOME = {"allowed": "0", "denied": "4", "failed": "4"}

_REST = coding(AUDIT_EVENT_TYPE, "rest", "RESTful Operation")
_AUTH = coding(DICOM, "110114", "User Authentication")
_QUERY = coding(DICOM, "110112", "Query")
_SECURITY = coding(DICOM, "110137", "User Security Attributes Changed")
_APPLICATION = coding(DICOM, "110100", "Application Activity")
SOURCE_ROLE = concept(DICOM, "110153", "Source Role ID")
DESTINATION_ROLE = concept(DICOM, "110152", "Destination Role ID")
AUTHOR = concept(PARTICIPATION_TYPE, "AUT", "author (originator)")
RECIPIENT = concept(PARTICIPATION_TYPE, "IRCP", "information recipient")
RESPONSIBLE = concept(PARTICIPATION_TYPE, "RESP", "responsible party")
SYSTEM_OBJECT = coding(ENTITY_TYPE, "2", "System Object")
PERSON = coding(ENTITY_TYPE, "1", "Person")
OTHER = coding(ENTITY_TYPE, "4", "Other")
PATIENT_ROLE = coding(OBJECT_ROLE, "1", "Patient")
DOMAIN_RESOURCE = coding(OBJECT_ROLE, "4", "Domain Resource")
QUERY_ROLE = coding(OBJECT_ROLE, "24", "Query")
SECURITY_RESOURCE = coding(OBJECT_ROLE, "13", "Security Resource")

_ACTIONS = {
    "encounter.create": "C",
    "code.add": "C",
    "code.change": "U",
    "code.void": "D",  # a logical delete: the line is voided, never removed
    "encounter.attest": "C",  # creates the attestation
    "attestation.supersede": "U",
    "delegation.grant": "C",
    "delegation.revoke": "U",
    "user.create": "C",
    "encounter.note": "C",
    "encounter.read": "R",
    "codeset.import": "C",  # creates a code-set release
}
_INTERACTIONS = {"C": "create", "U": "update", "D": "delete", "R": "read"}
_CHANGE_KEYS = ("reason", "before", "after", "detail", "policy")


def is_search(event_type: str) -> bool:
    """Reads of many records at once: FHIR searches, reports, exports, event listings."""
    area = event_type.split(".", 1)[0]
    return area in ("report", "export") or event_type in ("fhir.search", "audit.read_events")


def event_type_coding(event_type: str) -> dict[str, str]:
    """The standard AuditEvent.type that fits our event type."""
    area = event_type.split(".", 1)[0]
    if area == "auth":
        return dict(_AUTH)
    if area == "fhir":
        return dict(_REST)
    if is_search(event_type):
        return dict(_QUERY)
    if area in ("delegation", "user", "engagement"):
        return dict(_SECURITY)
    if area == "audit":
        return dict(_APPLICATION)
    return dict(_REST)


def event_action(event_type: str) -> str:
    if is_search(event_type):
        return "E"  # BALP Query: a search is an Execute
    if event_type in _ACTIONS:
        return _ACTIONS[event_type]
    if event_type.endswith((".read", ".view")):
        return "R"
    return "E"


def interaction(event_type: str) -> str | None:
    """The FHIR restful-interaction this event is, if it is one."""
    if is_search(event_type):
        return "search"
    return _INTERACTIONS.get(event_action(event_type))


def audit_event(
    event: Mapping[str, Any],
    *,
    payload: bytes,
    leaf_hash: bytes,
    names: Mapping[str, str] | None = None,
    patients: Mapping[str, str] | None = None,
    server_url: str | None = None,
) -> dict[str, Any]:
    """One ledger event (its decoded payload and the exact stored bytes) as an R4 AuditEvent.

    `names`: display names by user id; `patients`: patient references by encounter id; `server_url`:
    the FHIR base URL, the server agent's network address."""
    event_type = str(event["type"])
    kind = interaction(event_type)
    subtype = [coding(RESTFUL_INTERACTION, kind, kind)] if kind else []
    subtype.append(coding(EVENT_TYPE_SYSTEM, event_type))
    outcome = str(event.get("outcome"))
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event["seq"]),
        "type": event_type_coding(event_type),
        "subtype": subtype,
        "action": event_action(event_type),
        "recorded": event["ts"],
        "outcome": OUTCOME.get(outcome, "8"),
    }
    if outcome != "allowed" and event.get("reason"):
        resource["outcomeDesc"] = str(event["reason"])
    resource["agent"] = _agents(event, kind, names or {}, server_url)
    resource["source"] = {
        "site": str(event["log_id"]),
        "observer": _server_ref(event),
        "type": [coding(SOURCE_TYPE, "4", "Application Server")],
    }
    resource["entity"] = _entities(event, payload, leaf_hash, patients or {})
    return resource


# --- agents -------------------------------------------------------------------------------------------


def _server_ref(event: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "identifier": {"system": LEDGER_SID, "value": str(event["log_id"])},
        "display": f"coding-audit service, log {event['log_id']}",
    }


def _agents(
    event: Mapping[str, Any], kind: str | None, names: Mapping[str, str], server_url: str | None
) -> list[dict[str, Any]]:
    agents = [_user_agent(event, kind, names)]
    if event.get("on_behalf_of"):
        agents.append(_on_behalf_agent(event["on_behalf_of"], names))
    read = kind == "read"  # BALP Read: the data flows from the server (source) to the client
    agents.append(
        {
            "type": DESTINATION_ROLE if read else SOURCE_ROLE,
            "who": {"display": "API client (its address is not recorded)"},
            "requestor": False,
        }
    )
    server: dict[str, Any] = {
        "type": SOURCE_ROLE if read else DESTINATION_ROLE,
        "who": _server_ref(event),
        "requestor": False,
    }
    if server_url:
        server["network"] = {"address": server_url, "type": "5"}  # 5: URI
    agents.append(server)
    return agents


def _user_agent(event: Mapping[str, Any], kind: str | None, names: Mapping[str, str]) -> dict[str, Any]:
    actor = event.get("actor") or {}
    user_id, username = actor.get("id"), actor.get("username")
    agent: dict[str, Any] = {
        "type": RECIPIENT if kind in ("read", "search") else AUTHOR,
        "who": user_ref(user_id, username),
        "requestor": True,
    }
    if actor.get("role"):
        agent["role"] = roles(actor.get("role"))
    if username:
        agent["altId"] = username
    name = names.get(user_id or "")
    if name:
        agent["name"] = name
    return agent


def _on_behalf_agent(on_behalf: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    user_id = on_behalf.get("user_id")
    agent: dict[str, Any] = {
        "type": {**RESPONSIBLE, "text": "on behalf of"},
        "who": user_ref(user_id, names.get(user_id or "")),
        "requestor": False,
    }
    if on_behalf.get("role"):
        agent["role"] = roles(on_behalf.get("role"))
    if on_behalf.get("delegation_id"):
        agent["policy"] = [f"urn:uuid:{on_behalf['delegation_id']}"]
    name = names.get(user_id or "")
    if name:
        agent["name"] = name
    return agent


# --- entities -----------------------------------------------------------------------------------------


def _detail(kind: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "valueString": value if isinstance(value, str) else canonical_json(value)}


def _changes(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    details = []
    for key in _CHANGE_KEYS:
        value = event.get(key)
        if value is not None:
            details.append(_detail(key, value))
    return details


def _encounter_entity(event: Mapping[str, Any], encounter_id: str) -> dict[str, Any]:
    """The encounter as BALP's data entity; versioned when this event produced a new state of it."""
    reference = f"Encounter/{encounter_id}"
    if event.get("outcome") == "allowed" and event_action(str(event["type"])) in ("C", "U", "D"):
        reference += f"/_history/{event['seq']}"
    return {"what": {"reference": reference}, "type": SYSTEM_OBJECT, "role": DOMAIN_RESOURCE}


def _subject_entity(subject_type: str | None, subject_id: Any, *, data: bool) -> dict[str, Any]:
    kind = str(subject_type or "event")
    entity: dict[str, Any] = {
        "type": SYSTEM_OBJECT if data else coding(ENTITY_TYPE_SYSTEM, kind),
        "role": DOMAIN_RESOURCE,
        "name": kind,
    }
    if subject_id:
        entity["what"] = {
            "identifier": {"system": f"{PRODUCT}/sid/{kind}", "value": str(subject_id)},
            "display": f"{kind} {subject_id}",
        }
    return entity


def _query_entity(query: Any) -> dict[str, Any]:
    """BALP's query entity: the parameters as given (base64) and, readable, as a query string."""
    pairs = []
    if isinstance(query, Mapping):
        for name, values in query.items():
            for value in values if isinstance(values, list) else [values]:
                pairs.append((str(name), str(value)))
    entity: dict[str, Any] = {
        "type": SYSTEM_OBJECT,
        "role": QUERY_ROLE,
        "query": b64(canonical_json(query).encode()),
    }
    if pairs:
        entity["description"] = urlencode(pairs)
    return entity


def _patient_entity(patient_ref: str) -> dict[str, Any]:
    return {
        "what": {"type": "Patient", "identifier": {"system": PATIENT_REF_SYSTEM, "value": patient_ref}},
        "type": PERSON,
        "role": PATIENT_ROLE,
    }


def _entities(
    event: Mapping[str, Any], payload: bytes, leaf_hash: bytes, patients: Mapping[str, str]
) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    subject = event.get("subject") or {}
    subject_type, subject_id = subject.get("type"), subject.get("id")
    encounter_id = event.get("encounter_id")
    changes = _changes(event)
    query = (event.get("detail") or {}).get("query")
    search = is_search(str(event["type"])) and query is not None
    if search:
        entities.append(_query_entity(query))
    encounter: dict[str, Any] | None = None
    if encounter_id:
        encounter = _encounter_entity(event, str(encounter_id))
        if search:  # the query is the one System Object of a search
            encounter["type"] = coding(ENTITY_TYPE_SYSTEM, "encounter")
        entities.append(encounter)
        if str(encounter_id) in patients:
            entities.append(_patient_entity(patients[str(encounter_id)]))
    if encounter is not None and subject_type == "encounter" and subject_id == encounter_id:
        if changes:
            encounter["detail"] = changes
    elif subject_type or changes:
        entity = _subject_entity(subject_type, subject_id, data=encounter is None and not search)
        if changes:
            entity["detail"] = changes
        entities.append(entity)
    entities.append(_ledger_entity(event, payload, leaf_hash))
    return entities


def _ledger_entity(event: Mapping[str, Any], payload: bytes, leaf_hash: bytes) -> dict[str, Any]:
    return {
        "what": {
            "identifier": {"system": f"{LEDGER_SID}/{event['log_id']}", "value": str(event["seq"])},
            "display": f"ledger {event['log_id']} seq {event['seq']}",
        },
        "type": OTHER,
        "role": SECURITY_RESOURCE,
        "name": "ledger-event",
        "detail": [
            {"type": "log_id", "valueString": str(event["log_id"])},
            {"type": "seq", "valueString": str(event["seq"])},
            {"type": "event_id", "valueString": str(event["event_id"])},
            {"type": "leaf_hash", "valueString": leaf_hash.hex()},
            {"type": "payload", "valueBase64Binary": b64(payload)},
        ],
    }
