"""Scores of a coding audit, by the published method in policies/audit_scoring.yaml (its `version`
is recorded on every score). `score_rows` is pure: the same findings always give the same scores, and
an outside party can recompute them from the bundle's findings with that file."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import starmap
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sqlalchemy import select
from sqlmodel import Session

from audit.coding_audit.frame import is_em
from audit.coding_audit.models import AuditFinding
from audit.config import get_settings

METHOD_FILE = "audit_scoring.yaml"
REVERSED = "reversed"


@lru_cache(maxsize=4)
def _method(path: str) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data.get("version"), f"{path}: no version"
    return data


def method_path() -> Path:
    return Path(get_settings().resolved_policies_dir) / METHOD_FILE


def method_version() -> str:
    return str(_method(str(method_path()))["version"])


class Row(NamedTuple):
    """What scoring needs of one current finding."""

    encounter_id: str
    provider_id: str
    line_author_id: str | None
    verdict: str
    status: str
    system: str | None
    code: str | None
    category: str | None
    revised_code: str | None = None


@dataclass
class Tally:
    correct_lines: int = 0
    error_lines: int = 0
    em_correct: int = 0
    em_error: int = 0
    encounters: dict[str, bool] = field(default_factory=dict)  # encounter id -> correct so far
    categories: Counter[str] = field(default_factory=Counter)

    def add(self, row: Row, outcome: str | None, em_kept: bool | None) -> None:
        """Count one finding: its outcome, and whether an E/M line kept its level (None: not E/M)."""
        if outcome is None:  # an added line reversed: not counted
            self.encounters.setdefault(row.encounter_id, True)
            return
        error = outcome == "error"
        self.correct_lines += not error
        self.error_lines += error
        if em_kept is not None:
            self.em_correct += em_kept
            self.em_error += not em_kept
        self.encounters[row.encounter_id] = self.encounters.get(row.encounter_id, True) and not error
        if error and row.category:
            self.categories[row.category] += 1

    def figures(self) -> dict[str, Any]:
        correct_encounters = sum(self.encounters.values())
        reviewed = len(self.encounters)
        encounter_accuracy = _ratio(correct_encounters, reviewed)
        return {
            "lines_reviewed": self.correct_lines + self.error_lines,
            "correct_lines": self.correct_lines,
            "error_lines": self.error_lines,
            "line_accuracy": _ratio(self.correct_lines, self.correct_lines + self.error_lines),
            "encounters_reviewed": reviewed,
            "correct_encounters": correct_encounters,
            "encounter_accuracy": encounter_accuracy,
            "encounter_error_rate": None if encounter_accuracy is None else round(1 - encounter_accuracy, 4),
            "em_lines": self.em_correct + self.em_error,
            "em_correct": self.em_correct,
            "em_agreement": _ratio(self.em_correct, self.em_correct + self.em_error),
            "errors_by_category": dict(sorted(self.categories.items())),
        }


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def outcome(row: Row) -> str | None:
    """`correct`, `error`, or None (not counted), per the method's `line_outcome`."""
    stands = row.status != REVERSED
    if row.verdict == "agree":
        return "correct"
    if row.verdict == "disagree":
        return "error" if stands else "correct"
    return "error" if stands else None  # added


def em_level_kept(row: Row, result: str | None) -> bool:
    """An E/M line keeps its level when it is correct, or when only its modifiers or units changed."""
    return result == "correct" or (row.verdict == "disagree" and row.revised_code == row.code)


def score_rows(rows: Iterable[Row], version: str) -> dict[str, Any]:
    audit = Tally()
    providers: dict[str, Tally] = defaultdict(Tally)
    coders: dict[str, Tally] = defaultdict(Tally)
    for row in rows:
        result = outcome(row)
        em_kept = em_level_kept(row, result) if is_em(row.system, row.code) else None
        audit.add(row, result, em_kept)
        providers[row.provider_id].add(row, result, em_kept)
        if row.line_author_id is not None and row.verdict != "added":
            coders[row.line_author_id].add(row, result, em_kept)
    whole = audit.figures()
    return {
        "method": {"version": version, "file": f"policies/{METHOD_FILE}"},
        "accuracy": {"line": whole["line_accuracy"], "encounter": whole["encounter_accuracy"]},
        "em_agreement": whole["em_agreement"],
        "audit": whole,
        "providers": [{"provider_id": k, **providers[k].figures()} for k in sorted(providers)],
        "coders": [{"coder_id": k, **coders[k].figures()} for k in sorted(coders)],
    }


def current_rows(session: Session, audit_id: str) -> list[Row]:
    f = AuditFinding.__table__  # type: ignore[attr-defined]
    stmt = select(
        f.c.encounter_id,
        f.c.provider_id,
        f.c.line_author_id,
        f.c.verdict,
        f.c.status,
        f.c.line_system,
        f.c.line_code,
        f.c.category,
        f.c.revised_code,
    ).where(f.c.audit_id == audit_id, f.c.replaced_by.is_(None))
    return list(starmap(Row, session.execute(stmt).all()))  # fetchall: one driver call, not one a row


def score_audit(session: Session, audit_id: str) -> dict[str, Any]:
    return score_rows(current_rows(session, audit_id), method_version())
