"""Bulk charge feeds, under exactly the API's rules.

A feed is read as a stream (audit.imports.feed) and applied in batches. Each batch is one unit of
work whose events are held and appended together when it closes (audit.uow: one lock, one head
read, one insert). A batch reads what it touches in a few set queries (`_prefetch`); its
common rows, a new encounter or a new line on an open encounter, are decided and planned by
audit.imports.bulk and written with one insert per table. Any other row (a change, an amendment,
a row the rules refuse) goes through the encounter and code services in its own savepoint, after
what was planned so far is written: a refused row is rolled back, its refusal event (as the API
would write it) joins the batch, and the rest of the batch goes on.

Who is who:
- the submitter (an integration account, the host's operator, or a person) authorizes `import.run`
  for the file and is recorded as the actor of every line's event;
- each row's `entered_by` is the user the line is entered for. An integration account or the operator
  submits on that user's behalf (`on_behalf_of`: the user's own authority and delegations decide); a
  person may only import their own lines.

`import_line` maps (source, external_id, line_ref) to the line it became and the digest of the row as
last applied: an unchanged row is skipped, a changed row becomes a `code.change`. A run killed midway
keeps the batches it committed; running the file again finishes it without duplicating a line.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime
from itertools import islice
from typing import Any, BinaryIO, TypeVar

from pydantic import BaseModel, ValidationError
from sqlalchemy import bindparam, insert, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from audit.batchreads import batch_reads
from audit.encounter.codes import add_code, change_code
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, EncounterCreate
from audit.encounter.service import create_encounter
from audit.errors import Conflict, DomainError, Forbidden, InvalidInput
from audit.imports.bulk import AnyEncounter, FastRows, NewEncounter, SlowPath
from audit.imports.feed import Feed, FeedError, FeedRow, Rejection
from audit.ledger import service as ledger
from audit.ledger.events import FAILED, EventDraft
from audit.models import CodeLine, Encounter, ImportLine, User
from audit.policy.engine import SystemRes
from audit.policy.guard import Grant, Target, authorize, decision_memo
from audit.principal import CurrentUser
from audit.uow import unit_of_work

BATCH_ROWS = 2000
DEFAULT_SOURCE = "import"
Bind = Engine | Connection | None
Progress = Callable[[int, int], None]  # (bytes read, rows done)
M = TypeVar("M", bound=BaseModel)


@dataclass
class ImportCounts:
    rows: int = 0
    created: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    encounters_created: int = 0


@dataclass
class ImportResult:
    import_id: str
    sha256: str
    format: str
    bytes: int
    counts: ImportCounts
    seq: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "counts": asdict(self.counts)}


class RowRefused(Exception):
    """A row this module refuses before any service sees it (unknown user, provider, mismatch)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


