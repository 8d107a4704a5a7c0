"""Replay of the coding-audit events into the rows they imply (pure: no session, no clock).

The coding-audit tables (`coding_audit`, `audit_finding`, `audit_finding_response`, `audit_signature`,
`audit_follow_up`) hold verdicts, disputes and the auditor's signature, so an edit behind the service's
back (a `disagree` turned into `agree`, a decision reversed, a signature revived) must be named like
an edited code line. Each allowed event carries the row's state as the API shows it
(`audit.coding_audit.views`); this module maps that shape back to the table's columns. The ledger
package may not import the coding-audit services, so the mapping is written here from the events'
documented shape, and a test checks it against rows the services wrote.

What no event holds: an audit's frozen `frame` is reconciled through its SHA-256 (`frame_sha256` is in
the event; the reader hashes the stored frame the same way, see `frame_digest`), and its `parties` (who
may read it, derived when the sample is drawn) through `detail.parties`, which sample events carry
since this check was added (older ones leave it unreconciled). A signature's stored `report` (the
signed report the export bundle ships) is reconciled through the findings digest its body implies
(`audit.ledger.digest.signed_report_digest`), which must be the signed `findings_digest`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from audit.ledger.digest import signed_report_digest
from audit.ledger.shapes import an_id, pick
from audit.ledger.shapes import as_dict as _dict
from audit.ledger.shapes import get as _get

if TYPE_CHECKING:
    from audit.ledger.replay import Replay

AUDIT, FINDING, RESPONSE, SIGNATURE, FOLLOW_UP = (
    "coding_audit",
    "audit_finding",
    "audit_finding_response",
    "audit_signature",
    "audit_follow_up",
)
AUDIT_TABLES = (AUDIT, FINDING, RESPONSE, SIGNATURE, FOLLOW_UP)

AUDIT_COLUMNS = (
    "name",
    "auditor_id",
    "engagement_id",
    "date_from",
    "date_to",
    "provider_ids",
    "code_systems",
    "em_only",
    "method",
    "n",
    "strata",
    "seed",
    "status",
    "parent_id",
    "not_before",
    "frame",  # compared as its SHA-256: the event's frame_sha256
    "frame_sha256",
    "sample",
    "sampled_at",
    "parties",
    "opened_at",
)
FINDING_COLUMNS = (
    "audit_id",
    "encounter_id",
    "provider_id",
    "line_id",
    "line_version",
    "line_system",
    "line_code",
    "line_author_id",
    "attested_by",
    "attestation_id",
    "verdict",
    "revised",
    "revised_code",
    "category",
    "rationale",
    "auditor_id",
    "recorded_at",
    "status",
    "decision_comment",
    "decided_by",
    "decided_at",
    "replaced_by",
)
RESPONSE_COLUMNS = ("finding_id", "responder_id", "role", "response", "comment", "responded_at")
SIGNATURE_COLUMNS = (
    "audit_id",
    "signer_id",
    "printed_name",
    "credential",
    "signed_at",
    "meaning",
    "findings_digest",
    "method_version",
    "policy_version",
    "status",
    "superseded_at",
    "ledger_seq",
    "report",  # compared as the digest its body implies: the event's findings_digest
)
SIGNATURE_STATE = SIGNATURE_COLUMNS[:-2]  # what `signature_state` shows
FOLLOW_UP_COLUMNS = (
    "audit_id",
    "kind",
    "provider_id",
    "encounter_id",
    "reaudit_id",
    "identified_on",
    "due_on",
    "detail",
    "created_at",
)
RECONCILED_AUDITS: dict[str, tuple[str, ...]] = {
    AUDIT: AUDIT_COLUMNS,
    FINDING: FINDING_COLUMNS,
    RESPONSE: RESPONSE_COLUMNS,
    SIGNATURE: SIGNATURE_COLUMNS,
    FOLLOW_UP: FOLLOW_UP_COLUMNS,
}
SETS = ("provider_ids", "code_systems", "parties")  # stored as lists, compared as sorted sets

Row = dict[str, Any]


def frame_digest(frame: Any) -> str | None:
    """SHA-256 of a frame's canonical JSON, as `sample_script.frame_digest` writes `frame_sha256`
    (None for no frame)."""
    if frame is None:
        return None
    text = json.dumps(frame, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def as_events_show_it(table: str, row: Row) -> Row:
    """A stored row in the events' terms: an audit's frame as its digest and its sets sorted; a
    signature's report body as the findings digest it implies."""
    if table == SIGNATURE and "report" in row:
        return {**row, "report": signed_report_digest(row["report"])}
    if table != AUDIT:
        return row
    shown = dict(row)
    if "frame" in shown:
        shown["frame"] = frame_digest(shown["frame"])
    for name in SETS:
        if isinstance(shown.get(name), list):
            shown[name] = sorted(shown[name], key=str)
    return shown


