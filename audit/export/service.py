"""Export bundles an auditor can verify offline (verify.py ships inside each one).

A fresh checkpoint is signed first (in its own transaction), so the bundle covers exactly its tree.
With no scope, events.jsonl holds every event from seq 0 to the checkpoint's tree size, streamed in
keyset pages (flat memory). A scoped export (dates of service, providers; every auditor export) holds
only the events in the authorised scope (`audit.policy.scope`), each with its RFC 6962 inclusion
proof, and its reports are built on the same scope, so nothing outside it is disclosed.

Earlier checkpoints travel with the bundle, so an auditor holding an old note can prove the log only
grew since (``verify.py --previous NOTE``): the tree sizes named in the request's ``previous``, or by
default those of the user's last exports. A scoped bundle carries a consistency proof from each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session

from audit.coding_audit.bundle import audit_files
from audit.config import get_settings
from audit.errors import Conflict, InvalidInput
from audit.export.bundle import write_bundle
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.models import Checkpoint, utcnow
from audit.policy.filters import event_page_clause
from audit.policy.guard import Target
from audit.policy.scope import ReadScope
from audit.principal import CurrentUser
from audit.report.queries import REPORTS
from audit.report.render import to_csv, to_pdf
from audit.report.service import authorize_report

PAGE = 5000
MAX_PREVIOUS = 20
DEFAULT_PREVIOUS_EXPORTS = 5
DEFAULT_REPORTS = ("provider-responsibility", "changes-after-attestation", "denied-attempts")


@dataclass(frozen=True)
class ExportRequest:
    date_from: date | None = None
    date_to: date | None = None
    provider_ids: tuple[str, ...] = ()
    reports: tuple[str, ...] = DEFAULT_REPORTS
    previous: tuple[int, ...] | None = None  # tree sizes of notes the auditor holds; None: the defaults
    purpose: str | None = None  # e.g. "archive": recorded in the event's detail


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
    grant, scope = authorize_report(
        session,
        user,
        "report.export",
        Target("export", None),
        date_from=req.date_from,
        date_to=req.date_to,
        provider_ids=req.provider_ids,
    )
    signed = checkpoints.create_or_latest(session)
    if signed is None:
        raise Conflict("the ledger is empty: there is nothing to export yet")
    notes = [*_previous_notes(session, user, req.previous, signed.tree_size), signed.note]
    signer = checkpoints.signer_name(signed.note)
    scoped = not scope.unlimited
    manifest = write_bundle(
        out,
        log_id=get_settings().log_id,
        events=_scoped_events(session, scope, signed.tree_size) if scoped else _all_events(session, signed),
        leaf_hashes_for_proofs=_all_leaves(session, signed.tree_size) if scoped else None,
        checkpoint_note=notes,
        public_key_text=checkpoints.public_key(signed.note),
        key_name=signer,
        scope=scope.as_dict() if scoped else None,
        full=not scoped,
        tree_size=signed.tree_size,
        sign_manifest=lambda body: checkpoints.sign(body, signer),
        extra_files={**_report_files(session, req.reports, scope), **audit_files(session, scope)},
    )
    digest = _sha256(out)
    ledger.append_one(
        session,
        grant.event(
            subject_id=digest[:16],
            detail={
                "scope": scope.as_dict() if scoped else None,
                "tree_size": signed.tree_size,
                "seq_range": manifest.get("seq_range"),
                "event_count": manifest["event_count"],
                "seq_digest": manifest["seq_digest"],
                "checkpoint_sizes": manifest["checkpoint_sizes"],
                "bundle_sha256": digest,
                "reports": list(req.reports),
                **({"purpose": req.purpose} if req.purpose else {}),
                **scope.evidence(),
            },
        ),
    )
    return ExportResult(out, manifest, digest)


def _previous_notes(
    session: Session, user: CurrentUser, asked: tuple[int, ...] | None, tree_size: int
) -> list[str]:
    """The signed notes at the earlier tree sizes the bundle links to its own, oldest first.
    Sizes the caller names must have a checkpoint; the defaults (the user's last exports) that lost
    theirs are left out, and `audit verify` reports the loss."""
    if asked is not None and len(asked) > MAX_PREVIOUS:
        raise InvalidInput("previous", f"at most {MAX_PREVIOUS} earlier tree sizes")
    sizes = set(asked) if asked is not None else set(_exported_sizes(session, user))
    notes = []
    for size in sorted(s for s in sizes if s != tree_size):
        if size > tree_size or size < 1:
            if asked is not None:
                raise InvalidInput("previous", f"tree size {size} is not between 1 and {tree_size}")
            continue
        found = checkpoints.at_size(session, size)
        if found is None and asked is not None:
            raise InvalidInput("previous", f"no signed checkpoint at tree size {size}")
        if found is not None:
            notes.append(found.note)
    return notes


def _exported_sizes(session: Session, user: CurrentUser) -> list[int]:
    """Tree sizes of this user's last exports (from their report.export events)."""
    table = ledger.LEDGER
    rows = session.execute(
        select(table.c.payload)
        .where(
            table.c.log_id == get_settings().log_id,
            table.c.type == "report.export",
            table.c.actor_id == user.id,
            table.c.outcome == "allowed",
        )
        .order_by(table.c.seq.desc())
        .limit(DEFAULT_PREVIOUS_EXPORTS)
    ).all()
    sizes = []
    for (payload,) in rows:
        size = json.loads(bytes(payload)).get("detail", {}).get("tree_size")
        if isinstance(size, int):
            sizes.append(size)
    return sizes


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


def _scoped_events(session: Session, scope: ReadScope, tree_size: int) -> Iterator[tuple[int, bytes]]:
    """The events in scope (see `audit.policy.scope`) up to the tree size, in keyset pages."""
    table = ledger.LEDGER
    conditions = [event_page_clause(session, scope), table.c.seq < tree_size]
    after = -1
    while True:
        rows = session.execute(
            select(table.c.seq, table.c.payload)
            .where(*conditions, table.c.seq > after)
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


def _report_files(session: Session, names: Sequence[str], scope: ReadScope) -> dict[str, bytes]:
    now = utcnow()
    files: dict[str, bytes] = {}
    for name in names:
        report = REPORTS[name](session, scope, now)
        files[f"report-{name}.csv"] = to_csv(report.main).encode()
        files[f"report-{name}.pdf"] = to_pdf(report, scope.as_dict(), now)
    return files
