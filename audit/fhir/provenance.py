"""One attestation as an R4 Provenance, on US Core Provenance's pattern.

- target: `Encounter/<id>/_history/<seq>`, seq being the ledger seq of the attest event: the encounter's
  version id is the seq of the event that produced that state, so the signature is bound to the attested
  state, not to whatever the encounter looks like now.
- agents: the signer twice, as `author` (US Core's ProvenanceAuthor slice) and as `legal` (legal
  authenticator); each user who entered or changed the attested codes (other than the signer) as an
  `enterer`, `onBehalfOf` the provider the ledger says they worked for.
- signature: type 1.2.840.10065.1.12.1.1 Author's Signature, matching the author agent (`who` is the
  same reference); `data` is the base64 of the canonical JSON of what was signed (`signature_data`).
- activity: v3-DocumentCompletion `LA` (legally authenticated, in R4's provenance-activity-type) plus
  our own `attest`; reason v3-ActReason `HPAYMT` (healthcare payment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from audit.fhir.mapping import (
    ACT_REASON,
    ACTIVITY_SYSTEM,
    ATTESTATION_STATUS_SYSTEM,
    AUTHOR_SIGNATURE,
    DOCUMENT_COMPLETION,
    NPI_SYSTEM,
    PROVENANCE_PARTICIPANT,
    SIGNATURE_TYPE_SYSTEM,
    USER_ID_SYSTEM,
    b64,
    canonical_json,
    coding,
    concept,
    roles,
    user_ref,
)

AUTHOR_AGENT = concept(PROVENANCE_PARTICIPANT, "author", "Author")
LEGAL_AGENT = concept(PROVENANCE_PARTICIPANT, "legal", "Legal Authenticator")
ENTERER_AGENT = concept(PROVENANCE_PARTICIPANT, "enterer", "Enterer")


@dataclass(frozen=True)
class Enterer:
    """A user who entered or changed codes in the attested state, and whom they worked for."""

    user_id: str
    role: str | None
    name: str | None
    on_behalf_id: str | None = None
    on_behalf_name: str | None = None


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


def signer_ref(attestation: Mapping[str, Any]) -> dict[str, Any]:
    """The signer by NPI (their user id when they have none), with the printed name."""
    ref: dict[str, Any] = {"display": attestation["printed_name"]}
    if attestation.get("npi"):
        ref["identifier"] = {"system": NPI_SYSTEM, "value": attestation["npi"]}
    else:
        ref["identifier"] = {"system": USER_ID_SYSTEM, "value": attestation["signer_id"]}
    return ref


def _enterer_agent(enterer: Enterer, attestation: Mapping[str, Any]) -> dict[str, Any]:
    agent: dict[str, Any] = {"type": ENTERER_AGENT}
    if enterer.role:
        agent["role"] = roles(enterer.role)
    agent["who"] = user_ref(enterer.user_id, enterer.name)
    if enterer.on_behalf_id and enterer.on_behalf_id != enterer.user_id:
        if enterer.on_behalf_id == attestation["signer_id"]:
            agent["onBehalfOf"] = signer_ref(attestation)
        else:
            agent["onBehalfOf"] = user_ref(enterer.on_behalf_id, enterer.on_behalf_name)
    return agent


def provenance(attestation: Mapping[str, Any], enterers: Sequence[Enterer] = ()) -> dict[str, Any]:
    """One attestation (`audit.attestation.service.attestation_view` plus `ledger_seq`)."""
    encounter_ref = f"Encounter/{attestation['encounter_id']}"
    seq = attestation.get("ledger_seq")
    signer = signer_ref(attestation)
    provider_role = roles("provider")
    agents: list[dict[str, Any]] = [
        {"type": AUTHOR_AGENT, "role": provider_role, "who": dict(signer)},
        {"type": LEGAL_AGENT, "role": provider_role, "who": dict(signer)},
    ]
    agents += [_enterer_agent(e, attestation) for e in enterers if e.user_id != attestation["signer_id"]]
    return {
        "resourceType": "Provenance",
        "id": str(attestation["id"]),
        "meta": {"tag": [coding(ATTESTATION_STATUS_SYSTEM, str(attestation["status"]))]},
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
                **concept(ACT_REASON, "HPAYMT", "healthcare payment"),
                "text": "attestation of the codes billed for the encounter",
            }
        ],
        "activity": {
            "coding": [
                coding(DOCUMENT_COMPLETION, "LA", "legally authenticated"),
                coding(ACTIVITY_SYSTEM, "attest", "attest final codes"),
            ],
            "text": attestation["meaning"],
        },
        "agent": agents,
        "signature": [
            {
                "type": [coding(SIGNATURE_TYPE_SYSTEM, AUTHOR_SIGNATURE, "Author's Signature")],
                "when": attestation["signed_at"],
                "who": dict(signer),
                "sigFormat": "application/json",
                "data": b64(canonical_json(signature_data(attestation)).encode()),
            }
        ],
    }