def _date(value: Any) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class AuditReplay:
    """The coding-audit handlers of a `Replay`, writing into its tables through its bookkeeping."""

    def __init__(self, replay: Replay) -> None:
        self.replay = replay

    def handlers(self) -> dict[str, Callable[[int, dict[str, Any]], None]]:
        return {
            "coding_audit.open": self._open,
            "coding_audit.sample": self._sample,
            "coding_audit.record_finding": self._finding,
            "coding_audit.respond": self._respond,
            "coding_audit.decide": self._decide,
            "coding_audit.sign": self._sign,
            "coding_audit.signature_supersede": self._supersede,
            "coding_audit.follow_up": self._follow_up,
        }

    # -- audits --------------------------------------------------------------------------------

    def _open(self, seq: int, body: dict[str, Any]) -> None:
        audit_id = _subject(body)
        if not self.replay.new_row(AUDIT, audit_id, seq):
            return
        row = _audit_row(_after(body))
        row["parties"] = []
        self.replay.set_row(AUDIT, audit_id, row, seq)

    def _sample(self, seq: int, body: dict[str, Any]) -> None:
        audit_id = _subject(body)
        existing = self.replay.existing_row(AUDIT, audit_id, seq)
        if existing is None:
            return
        parties = _get(body.get("detail"), "parties")
        row = {**existing, **_audit_row(_after(body))}
        row["parties"] = sorted(parties) if isinstance(parties, list) else self.replay.legacy
        self.replay.set_row(AUDIT, audit_id, row, seq)

    def _audit_status(self, seq: int, body: dict[str, Any], status: str) -> None:
        audit_id = _get(body.get("detail"), "audit_id")
        existing = self.replay.existing_row(AUDIT, audit_id, seq)
        if existing is not None:
            self.replay.set_row(AUDIT, audit_id, {**existing, "status": status}, seq)

    # -- findings and responses --------------------------------------------------------------------

    def _finding(self, seq: int, body: dict[str, Any]) -> None:
        finding_id = _subject(body)
        if not self.replay.new_row(FINDING, finding_id, seq):
            return
        replaced = _get(body.get("before"), "id")
        if replaced is not None:  # a new verdict on a line replaces the current one
            earlier = self.replay.existing_row(FINDING, replaced, seq)
            if earlier is not None:
                self.replay.set_row(FINDING, replaced, {**earlier, "replaced_by": finding_id}, seq)
        self.replay.set_row(FINDING, finding_id, _finding_row(_after(body)), seq)

    def _decide(self, seq: int, body: dict[str, Any]) -> None:
        finding_id = _subject(body)
        if self.replay.existing_row(FINDING, finding_id, seq) is not None:
            self.replay.set_row(FINDING, finding_id, _finding_row(_after(body)), seq)

    def _respond(self, seq: int, body: dict[str, Any]) -> None:
        self._decide(seq, body)  # the finding's new status
        response = _dict(_after(body).get("response"), "after.response")
        response_id = an_id(response.get("id"), "after.response.id")
        if self.replay.new_row(RESPONSE, response_id, seq):
            row = pick(response, RESPONSE_COLUMNS)
            row["responded_at"] = _time(row["responded_at"])
            self.replay.set_row(RESPONSE, response_id, row, seq)

    # -- signatures and follow-up -------------------------------------------------------------------

    def _sign(self, seq: int, body: dict[str, Any]) -> None:
        signature_id = _subject(body)
        if not self.replay.new_row(SIGNATURE, signature_id, seq):
            return
        self.replay.set_row(SIGNATURE, signature_id, {**_signature_row(_after(body)), "ledger_seq": seq}, seq)
        self._audit_status(seq, body, "signed")

    def _supersede(self, seq: int, body: dict[str, Any]) -> None:
        signature_id = _subject(body)
        existing = self.replay.existing_row(SIGNATURE, signature_id, seq)
        if existing is None:
            return
        self.replay.set_row(SIGNATURE, signature_id, {**existing, **_signature_row(_after(body))}, seq)
        self._audit_status(seq, body, "sampled")

    def _follow_up(self, seq: int, body: dict[str, Any]) -> None:
        item_id = _subject(body)
        if not self.replay.new_row(FOLLOW_UP, item_id, seq):
            return
        row = pick(_after(body), FOLLOW_UP_COLUMNS[:-1])
        row.update(
            identified_on=_date(row["identified_on"]),
            due_on=_date(row["due_on"]),
            created_at=self.replay.row_time(body),
        )
        self.replay.set_row(FOLLOW_UP, item_id, row, seq)


