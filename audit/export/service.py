"""Export bundles an auditor can verify offline (verify.py ships inside each one).

A fresh checkpoint is signed first (in its own transaction), so the bundle covers exactly its tree.
With no scope, events.jsonl holds every event from seq 0 to the checkpoint's tree size, streamed in
keyset pages (flat memory). A scoped export (dates of service, providers; every auditor export) holds
only the events on encounters in scope, each with its RFC 6962 inclusion proof, so nothing outside the
scope is disclosed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import and_, select
from sqlmodel import Session

from audit.config import get_settings
from audit.errors import Conflict, InvalidInput
from audit.export.bundle import write_bundle
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.events import EventDraft
from audit.models import Checkpoint, Encounter, utcnow
from audit.policy.guard import Target
from audit.principal import CurrentUser
from audit.report.render import to_csv, to_pdf
from audit.report.schemas import Filters
from audit.report.service import REPORTS, authorize_scope

PAGE = 5000
DEFAULT_REPORTS = ("provider-responsibility", "changes-after-attestation", "denied-attempts")


@dataclass(frozen=True)
class ExportRequest:
    date_from: date | None = None
    date_to: date | None = None
    provider_ids: tuple[str, ...] = ()
    reports: tuple[str, ...] = DEFAULT_REPORTS


@dataclass(frozen=True)
class ExportResult:
    path: Path
    manifest: dict[str, Any]
    sha256: str


def export_bundle(session: Session, *, user: CurrentUser, req: ExportRequest, out: Path) -> ExportResult:
    """Sign a checkpoint over the committed head, write the bundle on it to `out`, and record the
    export as an event (after the checkpoint, so the next bundle covers it)."""
    for name in req.reports:
        if name not in REPORTS:
            raise InvalidInput("reports", f"no report named {name!r}; reports: {', '.join(REPORTS)}")
    grant, filters = authorize_scope(
        session,
        user,
        "report.export",
        Target("export", None),
        date_from=req.date_from,
        date_to=req.date_to,
        provider_ids=list(req.provider_ids) or None,
    )
    signed = checkpoints.create_or_latest(session)
    if signed is None:
        raise Conflict("the ledger is empty: there is nothing to export yet")
    scoped = user.has("auditor") or bool(filters.date_from or filters.date_to or filters.provider_ids)
    manifest = write_bundle(
        out,
        log_id=get_settings().log_id,
        events=_scoped_events(session, filters, signed.tree_size) if scoped else _all_events(session, signed),
        leaf_hashes_for_proofs=_all_leaves(session, signed.tree_size) if scoped else None,
        checkpoint_note=signed.note,
        public_key_text=checkpoints.public_key(),
        key_name=checkpoints.key_name(),
        scope=filters.as_dict() if scoped else None,
        full=not scoped,
        tree_size=signed.tree_size,
        extra_files=_report_files(session, req.reports, filters),
    )
    digest = _sha256(out)
    ledger.append_one(
        session,
        EventDraft(
            type="report.export",
            actor=user.actor(grant.role),
            subject_type="export",
            subject_id=digest[:16],
            policy=grant.policy,
            detail={
                "scope": filters.as_dict() if scoped else None,
                "tree_size": signed.tree_size,
                "seq_range": manifest.get("seq_range"),
                "bundle_sha256": digest,
                "reports": list(req.reports),
            },
        ),
    )
    return ExportResult(out, manifest, digest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _all_events(session: Session, signed: Checkpoint) -> Iterator[tuple[int, bytes, bytes]]:
    for event in ledger.iter_stored(session, log_id=get_settings().log_id, batch=PAGE):
        if event.seq >= signed.tree_size:
            return
        yield event.seq, event.payload, event.chain_hash


def _scoped_events(session: Session, f: Filters, tree_size: int) -> Iterator[tuple[int, bytes]]:
    table, enc = ledger.LEDGER, Encounter.__table__  # type: ignore[attr-defined]
    conditions = [table.c.log_id == get_settings().log_id, table.c.seq < tree_size]
    if f.date_from:
        conditions.append(enc.c.date_of_service >= f.date_from)
    if f.date_to:
        conditions.append(enc.c.date_of_service <= f.date_to)
    if f.provider_ids:
        conditions.append(enc.c.rendering_provider_id.in_(sorted(f.provider_ids)))
    after = -1
    while True:
        rows = session.execute(
            select(table.c.seq, table.c.payload)
            .join(enc, enc.c.id == table.c.encounter_id)
            .where(and_(*conditions), table.c.seq > after)
            .order_by(table.c.seq)
            .limit(PAGE)
        ).all()
        if not rows:
            return
        for seq, payload in rows:
            yield int(seq), bytes(payload)
        after = int(rows[-1][0])


def _all_leaves(session: Session, tree_size: int) -> Sequence[bytes]:
    """Every leaf hash up to the tree size: the proofs need the whole tree (32 bytes an event)."""
    table = ledger.LEDGER
    rows = session.execute(
        select(table.c.leaf_hash)
        .where(table.c.log_id == get_settings().log_id, table.c.seq < tree_size)
        .order_by(table.c.seq)
    )
    return [bytes(r[0]) for r in rows]


def _report_files(session: Session, names: Sequence[str], filters: Filters) -> dict[str, bytes]:
    now = utcnow()
    files: dict[str, bytes] = {}
    for name in names:
        report = REPORTS[name](session, filters, now)
        files[f"report-{name}.csv"] = to_csv(report.main).encode()
        files[f"report-{name}.pdf"] = to_pdf(report, filters.as_dict(), now)
    return files
