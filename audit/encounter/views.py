"""How encounters and code lines appear in the ledger's before/after and in API answers."""

from __future__ import annotations

from typing import Any

from audit.models import CodeLine, Encounter


def line_state(line: CodeLine) -> dict[str, Any]:
    """The fields of a line version, as the ledger records them before and after a change."""
    return {
        "id": line.id,
        "system": line.system,
        "code": line.code,
        "modifiers": list(line.modifiers),
        "units": line.units,
        "diagnosis_pointers": list(line.diagnosis_pointers),
        "version": line.version,
        "status": line.status,
        "void_reason": line.void_reason,
    }


def encounter_state(encounter: Encounter) -> dict[str, Any]:
    return {
        "id": encounter.id,
        "source": encounter.source,
        "external_id": encounter.external_id,
        "patient_ref": encounter.patient_ref,
        "date_of_service": encounter.date_of_service.isoformat(),
        "rendering_provider_id": encounter.rendering_provider_id,
        "supervising_provider_ids": list(encounter.supervising_provider_ids),
        "status": encounter.status,
    }
