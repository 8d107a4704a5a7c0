"""Two independent FHIR validators for what the service produces.

- `fhir.resources` R4B (Python, pydantic models generated from the FHIR spec): structure, types,
  cardinality, unknown elements.
- The npm `fhir` package (FHIR.js, R4), run with Node from `tests/fhir/node` (`npm ci` there; .ci/run
  does it): structure and the required value-set bindings, unknown elements as errors.

`FhirCheck` validates each resource with the Python models at once and collects it; `node()` then runs
FHIR.js once over everything collected. When Node or the package is missing, `node()` returns False
and `test_npm_validator_is_installed` reports the skip with the reason.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from fhir.resources.R4B.auditevent import AuditEvent
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.provenance import Provenance

NODE_DIR = Path(__file__).parent / "node"
MODELS: dict[str, Any] = {
    "AuditEvent": AuditEvent,
    "Bundle": Bundle,
    "CapabilityStatement": CapabilityStatement,
    "OperationOutcome": OperationOutcome,
    "Provenance": Provenance,
}


def node_missing() -> str | None:
    """Why the npm validator cannot run, or None when it can."""
    if shutil.which("node") is None:
        return "node is not installed (apt-get install nodejs)"
    if not (NODE_DIR / "node_modules" / "fhir").is_dir():
        return f"the npm fhir package is not installed: run `npm ci` in {NODE_DIR}"
    return None


def run_node(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """FHIR.js's verdict on each resource: {"valid": bool, "errors": [...]}."""
    done = subprocess.run(
        ["node", str(NODE_DIR / "validate.js")],
        input=json.dumps(resources),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def python_validate(resource: dict[str, Any]) -> None:
    """The R4B model of the resource's type accepts it (and, for a Bundle, every entry's resource)."""
    MODELS[resource["resourceType"]].model_validate(resource)
    for entry in resource.get("entry", []):
        MODELS[entry["resource"]["resourceType"]].model_validate(entry["resource"])


class FhirCheck:
    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, resource: dict[str, Any]) -> dict[str, Any]:
        python_validate(resource)
        self.seen.append(resource)
        return resource

    def node(self) -> bool:
        """Run FHIR.js over everything seen (it validates a Bundle's resources too)."""
        if node_missing() is not None or not self.seen:
            return False
        batch = list(self.seen)
        failures = [
            (resource.get("resourceType"), resource.get("id"), result["errors"])
            for resource, result in zip(batch, run_node(batch), strict=True)
            if not result["valid"]
        ]
        assert not failures, f"the npm fhir validator refused: {failures[:5]}"
        return True
