"""The code-set digest an attestation signs (pure): binds the signature to the exact record."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from typing import Any

from audit.ledger.chain import canonical_json


def code_set_digest(
    *, encounter_id: str, rendering_provider_id: str, date_of_service: date, lines: Iterable[dict[str, Any]]
) -> str:
    """SHA-256 hex over the canonical JSON of the encounter and its active lines sorted by line id."""
    body = {
        "encounter_id": encounter_id,
        "rendering_provider_id": rendering_provider_id,
        "date_of_service": date_of_service.isoformat(),
        "lines": sorted(
            (
                {
                    "id": line["id"],
                    "system": line["system"],
                    "code": line["code"],
                    "modifiers": list(line["modifiers"]),
                    "units": line["units"],
                    "diagnosis_pointers": list(line["diagnosis_pointers"]),
                    "version": line["version"],
                }
                for line in lines
            ),
            key=lambda line: str(line["id"]),
        ),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()
