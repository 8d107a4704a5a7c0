"""Re-check on import: the active lines a new release may judge, decided again with it.

Those are the lines on encounters from the release's first day on: in its period, and after it,
where it is the latest earlier release that judges dates no release covers (for an ICD-10-CM April
update, from the start of its fiscal year). Only a changed decision is recorded.

A line whose decision moves to ``invalid``, or away from ``unverified``/``unchecked`` (the release
now confirms or refutes it), gets one ``codeset.recheck`` event: the evidence behind the
``codes-invalid-for-date`` report. The line itself does not change (nothing is ever rewritten);
whoever is responsible changes or voids it, as for any other finding.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Table, and_, select
from sqlmodel import Session

from audit.codesets.decision import LineDecision, decide_line
from audit.codesets.formats import HCPCS, ICD10CM
from audit.codesets.periods import fiscal_year_of, icd10cm_fiscal_year
from audit.codesets.releases import INVALID, UNCHECKED, UNVERIFIED, CodeSetIndex, Release
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import CodeLine, Encounter
from audit.policy.guard import Grant

LINE: Table = CodeLine.__table__  # type: ignore[attr-defined]
ENC: Table = Encounter.__table__  # type: ignore[attr-defined]
BATCH = 5000
UNSETTLED = (UNVERIFIED, UNCHECKED, INVALID)

Progress = Callable[[int], None]  # lines checked so far


@dataclass
class RecheckSummary:
    checked: int = 0
    invalid: int = 0
    verified: int = 0
    events: int = 0
    by_status: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "lines_checked": self.checked,
            "now_invalid": self.invalid,
            "no_longer_unverified": self.verified,
            "events": self.events,
        }


def changed(before: LineDecision, after: LineDecision) -> bool:
    """Worth an event: newly invalid, or a decision that was unsettled and is no longer the same."""
    old, new = before.status, after.status
    return old != new and (new == INVALID or old in UNSETTLED)


def first_affected_day(release: Release) -> date:
    if release.system == ICD10CM:
        return min(release.effective_from, icd10cm_fiscal_year(fiscal_year_of(release.effective_from))[0])
    return release.effective_from


def _lines(session: Session, release: Release) -> Iterator[Any]:
    """Active lines on encounters the release may judge, in id order, in pages. A HCPCS release
    also judges the Level II modifiers on every other system's lines."""
    where = [LINE.c.status == "active", ENC.c.date_of_service >= first_affected_day(release)]
    if release.system != HCPCS:
        where.append(LINE.c.system == release.system)
    columns = (
        LINE.c.id, LINE.c.encounter_id, LINE.c.system, LINE.c.code, LINE.c.modifiers, LINE.c.version,
        ENC.c.date_of_service, ENC.c.rendering_provider_id,
    )  # fmt: skip
    last = ""
    while True:
        stmt = (
            select(*columns)
            .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
            .where(and_(*where, LINE.c.id > last))
            .order_by(LINE.c.id)
            .limit(BATCH)
        )
        rows = session.execute(stmt).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id


def recheck_lines(
    session: Session,
    *,
    before: CodeSetIndex,
    after: CodeSetIndex,
    release: Release,
    grant: Grant,
    import_seq: int,
    progress: Progress | None = None,
) -> RecheckSummary:
    """Decide each affected line with and without ``release``; append an event per changed line."""
    summary = RecheckSummary()
    drafts: list[EventDraft] = []
    for row in _lines(session, release):
        if release.system == HCPCS and row.system != HCPCS and not row.modifiers:
            continue
        summary.checked += 1
        args: dict[str, Any] = {
            "system": row.system, "code": row.code, "modifiers": list(row.modifiers or ()),
            "dos": row.date_of_service,
        }  # fmt: skip
        old, new = decide_line(before, **args), decide_line(after, **args)
        summary.by_status[new.status] = summary.by_status.get(new.status, 0) + 1
        if changed(old, new):
            summary.invalid += new.status == INVALID
            summary.verified += new.status != INVALID
            drafts.append(_event(row, old, new, release, grant, import_seq))
        if len(drafts) >= BATCH:
            summary.events += len(ledger.append(session, drafts))
            drafts = []
        if progress is not None and summary.checked % BATCH == 0:
            progress(summary.checked)
    summary.events += len(ledger.append(session, drafts))
    if progress is not None:
        progress(summary.checked)
    return summary


def _event(
    row: Any,
    old: LineDecision,
    new: LineDecision,
    release: Release,
    grant: Grant,
    import_seq: int,
) -> EventDraft:
    """The `codeset.recheck` event of one line, under the import's grant (actor and policy)."""
    part = new.refusal or new.parts[0]
    dos: date = row.date_of_service
    if new.status == INVALID:
        reason = f"{release.system} release {release.label} imported: {part.result.message}"
    else:
        reason = f"{release.system} release {release.label} imported: the line is now {new.status}"
    return grant.event(
        type="codeset.recheck",
        subject_type="code_line",
        subject_id=row.id,
        encounter_id=row.encounter_id,
        provider_id=row.rendering_provider_id,
        reason=reason,
        detail={
            "line_version": row.version,
            "system": row.system,
            "code": row.code,
            "modifiers": list(row.modifiers or ()),
            "date_of_service": dos.isoformat(),
            "status": new.status,
            "previous_status": old.status,
            "field": part.field,
            "message": part.result.message,
            "release": {"system": release.system, "label": release.label, "period": release.period},
            "import_seq": import_seq,
        },
    )
