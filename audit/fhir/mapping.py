"""Pure mapping from our records to FHIR R4 resources (plain dicts; no session, no clock).

Validated in the tests with `fhir.resources.R4B` (FHIR 4.3.0): fhir.resources 8 ships R5 at the top
level, R4B and STU3 as subpackages, and R4B keeps R4's AuditEvent, Provenance and Bundle shapes.

Choices a FHIR consumer should know (see also the module docstring of `audit.fhir.routes`):

- AuditEvent.type is the standard code that fits (DICOM 110114 user authentication, 110112 query,
  110137 user security attributes changed, 110100 application activity, otherwise `rest` from
  audit-event-type); AuditEvent.subtype is always our event type in `EVENT_TYPE_SYSTEM`.
- outcome: `0` for allowed, `4` (minor failure) for denied and failed; outcomeDesc is the reason.
- The acting user is the requestor agent. When the ledger records `on_behalf_of` (a coder working under a
  provider's delegation, or an integration submitting for a named user), a second, non-requesting agent
  names that user with type v3-ParticipationType `RESP` (responsible party: "accountable for the action
  through the power to delegate"), and its `policy` holds `urn:uuid:<delegation id>`. R4 AuditEvent has no
  agent.onBehalfOf (R5 added it), so the relation is carried by the agent type.
- Each event carries a `ledger-event` entity whose detail holds the log id, seq, leaf hash and the exact
  payload bytes (base64), so a consumer can recompute SHA-256(0x00 || payload) and find it in the chain.
- Provenance: one per attestation. target = `Encounter/<id>/_history/<ledger seq of the attest event>`:
  the encounter's version id is the ledger seq of the event that produced that state, so the signature is
  bound to the attested state, not to whatever the encounter looks like now. The signer agent has type
  provenance-participant-type `legal` (legal authenticator, a child of `verifier` in R4), activity is
  v3-ParticipationType `LA` plus our own `attest` code, reason is v3-ActReason `HPAYMT`.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

PRODUCT = "https://coding-audit.example/fhir"
EVENT_TYPE_SYSTEM = f"{PRODUCT}/CodeSystem/event-type"
ROLE_SYSTEM = f"{PRODUCT}/CodeSystem/role"
ENTITY_TYPE_SYSTEM = f"{PRODUCT}/CodeSystem/entity-type"
ACTIVITY_SYSTEM = f"{PRODUCT}/CodeSystem/provenance-activity"
ATTESTATION_STATUS_SYSTEM = f"{PRODUCT}/CodeSystem/attestation-status"
USER_ID_SYSTEM = f"{PRODUCT}/sid/user"
LEDGER_SID = f"{PRODUCT}/sid/ledger"

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
SOURCE_TYPE = "http://terminology.hl7.org/CodeSystem/security-source-type"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
RESOURCE_TYPES = "http://hl7.org/fhir/resource-types"
PROVENANCE_PARTICIPANT = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
SIGNATURE_TYPE_SYSTEM = "urn:iso-astm:E1762-95:2013"
AUTHOR_SIGNATURE = "1.2.840.10065.1.12.1.1"

OUTCOME = {"allowed": "0", "denied": "4", "failed": "4"}

_REST = {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
_AUTH = {"system": DICOM, "code": "110114", "display": "User Authentication"}
_QUERY = {"system": DICOM, "code": "110112", "display": "Query"}
_SECURITY = {"system": DICOM, "code": "110137", "display": "User Security Attributes Changed"}
_APPLICATION = {"system": DICOM, "code": "110100", "display": "Application Activity"}

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
}


def event_type_coding(event_type: str) -> dict[str, str]:
    """The standard AuditEvent.type that fits our event type."""
    area = event_type.split(".", 1)[0]
    if area == "auth":
        return dict(_AUTH)
    if area in ("fhir", "report", "export") or event_type == "audit.read_events":
        return dict(_QUERY)
    if area in ("delegation", "user", "engagement"):
        return dict(_SECURITY)
    if area == "audit":
        return dict(_APPLICATION)
    return dict(_REST)


def event_action(event_type: str) -> str:
    if event_type in _ACTIONS:
        return _ACTIONS[event_type]
    if event_type.endswith((".read", ".view")):
        return "R"
    return "E"


def instant(moment: datetime) -> str:
    """FHIR instant in UTC with a `Z`."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _roles(role: str | None) -> list[dict[str, Any]]:
    return [
        {"coding": [{"system": ROLE_SYSTEM, "code": r.strip()}]} for r in (role or "").split(",") if r.strip()
    ]