def run_import(
    bind: Bind,
    *,
    submitter: CurrentUser,
    stream: BinaryIO,
    fmt: str | None = None,
    on_rejection: Callable[[Rejection], None] = lambda _r: None,
    on_progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> ImportResult:
    """Import a feed; refused rows go to `on_rejection`, the rest are applied. Raises FeedError when
    the file as a whole cannot be read (nothing is applied then) and Forbidden when the submitter may
    not import at all (recorded)."""
    with unit_of_work(bind) as session:
        grant = authorize(submitter, "import.run", Target("import", None), SystemRes())
    import_id = str(uuid.uuid4())
    feed = Feed(stream, fmt)
    counts = ImportCounts()
    try:
        _apply_batches(bind, feed, submitter, import_id, counts, on_rejection, on_progress, batch_rows)
    except IntegrityError as exc:  # another import wrote the same feed lines first: this batch undone
        raise Conflict(
            "another import of the same feed lines committed first; this batch was undone. Run the file "
            "again to finish it: lines already imported are skipped",
            field="line_ref",
        ) from exc
    except FeedError as exc:  # the file as a whole is refused: evidence of the attempt, then the 422
        with unit_of_work(bind) as session:
            ledger.append_one(session, _failed(submitter, grant, import_id, feed, counts, exc))
        raise
    with unit_of_work(bind) as session:
        seq = ledger.append_now(session, _summary(submitter, grant, import_id, feed, counts))
    return ImportResult(import_id, feed.sha256, feed.format or "csv", feed.bytes_read, counts, seq)


def _apply_batches(
    bind: Bind,
    feed: Feed,
    submitter: CurrentUser,
    import_id: str,
    counts: ImportCounts,
    on_rejection: Callable[[Rejection], None],
    on_progress: Progress | None,
    batch_rows: int,
) -> None:
    with decision_memo():
        for batch in _batches(feed.rows(), batch_rows):
            with unit_of_work(bind) as session, batch_reads():  # its events: one append at its end
                Batch(session, submitter, import_id, ledger.held(session), counts).apply(batch, on_rejection)
            if on_progress:
                on_progress(feed.bytes_read, counts.rows)


def _failed(
    submitter: CurrentUser, grant: Grant, import_id: str, feed: Feed, counts: ImportCounts, exc: FeedError
) -> EventDraft:
    draft = _summary(submitter, grant, import_id, feed, counts)
    draft.outcome, draft.reason = FAILED, exc.message[:500]
    draft.detail = {**draft.detail, "field": exc.field, "message": exc.message[:500]}
    return draft


def _batches(rows: Iterator[FeedRow | Rejection], size: int) -> Iterator[list[FeedRow | Rejection]]:
    while batch := list(islice(rows, size)):
        yield batch


def _summary(
    submitter: CurrentUser, grant: Grant, import_id: str, feed: Feed, counts: ImportCounts
) -> EventDraft:
    """The whole import as one event: the file's SHA-256 and what became of its rows."""
    return EventDraft(
        type="import.run",
        actor=submitter.actor(grant.role),
        subject_type="import",
        subject_id=import_id,
        policy=grant.policy,
        detail={
            "import_id": import_id,
            "sha256": feed.sha256,
            "format": feed.format or "csv",
            "bytes": feed.bytes_read,
            "counts": asdict(counts),
        },
    )


@dataclass(frozen=True)
class Row:
    """A feed row with its people resolved and its values validated by the API's own models."""

    line_no: int
    source: str
    external_id: str
    line_ref: str
    entered_for: User
    encounter: EncounterCreate
    line: CodeLineCreate

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.source, self.external_id, self.line_ref)

    def digest(self) -> str:
        """What a re-run compares: the line's fields and who it is entered for."""
        state = {
            "system": self.line.system,
            "code": self.line.code,
            "modifiers": self.line.modifiers,
            "units": self.line.units,
            "diagnosis_pointers": self.line.diagnosis_pointers,
            "entered_by": self.entered_for.id,
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


@dataclass
class Mapped:
    """An `import_line` row as the batch knows it: the line a feed line became, and its digest."""

    line_id: str
    digest: str


@dataclass
class Batch:
    session: Session
    submitter: CurrentUser
    import_id: str
    pending: list[tuple[EventDraft, datetime | None]]
    counts: ImportCounts
    users: dict[str, User | None] = field(default_factory=dict)
    providers: dict[str, list[User]] = field(default_factory=dict)
    encounters: dict[tuple[str, str], AnyEncounter] = field(default_factory=dict)
    mappings: dict[tuple[str, str, str], Mapped] = field(default_factory=dict)
    added: dict[tuple[str, str, str], Mapped] = field(default_factory=dict)  # inserted at the end
    changed: set[tuple[str, str, str]] = field(default_factory=set)  # digests updated at the end
    fast: FastRows = field(init=False)
    validated: dict[Any, BaseModel] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fast = FastRows(self.session, self.submitter, self.pending)

    @property
    def acts_for_others(self) -> bool:
        return self.submitter.has("integration") or self.submitter.has("operator")

    def apply(self, items: list[FeedRow | Rejection], on_rejection: Callable[[Rejection], None]) -> None:
        rows = [item for item in items if isinstance(item, FeedRow)]
        self._prefetch(rows)
        for item in items:
            self.counts.rows += 1
            outcome = self._apply_fast(item) if isinstance(item, FeedRow) else item
            if isinstance(outcome, Rejection):
                self.counts.rejected += 1
                on_rejection(outcome)
            else:
                setattr(self.counts, outcome, getattr(self.counts, outcome) + 1)
        self.fast.planned.write(self.session)
        self._save_mappings()

    def _apply_fast(self, item: FeedRow) -> str | Rejection:
        """One row through the set-based path (`audit.imports.bulk`); a row it does not cover goes
        through the services (`_apply`), after what the batch planned so far is written, so that
        the services read it as they would have."""
        first = len(self.pending)
        try:
            row = self._row(item)
        except RowRefused as refused:
            return Rejection(item.line_no, refused.field, refused.reason)
        try:
            encounter = self._fast_encounter(row)
            mapping = self.mappings.get(row.key)
            if mapping is None:
                self.fast.load_active([encounter])
                line_id = self.fast.add_code(encounter, row.line, row.entered_for)
                self.mappings[row.key] = self.added[row.key] = Mapped(line_id, row.digest())
                outcome = "created"
            elif mapping.digest == row.digest():
                outcome = "unchanged"
            else:
                raise SlowPath
        except SlowPath:
            self.fast.planned.write(self.session)
            result = self._apply(item, first)
            known = self.encounters.get((row.source, row.external_id))
            if known is not None:  # the services may have changed its lines or status
                self.fast.active.pop(known.id, None)
            return result
        self._mark(first, item)
        return outcome

    def _fast_encounter(self, row: Row) -> AnyEncounter:
        key = (row.source, row.external_id)
        encounter = self.encounters.get(key)
        if encounter is None:
            encounter = self.fast.create_encounter(row.encounter, row.entered_for)
            self.encounters[key] = encounter
            self.counts.encounters_created += 1
            return encounter
        wanted = row.encounter
        if (encounter.patient_ref, encounter.date_of_service, encounter.rendering_provider_id) != (
            wanted.patient_ref,
            wanted.date_of_service,
            wanted.rendering_provider_id,
        ):
            raise SlowPath  # refused as POST /encounters refuses it, by the services
        return encounter

    def _save_mappings(self) -> None:
        """The batch's new and changed `import_line` rows, in one statement each (executemany)."""
        table = ImportLine.__table__  # type: ignore[attr-defined]
        if self.added:
            rows = [
                {
                    "source": k[0],
                    "external_id": k[1],
                    "line_ref": k[2],
                    "line_id": m.line_id,
                    "digest": m.digest,
                }
                for k, m in self.added.items()
            ]
            self.session.execute(insert(table), rows)
        changed = [k for k in self.changed if k not in self.added]
        if changed:
            stmt = (
                update(table)
                .where(
                    table.c.source == bindparam("k_source"),
                    table.c.external_id == bindparam("k_external_id"),
                    table.c.line_ref == bindparam("k_line_ref"),
                )
                .values(digest=bindparam("k_digest"))
            )
            self.session.execute(
                stmt,
                [
                    {
                        "k_source": k[0],
                        "k_external_id": k[1],
                        "k_line_ref": k[2],
                        "k_digest": self.mappings[k].digest,
                    }
                    for k in changed
                ],
            )

    def _prefetch(self, rows: list[FeedRow]) -> None:
        """The batch's users, providers, encounters and earlier imports, in a few set-based queries."""
        s = self.session
        names = {_text(r.values.get("entered_by")) for r in rows}
        for user in s.exec(select(User).where(col(User.username).in_(names))).all():
            self.users[user.username] = user
        npis = {_text(r.values.get("rendering_npi")) for r in rows}
        for user in s.exec(select(User).where(col(User.npi).in_(npis))).all():
            if "provider" in user.roles and user.is_active:
                self.providers.setdefault(user.npi or "", []).append(user)
        by_source: dict[str, set[str]] = {}
        for r in rows:
            by_source.setdefault(_text(r.values.get("source")) or DEFAULT_SOURCE, set()).add(
                _text(r.values.get("external_id"))
            )
        for source, ids in by_source.items():
            # Locked for the batch (FOR UPDATE on PostgreSQL), in id order, as add_code would lock each.
            for enc in s.exec(
                select(Encounter)
                .where(Encounter.source == source, col(Encounter.external_id).in_(ids))
                .order_by(col(Encounter.id))
                .with_for_update()
            ).all():
                self.encounters[(enc.source, enc.external_id)] = enc
            self.fast.load_active(list(self.encounters.values()))
            table = ImportLine.__table__  # type: ignore[attr-defined]
            for m in s.execute(
                select(table.c.external_id, table.c.line_ref, table.c.line_id, table.c.digest).where(
                    table.c.source == source, table.c.external_id.in_(ids)
                )
            ):
                self.mappings[(source, m.external_id, m.line_ref)] = Mapped(m.line_id, m.digest)

    def _apply(self, item: FeedRow, first: int | None = None) -> str | Rejection:
        """One row. A new line needs no savepoint: `add_code` writes nothing before its last check
        passes. A new encounter and a change (which edits the line before its checks) each run in a
        savepoint, so a refusal undoes exactly them. A refused line leaves the row's new encounter
        standing, as two API calls would."""
        mark = len(self.pending)
        first = mark if first is None else first
        try:
            row = self._row(item)
            encounter = self._encounter(row)
            mark = len(self.pending)
            mapping = self.mappings.get(row.key)
            if mapping is None:
                outcome = "created"
                self.mappings[row.key] = self.added[row.key] = self._add(row, encounter)
            elif mapping.digest == row.digest():
                outcome = "unchanged"
            else:
                with self.session.begin_nested():
                    outcome = self._change(row, encounter, mapping)
                mapping.digest = row.digest()
                self.changed.add(row.key)
        except RowRefused as refused:
            del self.pending[mark:]
            self._mark(first, item)
            return Rejection(item.line_no, refused.field, refused.reason)
        except DomainError as error:
            del self.pending[mark:]
            if error.record is not None:  # the refusal's event, as the API records it, in this batch
                record, error.record = error.record, None
                record(self.session)
            self._mark(first, item)
            return Rejection(item.line_no, _field(error), error.detail)
        except IntegrityError as exc:
            del self.pending[mark:]
            return Rejection(
                item.line_no, "line", f"conflicts with a concurrent write ({type(exc.orig).__name__})"
            )
        self._mark(first, item)
        return outcome

    def _mark(self, mark: int, item: FeedRow) -> None:
        """Each event a row caused says which import and which line of the feed it came from."""
        ref = {
            "import_id": self.import_id,
            "line": item.line_no,
            "line_ref": _text(item.values.get("line_ref")),
        }
        for draft, _ in self.pending[mark:]:
            draft.detail = {**draft.detail, "import": ref}

    def _row(self, item: FeedRow) -> Row:
        v = item.values
        username = _text(v.get("entered_by"))
        entered_for = self.users.get(username) if username else None
        if entered_for is None or not entered_for.is_active:
            raise RowRefused("entered_by", f"no active user is named {username[:64]!r}")
        if not self.acts_for_others and entered_for.id != self.submitter.id:
            raise RowRefused(
                "entered_by",
                f"{self.submitter.username} may import only their own lines; an integration account "
                "submits lines for others",
            )
        on_behalf = entered_for.id if self.acts_for_others else None
        npi = _text(v.get("rendering_npi"))
        providers = self.providers.get(npi, []) if npi else []
        if len(providers) != 1:
            why = "no active provider has" if not providers else "more than one provider has"
            raise RowRefused("rendering_npi", f"{why} NPI {npi[:16]!r}")
        line_ref = _text(v.get("line_ref"))
        if not line_ref or len(line_ref) > 128 or _unsafe(line_ref):
            raise RowRefused("line_ref", "must be 1 to 128 characters without control characters")
        try:
            encounter = self._validate(
                EncounterCreate,
                {
                    "external_id": v.get("external_id"),
                    "source": _text(v.get("source")) or DEFAULT_SOURCE,
                    "patient_ref": v.get("patient_ref"),
                    "date_of_service": v.get("date_of_service"),
                    "rendering_provider_id": providers[0].id,
                    "on_behalf_of": on_behalf,
                },
            )
            line = self._validate(
                CodeLineCreate,
                {
                    "system": v.get("system"),
                    "code": v.get("code"),
                    "modifiers": [] if v.get("modifiers") in (None, "") else v.get("modifiers"),
                    "units": 1 if v.get("units") in (None, "") else v.get("units"),  # empty: 1
                    "diagnosis_pointers": []
                    if v.get("diagnosis_pointers") in (None, "")
                    else v.get("diagnosis_pointers"),
                    "reason": _text(v.get("reason")) or None,
                    "on_behalf_of": on_behalf,
                },
            )
        except ValidationError as exc:
            first = exc.errors()[0]
            raise RowRefused(_loc(first["loc"]), first["msg"]) from exc
        return Row(
            item.line_no, encounter.source, encounter.external_id, line_ref, entered_for, encounter, line
        )

    def _validate(self, model: type[M], values: dict[str, Any]) -> M:
        """`model.model_validate(values)`, once per distinct values in the batch: a feed repeats an
        encounter on each of its lines and the same few codes on many. Validation is a pure function
        of the values (their types included in the key); a row that fails is validated every time."""
        try:
            key = (model, tuple(map(_typed, values.values())))  # the models' fields, in order
            known = self.validated.get(key)
        except TypeError:  # an unhashable value (a JSON object in a list): no memo
            return model.model_validate(values)
        if known is None:
            known = self.validated[key] = model.model_validate(values)
        return known  # type: ignore[return-value]

    def _add(self, row: Row, encounter: Encounter) -> Mapped:
        added = add_code(
            self.session, user=self.submitter, encounter_id=encounter.id, data=row.line, locked=encounter
        )
        return Mapped(added.line.id, row.digest())

    def _change(self, row: Row, encounter: Encounter, mapping: Mapped) -> str:
        line_id = mapping.line_id
        line = self.session.get(CodeLine, line_id)
        if line is None:  # the mapping names a line that must exist (foreign key)
            raise InvalidInput("line_ref", f"line {line_id} is missing")
        if line.system != row.line.system:
            raise InvalidInput(
                "system", f"line {row.line_ref} was {line.system}; a line's code system never changes"
            )
        wanted = (row.line.code, row.line.modifiers, row.line.units, row.line.diagnosis_pointers)
        if wanted == (line.code, list(line.modifiers), line.units, list(line.diagnosis_pointers)):
            return "unchanged"  # already so (changed through the API, say): nothing to record
        patch = CodeLinePatch(
            code=row.line.code,
            modifiers=row.line.modifiers,
            units=row.line.units,
            diagnosis_pointers=row.line.diagnosis_pointers,
            reason=row.line.reason,
            on_behalf_of=row.line.on_behalf_of,
        )
        change_code(
            self.session,
            user=self.submitter,
            encounter_id=encounter.id,
            line_id=line.id,
            if_match=f'"{line.version}"',
            data=patch,
        )
        return "changed"

    def loaded(self, key: tuple[str, str]) -> Encounter | None:
        """The encounter as an ORM object, for the services (one planned here is read back: the
        batch wrote it before a row went to the services)."""
        encounter = self.encounters.get(key)
        if isinstance(encounter, NewEncounter):
            encounter = self.encounters[key] = self.session.get_one(Encounter, encounter.id)
        return encounter

    def _encounter(self, row: Row) -> Encounter:
        """The row's encounter, created (through the service) when it is new. A row that disagrees
        with an existing encounter is refused: a feed does not rewrite an encounter."""
        key = (row.source, row.external_id)
        encounter = self.loaded(key)
        if encounter is None:
            with self.session.begin_nested():
                encounter = create_encounter(self.session, user=self.submitter, data=row.encounter)
            self.encounters[key] = encounter
            self.counts.encounters_created += 1
            return encounter
        wanted = row.encounter
        differs = [
            name
            for name, ours, theirs in (
                ("patient_ref", encounter.patient_ref, wanted.patient_ref),
                ("date_of_service", encounter.date_of_service, wanted.date_of_service),
                ("rendering_npi", encounter.rendering_provider_id, wanted.rendering_provider_id),
            )
            if ours != theirs
        ]
        if differs:
            # Answer as POST /encounters would: decided first (a refusal is recorded), then 409.
            try:
                with self.session.begin_nested():
                    create_encounter(self.session, user=self.submitter, data=wanted)
            except Conflict as exc:
                raise RowRefused(
                    differs[0],
                    f"differs from encounter {row.external_id} as it exists; "
                    "a feed does not change an encounter",
                ) from exc
        return encounter


def _typed(value: Any) -> Any:
    """A value with its type (and its items' types), so that 1, True and "1" are different keys. Text,
    most of a feed, stands for itself: no other type's value equals a str."""
    if type(value) is str:
        return value
    if isinstance(value, list):
        return (list, tuple((type(v), v) for v in value))
    return (type(value), value)


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.strip() if isinstance(value, str) else str(value)


def _unsafe(value: str) -> bool:
    from audit.inputs import unsafe_character

    return unsafe_character(value) is not None


FIELD_NAMES = {"rendering_provider_id": "rendering_npi", "on_behalf_of": "entered_by"}


def _loc(loc: Iterable[Any]) -> str:
    parts = list(loc)
    name = FIELD_NAMES.get(str(parts[0]), str(parts[0])) if parts else "line"
    return name + "".join(f"[{p}]" for p in parts[1:])


def _field(error: DomainError) -> str:
    """The field a refusal names; a policy refusal is about the authority of `entered_by` (the
    submitter's own right to import was decided before the first row)."""
    if isinstance(error, Forbidden):
        return "entered_by"
    raw = getattr(error, "field", None) or error.extra.get("field") or "line"
    return FIELD_NAMES.get(str(raw), str(raw))
