"""One code line's code-set decision on its date of service: the code and each modifier, combined.

Pure: takes a ``CodeSetIndex``; no session, no clock. The write path, the check endpoint, the
re-check on import and attestation all decide through ``decide_line``, so they cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from audit.codesets.formats import HCPCS
from audit.codesets.releases import (
    FALLBACK,
    INVALID,
    UNCHECKED,
    UNVERIFIED,
    VALID,
    CheckResult,
    CodeSetIndex,
)

# Worst first: a line's status is the worst of its code's and its modifiers'.
_RANK = {INVALID: 0, UNVERIFIED: 1, UNCHECKED: 2, FALLBACK: 3, VALID: 4}
_KINDS = {FALLBACK: "codeset_fallback", UNVERIFIED: "codeset_unverified", UNCHECKED: "codeset_not_loaded"}


@dataclass(frozen=True)
class Part:
    field: str  # "code" or "modifiers[i]"
    system: str  # the system the part was checked in (HCPCS for a Level II modifier)
    result: CheckResult


@dataclass(frozen=True)
class LineDecision:
    date_of_service: date
    parts: tuple[Part, ...]

    @property
    def code(self) -> CheckResult:
        return self.parts[0].result

    @property
    def status(self) -> str:
        return min((p.result.status for p in self.parts), key=_RANK.__getitem__)

    @property
    def ok(self) -> bool:
        return self.status != INVALID

    @property
    def refusal(self) -> Part | None:
        """The first refused part (the code before its modifiers)."""
        return next((p for p in self.parts if p.result.status == INVALID), None)

    @property
    def modifiers(self) -> list[str]:
        return [p.result.normalized or "" for p in self.parts[1:]]

    def findings(self) -> list[dict[str, Any]]:
        """What an accepted line records: one finding per part that is not plainly valid."""
        return [f for p in self.parts if (f := finding(p, self.date_of_service)) is not None]


def decide_line(
    index: CodeSetIndex, *, system: str, code: str, modifiers: Sequence[str], dos: date
) -> LineDecision:
    parts = [Part("code", system, index.check(system, code, dos))]
    for i, modifier in enumerate(modifiers):
        result = index.check_modifier(modifier, dos)
        checked_in = system if result.release_label == "CPT modifiers" else HCPCS
        parts.append(Part(f"modifiers[{i}]", checked_in, result))
    return LineDecision(dos, tuple(parts))


def finding(part: Part, dos: date) -> dict[str, Any] | None:
    """The finding for an accepted part whose existence could not be checked against a release in
    force on ``dos`` (``None`` when it is valid or refused)."""
    result = part.result
    kind = _KINDS.get(result.status)
    if kind is None:
        return None
    out: dict[str, Any] = {
        "kind": kind,
        "severity": "info" if result.status == UNCHECKED else "warning",
        "field": part.field,
        "system": part.system,
        "code": result.normalized,
        "date_of_service": dos.isoformat(),
        "message": result.message,
    }
    if result.release_label is not None:
        out["checked_against"] = result.release_label
    if result.required is not None:
        out["required_release"] = result.required.label
        out["import_command"] = result.required.command
        out["source"] = result.required.source
    return out