def _audit_row(after: dict[str, Any]) -> Row:
    """The columns of `audit_state` (`audit.coding_audit.views`) other than `parties`."""
    scope = _dict(after.get("scope"), "after.scope")
    sampling = _dict(after.get("sampling"), "after.sampling")
    row = pick(
        after,
        (
            "name",
            "auditor_id",
            "engagement_id",
            "seed",
            "status",
            "parent_id",
            "frame_sha256",
            "sample",
        ),
    )
    row.update(
        date_from=_date(scope.get("from")),
        date_to=_date(scope.get("to")),
        provider_ids=sorted(scope.get("provider_ids") or []),
        code_systems=sorted(scope.get("code_systems") or []),
        em_only=scope.get("em_only"),
        method=sampling.get("method"),
        n=sampling.get("n"),
        strata=sampling.get("strata"),
        not_before=_date(after.get("not_before")),
        frame=after.get("frame_sha256"),
        sampled_at=_time(after.get("sampled_at")),
        opened_at=_time(after.get("opened_at")),
    )
    return row


def _finding_row(after: dict[str, Any]) -> Row:
    """The columns of `finding_state`: the line it judged is nested under `line`."""
    line = _dict(after.get("line"), "after.line")
    row = pick(
        after,
        (
            "audit_id",
            "encounter_id",
            "provider_id",
            "line_id",
            "verdict",
            "revised",
            "category",
            "rationale",
            "auditor_id",
            "status",
            "decision_comment",
            "decided_by",
            "replaced_by",
        ),
    )
    revised = row["revised"]
    row.update(
        line_version=line.get("version"),
        line_system=line.get("system"),
        line_code=line.get("code"),
        line_author_id=line.get("author_id"),
        attested_by=line.get("attested_by"),
        attestation_id=line.get("attestation_id"),
        revised_code=revised.get("code") if isinstance(revised, dict) else None,
        recorded_at=_time(after.get("recorded_at")),
        decided_at=_time(after.get("decided_at")),
    )
    return row


def _signature_row(after: dict[str, Any]) -> Row:
    row = pick(after, SIGNATURE_STATE)
    row.update(
        signed_at=_time(row["signed_at"]),
        superseded_at=_time(row["superseded_at"]),
        report=row["findings_digest"],
    )
    return row


def _subject(body: dict[str, Any]) -> str:
    return an_id(_get(body.get("subject"), "id"), "subject.id")


def _after(body: dict[str, Any]) -> dict[str, Any]:
    return _dict(body.get("after"), "after")