def _user_ref(user_id: str | None, display: str | None) -> dict[str, Any]:
    ref: dict[str, Any] = {}
    if user_id:
        ref["identifier"] = {"system": USER_ID_SYSTEM, "value": user_id}
    ref["display"] = display or (user_id or "anonymous")
    return ref


def _actor_agent(event: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    actor = event.get("actor") or {}
    user_id, username = actor.get("id"), actor.get("username")
    agent: dict[str, Any] = {"who": _user_ref(user_id, username), "requestor": True}
    roles = _roles(actor.get("role"))
    if roles:
        agent["role"] = roles
    if username:
        agent["altId"] = username
    name = names.get(user_id or "")
    if name:
        agent["name"] = name
    return agent


def _on_behalf_agent(on_behalf: Mapping[str, Any], names: Mapping[str, str]) -> dict[str, Any]:
    user_id = on_behalf.get("user_id")
    agent: dict[str, Any] = {
        "type": {
            "coding": [{"system": PARTICIPATION_TYPE, "code": "RESP", "display": "responsible party"}],
            "text": "on behalf of",
        },
        "who": _user_ref(user_id, names.get(user_id or "")),
        "requestor": False,
    }
    roles = _roles(on_behalf.get("role"))
    if roles:
        agent["role"] = roles
    if on_behalf.get("delegation_id"):
        agent["policy"] = [f"urn:uuid:{on_behalf['delegation_id']}"]
    name = names.get(user_id or "")
    if name:
        agent["name"] = name
    return agent


def _detail(kind: str, value: Any) -> dict[str, Any]:
    return {"type": kind, "valueString": value if isinstance(value, str) else _json(value)}


def _encounter_entity(encounter_id: str) -> dict[str, Any]:
    return {
        "what": {"reference": f"Encounter/{encounter_id}"},
        "type": {"system": RESOURCE_TYPES, "code": "Encounter", "display": "Encounter"},
        "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
    }


def _change_details(event: Mapping[str, Any]) -> list[dict[str, Any]]:
    details = []
    for key in ("reason", "before", "after", "detail", "policy"):
        if event.get(key) is not None:
            details.append(_detail(key, event[key]))
    return details


def audit_event(
    event: Mapping[str, Any],
    *,
    payload: bytes,
    leaf_hash: bytes,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """One ledger event (its decoded payload and the exact stored bytes) as an R4 AuditEvent."""
    names = names or {}
    event_type = str(event["type"])
    resource: dict[str, Any] = {
        "resourceType": "AuditEvent",
        "id": str(event["event_id"]),
        "type": event_type_coding(event_type),
        "subtype": [{"system": EVENT_TYPE_SYSTEM, "code": event_type}],
        "action": event_action(event_type),
        "recorded": event["ts"],
        "outcome": OUTCOME.get(str(event.get("outcome")), "8"),
    }
    if event.get("reason"):
        resource["outcomeDesc"] = str(event["reason"])
    agents = [_actor_agent(event, names)]
    if event.get("on_behalf_of"):
        agents.append(_on_behalf_agent(event["on_behalf_of"], names))
    resource["agent"] = agents
    resource["source"] = {
        "site": str(event["log_id"]),
        "observer": {
            "identifier": {"system": LEDGER_SID, "value": str(event["log_id"])},
            "display": f"coding-audit service, log {event['log_id']}",
        },
        "type": [{"system": SOURCE_TYPE, "code": "4", "display": "Application Server"}],
    }
    resource["entity"] = _entities(event, payload, leaf_hash)
    return resource


def _entities(event: Mapping[str, Any], payload: bytes, leaf_hash: bytes) -> list[dict[str, Any]]:
    entities: list[dict[str, Any]] = []
    subject = event.get("subject") or {}
    subject_type, subject_id = subject.get("type"), subject.get("id")
    encounter_id = event.get("encounter_id")
    changes = _change_details(event)
    if encounter_id:
        entities.append(_encounter_entity(str(encounter_id)))
    if subject_type == "encounter" and subject_id == encounter_id and entities:
        if changes:
            entities[0]["detail"] = changes
    elif subject_type or changes:
        kind = str(subject_type or "event")
        entity: dict[str, Any] = {
            "type": {"system": ENTITY_TYPE_SYSTEM, "code": kind},
            "role": {"system": OBJECT_ROLE, "code": "4", "display": "Domain Resource"},
            "name": kind,
        }
        if subject_id:
            entity["what"] = {
                "identifier": {"system": f"{PRODUCT}/sid/{kind}", "value": str(subject_id)},
                "display": f"{kind} {subject_id}",
            }
        query = (event.get("detail") or {}).get("query")
        if query is not None:
            entity["query"] = _b64(_json(query).encode())
        if changes:
            entity["detail"] = changes
        entities.append(entity)
    entities.append(
        {
            "what": {
                "identifier": {"system": f"{LEDGER_SID}/{event['log_id']}", "value": str(event["seq"])},
                "display": f"ledger {event['log_id']} seq {event['seq']}",
            },
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "role": {"system": OBJECT_ROLE, "code": "13", "display": "Security Resource"},
            "name": "ledger-event",
            "detail": [
                {"type": "log_id", "valueString": str(event["log_id"])},
                {"type": "seq", "valueString": str(event["seq"])},
                {"type": "leaf_hash", "valueString": leaf_hash.hex()},
                {"type": "payload", "valueBase64Binary": _b64(payload)},
            ],
        }
    )
    return entities


def signature_data(attestation: Mapping[str, Any]) -> dict[str, Any]:
    """What the Provenance signature's `data` holds (base64 of its canonical JSON)."""
    return {
        "attestation_id": attestation["id"],
        "encounter_id": attestation["encounter_id"],
        "signer_id": attestation["signer_id"],
        "printed_name": attestation["printed_name"],
        "credential": attestation["credential"],
        "npi": attestation["npi"],
        "signed_at": attestation["signed_at"],
        "meaning": attestation["meaning"],
        "code_set_digest": attestation["code_set_digest"],
        "policy_version": attestation["policy_version"],
        "late": bool(attestation["late"]),
        "status": attestation["status"],
        "ledger_seq": attestation.get("ledger_seq"),
    }


def provenance(attestation: Mapping[str, Any]) -> dict[str, Any]:
    """One attestation (see `audit.attestation.service.attestation_view`, plus `ledger_seq`)."""
    encounter_ref = f"Encounter/{attestation['encounter_id']}"
    seq = attestation.get("ledger_seq")
    signer: dict[str, Any] = {"display": attestation["printed_name"]}
    if attestation.get("npi"):
        signer["identifier"] = {"system": NPI_SYSTEM, "value": attestation["npi"]}
    data = signature_data(attestation)
    status = str(attestation["status"])
    return {
        "resourceType": "Provenance",
        "id": str(attestation["id"]),
        "meta": {"tag": [{"system": ATTESTATION_STATUS_SYSTEM, "code": status}]},
        "target": [
            {
                "reference": f"{encounter_ref}/_history/{seq}" if seq is not None else encounter_ref,
                "display": f"encounter as attested (ledger seq {seq})",
            }
        ],
        "occurredDateTime": attestation["signed_at"],
        "recorded": attestation["signed_at"],
        "reason": [
            {
                "coding": [{"system": ACT_REASON, "code": "HPAYMT", "display": "healthcare payment"}],
                "text": "attestation of the codes billed for the encounter",
            }
        ],
        "activity": {
            "coding": [
                {"system": PARTICIPATION_TYPE, "code": "LA", "display": "legal authenticator"},
                {"system": ACTIVITY_SYSTEM, "code": "attest", "display": "attest final codes"},
            ],
            "text": attestation["meaning"],
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {"system": PROVENANCE_PARTICIPANT, "code": "legal", "display": "Legal Authenticator"}
                    ]
                },
                "role": [{"coding": [{"system": ROLE_SYSTEM, "code": "provider"}]}],
                "who": signer,
            }
        ],
        "signature": [
            {
                "type": [
                    {
                        "system": SIGNATURE_TYPE_SYSTEM,
                        "code": AUTHOR_SIGNATURE,
                        "display": "Author's Signature",
                    }
                ],
                "when": attestation["signed_at"],
                "who": dict(signer),
                "sigFormat": "application/json",
                "data": _b64(_json(data).encode()),
            }
        ],
    }


def bundle(
    *, total: int, entries: list[tuple[str, dict[str, Any]]], links: list[tuple[str, str]]
) -> dict[str, Any]:
    """A searchset Bundle: `entries` are (fullUrl, resource), `links` are (relation, url)."""
    result: dict[str, Any] = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": rel, "url": url} for rel, url in links],
    }
    if entries:  # FHIR JSON never carries empty arrays
        result["entry"] = [
            {"fullUrl": full_url, "resource": resource, "search": {"mode": "match"}}
            for full_url, resource in entries
        ]
    return result
