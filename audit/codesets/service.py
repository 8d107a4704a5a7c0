"""Code-set services: import a release (authorised, recorded, and re-checked), check a code.

Services take a session and never commit: the caller's unit of work does. The import, its ledger
event and the re-check events of the lines it affects commit together or not at all; a refused or
failed import leaves its own event (see ``audit.uow``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from audit.codesets.formats import CodeFormatError, modifiers_allowed, normalize_system
from audit.codesets.models import CodeSetRelease
from audit.codesets.parsers import CodeRecord, CodeSetError
from audit.codesets.periods import MUE, NCCI_PTP
from audit.codesets.recheck import RecheckSummary, recheck_lines
from audit.codesets.releases import UNVERIFIED, Release, release_from_records
from audit.codesets.store import (
    IMPORT_SYSTEMS,
    edit_tables_for,
    list_releases,
    load_index,
    read_file,
    records_for_release,
    store_release,
    system_name,
)
from audit.codesets.validation import code_index, decide, mark_blocking
from audit.errors import InvalidInput
from audit.ledger import service as ledger
from audit.ledger.events import FAILED, EventDraft
from audit.policy.engine import SystemRes
from audit.policy.guard import Grant, Target, authorize
from audit.policy.runtime import get_compliance
from audit.principal import CurrentUser

__all__ = [
    "IMPORT_SYSTEMS",
    "ImportResult",
    "check_code",
    "edit_tables_for",
    "import_release",
    "list_releases",
    "load_index",
    "records_for_release",
]

Progress = Callable[[str, int, int | None], None]  # (phase, done, total)


@dataclass(frozen=True)
class ImportResult:
    release: CodeSetRelease
    counts: dict[str, int]
    recheck: RecheckSummary
    seq: int


def _counts(system: str, records: Sequence[Any]) -> dict[str, int]:
    if system in (NCCI_PTP, MUE):
        return {"records": len(records)}
    codes = [r for r in records if isinstance(r, CodeRecord) and not r.is_modifier]
    return {
        "records": len(records),
        "codes": len(codes),
        "headers": sum(1 for r in codes if not r.billable),
        "terminated": sum(1 for r in codes if r.terminated is not None),
        "modifiers": len(records) - len(codes),
    }


def import_release(
    session: Session,
    *,
    user: CurrentUser,
    system: str,
    path: str | Path,
    label: str | None = None,
    effective_from: date | None = None,
    effective_until: date | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ImportResult:
    """Authorise, store and record a release, then re-check the active lines it speaks for.

    Refusals: 403 by policy (``codeset.import``), or 422 naming the field (``system``, ``file``,
    ``effective_from``, ``effective_until``) with a ``failed`` event saying which file was refused.
    """
    p = Path(path)
    target = Target("code_set_release", None)
    grant = authorize(user, "codeset.import", target, SystemRes())
    data: bytes | None = None
    try:
        sys_name = system_name(system)
        # The index without the new release, taken before it is stored (the cache keys on the table).
        before = code_index(session) if sys_name not in (NCCI_PTP, MUE) else None
        data = read_file(p)
        stored, records = store_release(
            session,
            system=sys_name,
            path=p,
            data=data,
            label=label,
            effective_from=effective_from,
            effective_until=effective_until,
            progress=(lambda done, total: progress("store", done, total)) if progress else None,
            now=now,
        )
    except CodeSetError as exc:
        error = InvalidInput(exc.field, exc.message)
        detail = {"file": p.name[:255], "field": exc.field, "system": system[:32]}
        if data is not None:
            detail["sha256"] = hashlib.sha256(data).hexdigest()
        draft = grant.event(outcome=FAILED, reason=exc.message[:500], detail=detail)
        raise ledger.refuse_with(error, draft) from exc
    counts = _counts(sys_name, records)
    seq = ledger.append_now(session, _import_event(grant, stored, counts), now=now)
    summary = RecheckSummary()
    if before is not None:
        release = release_from_records(
            stored.system,
            stored.label,
            stored.effective_from,
            stored.effective_until,
            records_for_release(records),
        )
        summary = recheck_lines(
            session,
            before=before,
            after=before.with_release(release),
            release=release,
            grant=grant,
            import_seq=seq,
            progress=(lambda done: progress("recheck", done, None)) if progress else None,
        )
    return ImportResult(stored, counts, summary, seq)


def _import_event(grant: Grant, stored: CodeSetRelease, counts: dict[str, int]) -> EventDraft:
    return grant.event(
        subject_id=str(stored.id),
        after={
            "id": stored.id,
            "system": stored.system,
            "label": stored.label,
            "effective_from": stored.effective_from.isoformat(),
            "effective_until": stored.effective_until.isoformat() if stored.effective_until else None,
        },
        detail={"file": stored.source_file, "sha256": stored.sha256, "counts": counts},
    )


def check_code(
    session: Session, *, system: str, code: str, modifiers: Sequence[str], dos: date
) -> dict[str, Any]:
    """The decision a write of this line would get, without writing or recording anything: it
    reveals only public code-set data (which codes exist in which CMS release)."""
    try:
        canonical = normalize_system(system)
        modifiers_allowed(canonical, list(modifiers))
    except CodeFormatError as exc:
        raise InvalidInput(exc.field, exc.message) from exc
    if len(modifiers) > 4:
        raise InvalidInput("modifiers", f"at most 4 modifiers are allowed on a line, got {len(modifiers)}")
    decision = decide(session, system=canonical, code=code, modifiers=modifiers, dos=dos)
    mode = get_compliance().codesets.unverified
    refused = decision.refusal
    part = refused or decision.parts[0]
    return {
        "system": canonical,
        "code": decision.code.normalized or code,
        "modifiers": [p.result.normalized or "" for p in decision.parts[1:]],
        "date_of_service": dos,
        "decision": "refused" if refused else "accepted",
        "status": decision.status,
        "field": refused.field if refused else None,
        "message": part.result.message,
        "release": release_view(part.result.release),
        "findings": [] if refused else mark_blocking(decision.findings(), mode),
        "blocks_attestation": refused is not None or (decision.status == UNVERIFIED and mode == "block"),
    }


def release_view(release: Release | None) -> dict[str, Any] | None:
    if release is None:
        return None
    return {
        "system": release.system,
        "label": release.label,
        "effective_from": release.effective_from.isoformat(),
        "effective_until": release.effective_until.isoformat() if release.effective_until else None,
        "builtin": release.builtin,
        "scope": list(release.scope) if release.scope else None,
        "source": release.source,
    }
