"""The report roll-ups (audit.ledger.models): kept with the events, rebuilt, and checked.

One definition, three uses. `encounter_counts`, `author_lines`, `em_lines` and `denied_attempts` are
GROUP BYs over the encounter tables and the ledger; the roll-up tables hold exactly their results:

- the ledger writer calls `record` with the rows it has just inserted, in the same transaction: the
  (provider, date of service) of every encounter an event changes is recomputed from the tables
  (one key is a handful of encounters, read through their indexes), and each denied event naming a
  provider adds one to its count;
- the migration and the benchmarks fill them with `rebuild`;
- `audit verify` compares every stored row with a fresh GROUP BY (`problems`): a forged, stale,
  missing or extra roll-up row is named by table, key and field. The tables those GROUP BYs read are
  themselves reconciled with the ledger by the same pass, so the roll-ups reconcile with the ledger.

Reports sum the roll-up rows instead of re-counting a year of encounters and events.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Table,
    and_,
    bindparam,
    case,
    delete,
    func,
    insert,
    inspect,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection
from sqlmodel import Session

from audit.db import conflict_insert
from audit.ledger.models import (
    CODE_EVENTS,
    EM_CODES,
    ChangeAfterAttestation,
    RollupDenied,
    RollupProviderDay,
    RollupProviderDayAuthor,
    RollupProviderDayCode,
)
from audit.ledger.problems import ROLLUP, Problem
from audit.models import Attestation, CodeLine, Encounter, LedgerEvent

ENC: Table = Encounter.__table__  # type: ignore[attr-defined]
ATT: Table = Attestation.__table__  # type: ignore[attr-defined]
LINE: Table = CodeLine.__table__  # type: ignore[attr-defined]
LED: Table = LedgerEvent.__table__  # type: ignore[attr-defined]
PER_DAY: Table = RollupProviderDay.__table__  # type: ignore[attr-defined]
PER_AUTHOR: Table = RollupProviderDayAuthor.__table__  # type: ignore[attr-defined]
DENIED: Table = RollupDenied.__table__  # type: ignore[attr-defined]
PER_CODE: Table = RollupProviderDayCode.__table__  # type: ignore[attr-defined]
CHANGES: Table = ChangeAfterAttestation.__table__  # type: ignore[attr-defined]

COUNTS = ("encounters", "attested", "unattested", "amended", "attested_late", "changes_after_attestation")
# Events that change no encounter, line or attestation: no key to recompute (a denied one still counts).
READS = frozenset(
    {
        "encounter.read", "encounter.list", "encounter.flag", "encounter.annotate", "encounter.resolve_flag",
        "fhir.read", "fhir.search", "report.view", "report.export", "audit.read_events", "sample.draw",
        "delegation.read", "engagement.read", "user.read", "web.page", "web.role_page", "http.request",
    }
)  # fmt: skip
ON_ENCOUNTER, UNATTACHED, ORPHAN = "encounter", "unattached", "orphan"
CHUNK = 200  # keys per statement

Db = Session | Connection
Key = tuple[str, date]  # (provider of record, date of service)
AuthorKey = tuple[str, date, str]  # ... and who entered the lines
CodeKey = tuple[str, date, str]  # ... and the E/M code
DeniedKey = tuple[str, str, str, date]  # (kind, provider named, encounter's provider or "", day)


@dataclass
class Rollups:
    per_day: dict[Key, dict[str, int]] = field(default_factory=dict)
    per_author: dict[AuthorKey, int] = field(default_factory=dict)
    denied: dict[DeniedKey, int] = field(default_factory=dict)
    per_code: dict[CodeKey, int] = field(default_factory=dict)


def as_day(value: Any) -> date:
    """A date as either driver returns it (SQLite's func.date gives text)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).date() if value.tzinfo else value.date()
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _keyed(provider: Any, day: Any, keys: Sequence[Key] | None) -> ColumnElement[bool]:
    if keys is None:
        return true()
    return or_(*(and_(provider == p, day == d) for p, d in keys))


def _chunks(keys: Iterable[Key] | None) -> Iterator[list[Key] | None]:
    if keys is None:
        yield None
        return
    ordered = sorted(keys)
    for i in range(0, len(ordered), CHUNK):
        yield ordered[i : i + CHUNK]


# --- the GROUP BYs ---------------------------------------------------------------------------------------


def encounter_counts(
    db: Db, log_id: str, keys: Sequence[Key] | None = None, *, kept: bool = False
) -> dict[Key, dict[str, int]]:
    """Per (provider, date of service): encounters by status, late valid attestations and allowed code
    events after the encounter's first allowed attestation (all keys, or only `keys`). The changes are
    counted from the ledger, or with `kept` (the writer's refresh) from `change_after_attestation`,
    which verification compares with the ledger: a few rows instead of every event of the key."""
    provider, dos = ENC.c.rendering_provider_id, ENC.c.date_of_service
    where = _keyed(provider, dos, keys)
    out: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTS, 0))
    status = ENC.c.status
    by_status = select(
        provider, dos, func.count(),
        func.coalesce(func.sum(case((status == "attested", 1), else_=0)), 0),
        func.coalesce(func.sum(case((status == "open", 1), else_=0)), 0),
        func.coalesce(func.sum(case((status == "amended", 1), else_=0)), 0),
    ).where(where).group_by(provider, dos)  # fmt: skip
    for p, d, n, attested, open_, amended in db.execute(by_status):
        out[(p, as_day(d))].update(encounters=n, attested=attested, unattested=open_, amended=amended)
    late = (
        select(provider, dos, func.count(func.distinct(ATT.c.encounter_id)))
        .select_from(ATT.join(ENC, ENC.c.id == ATT.c.encounter_id))
        .where(ATT.c.late.is_(True), ATT.c.status == "valid", where)
        .group_by(provider, dos)
    )
    for p, d, n in db.execute(late):
        out[(p, as_day(d))]["attested_late"] = n
    for p, d, n in db.execute(_changes_kept(log_id, where) if kept else _changes_after(log_id, where)):
        out[(p, as_day(d))]["changes_after_attestation"] = n
    return {k: v for k, v in out.items() if v["encounters"]}


def _changes_after(log_id: str, where: ColumnElement[bool]) -> Any:
    provider, dos = ENC.c.rendering_provider_id, ENC.c.date_of_service
    first = (
        select(LED.c.encounter_id, provider.label("provider_id"), dos.label("dos"),
               func.min(LED.c.seq).label("first_seq"))
        .select_from(ENC.join(LED, ENC.c.id == LED.c.encounter_id))
        .where(LED.c.log_id == log_id, LED.c.type == "encounter.attest", LED.c.outcome == "allowed", where)
        .group_by(LED.c.encounter_id, provider, dos)
        .subquery("first_attest")
    )  # fmt: skip
    later = and_(LED.c.encounter_id == first.c.encounter_id, LED.c.seq > first.c.first_seq)
    return (
        select(first.c.provider_id, first.c.dos, func.count())
        .select_from(first.join(LED, later))
        .where(LED.c.log_id == log_id, LED.c.type.in_(CODE_EVENTS), LED.c.outcome == "allowed")
        .group_by(first.c.provider_id, first.c.dos)
    )


def _changes_kept(log_id: str, where: ColumnElement[bool]) -> Any:
    provider, dos = ENC.c.rendering_provider_id, ENC.c.date_of_service
    return (
        select(provider, dos, func.count())
        .select_from(CHANGES.join(ENC, ENC.c.id == CHANGES.c.encounter_id))
        .where(CHANGES.c.log_id == log_id, where)
        .group_by(provider, dos)
    )


def author_lines(db: Db, keys: Sequence[Key] | None = None) -> dict[AuthorKey, int]:
    """Code lines per (provider, date of service, who entered them)."""
    provider, dos = ENC.c.rendering_provider_id, ENC.c.date_of_service
    stmt = (
        select(provider, dos, LINE.c.entered_by, func.count())
        .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
        .where(_keyed(provider, dos, keys))
        .group_by(provider, dos, LINE.c.entered_by)
    )
    return {(p, as_day(d), who): n for p, d, who, n in db.execute(stmt)}


def em_lines(db: Db, keys: Sequence[Key] | None = None) -> dict[CodeKey, int]:
    """Active CPT E/M lines per (provider, date of service, code)."""
    provider, dos = ENC.c.rendering_provider_id, ENC.c.date_of_service
    stmt = (
        select(provider, dos, LINE.c.code, func.count())
        .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
        .where(LINE.c.status == "active", LINE.c.system == "CPT", LINE.c.code.in_(EM_CODES))
        .where(_keyed(provider, dos, keys))
        .group_by(provider, dos, LINE.c.code)
    )
    return {(p, as_day(d), code): n for p, d, code, n in db.execute(stmt)}


def denied_attempts(db: Db, log_id: str) -> dict[DeniedKey, int]:
    """Denied events naming a provider, per `RollupDenied` key."""
    stmt = (
        select(
            LED.c.provider_id, LED.c.encounter_id, ENC.c.rendering_provider_id, ENC.c.date_of_service,
            func.date(LED.c.ts), func.count(),
        )
        .select_from(LED.outerjoin(ENC, ENC.c.id == LED.c.encounter_id))
        .where(LED.c.log_id == log_id, LED.c.outcome == "denied", LED.c.provider_id.is_not(None))
        .group_by(LED.c.provider_id, LED.c.encounter_id, ENC.c.rendering_provider_id, ENC.c.date_of_service,
                  func.date(LED.c.ts))
    )  # fmt: skip
    out: Counter[DeniedKey] = Counter()
    for named, encounter_id, owner, dos, day, n in db.execute(stmt):
        out[denied_key(named, encounter_id, (owner, as_day(dos)) if owner else None, as_day(day))] += n
    return dict(out)


def denied_key(named: str, encounter_id: str | None, encounter: Key | None, day: date) -> DeniedKey:
    if encounter_id is None:
        return (UNATTACHED, named, "", day)
    if encounter is None:
        return (ORPHAN, named, "", day)
    return (ON_ENCOUNTER, named, encounter[0], encounter[1])


def expected(db: Db, log_id: str) -> Rollups:
    return Rollups(encounter_counts(db, log_id), author_lines(db), denied_attempts(db, log_id), em_lines(db))


def stored(db: Db) -> Rollups:
    found = Rollups()
    for row in db.execute(select(PER_DAY)).mappings():
        found.per_day[(row["provider_id"], as_day(row["day"]))] = {c: row[c] for c in COUNTS}
    for p, d, who, n in db.execute(select(PER_AUTHOR.c.provider_id, PER_AUTHOR.c.day,
                                          PER_AUTHOR.c.entered_by, PER_AUTHOR.c.lines)):  # fmt: skip
        found.per_author[(p, as_day(d), who)] = n
    for kind, named, owner, d, n in db.execute(
        select(DENIED.c.kind, DENIED.c.provider_id, DENIED.c.encounter_provider_id, DENIED.c.day,
               DENIED.c.attempts)
    ):  # fmt: skip
        found.denied[(kind, named, owner, as_day(d))] = n
    for p, d, code, n in db.execute(select(PER_CODE.c.provider_id, PER_CODE.c.day, PER_CODE.c.code,
                                           PER_CODE.c.lines)):  # fmt: skip
        found.per_code[(p, as_day(d), code)] = n
    return found


# --- writing ---------------------------------------------------------------------------------------------


def _write(
    db: Db,
    per_day: Mapping[Key, Mapping[str, int]],
    per_author: Mapping[AuthorKey, int],
    per_code: Mapping[CodeKey, int],
) -> None:
    if per_code:
        lines = [{"provider_id": p, "day": d, "code": c, "lines": n} for (p, d, c), n in per_code.items()]
        db.execute(insert(PER_CODE), lines)
    if per_day:
        db.execute(insert(PER_DAY), [{"provider_id": p, "day": d, **c} for (p, d), c in per_day.items()])
    if per_author:
        rows = [
            {"provider_id": p, "day": d, "entered_by": who, "lines": n}
            for (p, d, who), n in per_author.items()
        ]
        db.execute(insert(PER_AUTHOR), rows)


def rebuild(db: Db, log_id: str) -> None:
    """Replace every roll-up row with the GROUP BYs' (the migration's backfill; bulk loads)."""
    present = _present(db)
    for table in (PER_DAY, PER_AUTHOR, PER_CODE, DENIED):
        if table.name in present:
            db.execute(delete(table))
    fresh = expected(db, log_id)
    codes = fresh.per_code if PER_CODE.name in present else {}
    _write(db, fresh.per_day, fresh.per_author, codes)
    if fresh.denied:
        db.execute(insert(DENIED), [_denied_row(k, n) for k, n in fresh.denied.items()])


def _present(db: Db) -> set[str]:
    """The roll-up tables this database has: migration 0011 rebuilds before 0015 adds the E/M table."""
    conn = db.connection() if isinstance(db, Session) else db
    return set(inspect(conn).get_table_names())


def _denied_row(key: DeniedKey, n: int) -> dict[str, Any]:
    kind, named, owner, day = key
    return {"kind": kind, "provider_id": named, "encounter_provider_id": owner, "day": day, "attempts": n}


def new_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The line ids of a batch of `code.add` alone (its other rows change no encounter): the case where
    `count_new_lines` may add to the roll-ups instead of recounting, unless a line turns out to be a
    change after attestation (see `record`). Empty for any other batch."""
    allowed = [r for r in rows if r["encounter_id"] and r["outcome"] == "allowed" and r["type"] not in READS]
    if allowed and all(r["type"] == "code.add" for r in allowed):
        return [r["subject_id"] for r in allowed]
    return []


def record(
    db: Db,
    log_id: str,
    rows: Sequence[Mapping[str, Any]],
    *,
    changes_added: Iterable[str] = (),
    counted_lines: Sequence[str] | None = None,
) -> None:
    """Bring the roll-ups up to date with ledger rows just inserted (their indexed columns), inside
    the appending transaction: the rows the events' writes changed are already flushed.
    `changes_added`: the encounters whose changes after attestation audit.ledger.changes has just kept.
    `counted_lines`: `new_lines(rows)`, for which the writer has already run `count_new_lines`
    (pipelined with the insert); if one of them is a change after attestation, the keys are
    recounted, which replaces what it added."""
    allowed = [r for r in rows if r["encounter_id"] and r["outcome"] == "allowed" and r["type"] not in READS]
    changed = {r["encounter_id"] for r in allowed}  # a refused attempt's work was rolled back
    denied = [r for r in rows if r["outcome"] == "denied" and r["provider_id"] is not None]
    lines = new_lines(rows) if counted_lines is None else counted_lines
    if lines and not changed & set(changes_added):
        if counted_lines is None:
            count_new_lines(db, lines)
        changed = set()
    if not changed and not denied:
        return
    keys = _encounter_keys(db, changed | {r["encounter_id"] for r in denied if r["encounter_id"]})
    _refresh(db, log_id, {keys[e] for e in changed if e in keys})
    bumps: Counter[DeniedKey] = Counter()
    for r in denied:
        eid = r["encounter_id"]
        bumps[denied_key(r["provider_id"], eid, keys.get(eid) if eid else None, as_day(r["ts"]))] += 1
    for key, n in sorted(bumps.items()):
        _bump(db, key, n)


def _encounter_keys(db: Db, encounter_ids: set[str]) -> dict[str, Key]:
    found: dict[str, Key] = {}
    ids = sorted(encounter_ids)
    for i in range(0, len(ids), CHUNK):
        stmt = select(ENC.c.id, ENC.c.rendering_provider_id, ENC.c.date_of_service).where(
            ENC.c.id.in_(ids[i : i + CHUNK])
        )
        found.update({eid: (p, as_day(d)) for eid, p, d in db.execute(stmt)})
    return found


def _refresh(db: Db, log_id: str, keys: set[Key]) -> None:
    for chunk in _chunks(keys):
        if not chunk:
            continue
        for table in (PER_DAY, PER_AUTHOR, PER_CODE):
            db.execute(delete(table).where(_keyed(table.c.provider_id, table.c.day, chunk)))
        counts = encounter_counts(db, log_id, chunk, kept=True)
        _write(db, counts, author_lines(db, chunk), em_lines(db, chunk))


def count_new_lines(db: Db, line_ids: Sequence[str]) -> None:
    """New lines on encounters with no attestation before them (a batch of `code.add` alone, none of
    them a change after attestation): no encounter changed status, so only the lines per author and the
    E/M lines grow, by what these lines add (two upserts instead of a recount of the key)."""
    for upsert in _new_line_upserts(_dialect(db)):
        db.execute(upsert, {"line_ids": list(line_ids)})


@lru_cache(maxsize=4)
def _new_line_upserts(dialect_name: str) -> tuple[Any, Any]:
    """The two upserts of `count_new_lines`, built once (they run under the log's lock)."""
    provider, dos = ENC.c.rendering_provider_id, ENC.c.date_of_service
    new = (
        select()
        .select_from(LINE.join(ENC, ENC.c.id == LINE.c.encounter_id))
        .where(LINE.c.id.in_(bindparam("line_ids", expanding=True)))
    )
    by_author = new.add_columns(provider, dos, LINE.c.entered_by, func.count())
    em = (LINE.c.status == "active", LINE.c.system == "CPT", LINE.c.code.in_(EM_CODES))
    by_code = new.add_columns(provider, dos, LINE.c.code, func.count()).where(*em)
    return (
        _adding(dialect_name, PER_AUTHOR, by_author.group_by(provider, dos, LINE.c.entered_by)),
        _adding(dialect_name, PER_CODE, by_code.group_by(provider, dos, LINE.c.code)),
    )


def _adding(dialect_name: str, table: Table, counts: Any) -> Any:
    """INSERT `counts` (the key's columns, then a count) into `table`, adding to `lines` where the row
    exists."""
    key = [c.name for c in table.primary_key.columns]
    stmt = conflict_insert(dialect_name, table).from_select([*key, "lines"], counts)
    return stmt.on_conflict_do_update(index_elements=key, set_={"lines": table.c.lines + stmt.excluded.lines})


def _dialect(db: Db) -> str:
    bind = db.get_bind() if isinstance(db, Session) else db
    return str(bind.dialect.name)


def _bump(db: Db, key: DeniedKey, n: int) -> None:
    """Add n to a denied count (appends are serialised per log, so no other writer races this)."""
    kind, named, owner, day = key
    match = and_(DENIED.c.kind == kind, DENIED.c.provider_id == named,
                 DENIED.c.encounter_provider_id == owner, DENIED.c.day == day)  # fmt: skip
    done = db.execute(update(DENIED).where(match).values(attempts=DENIED.c.attempts + n))
    if not done.rowcount:  # type: ignore[attr-defined]
        db.execute(insert(DENIED).values(**_denied_row(key, n)))


# --- verification ----------------------------------------------------------------------------------------


def problems(db: Db, log_id: str) -> Iterator[Problem]:
    """Every stored roll-up row that differs from the GROUP BY over the tables and the ledger, every
    row it lacks and every row it should not hold, named by table, key and count."""
    want, have = expected(db, log_id), stored(db)
    yield from _diff("rollup_provider_day", want.per_day, have.per_day)
    yield from _diff("rollup_provider_day_author", _lines(want.per_author), _lines(have.per_author))
    yield from _diff("rollup_denied", _attempts(want.denied), _attempts(have.denied))
    yield from _diff("rollup_provider_day_code", _lines(want.per_code), _lines(have.per_code))


def _lines(rows: Mapping[tuple[str, date, str], int]) -> dict[Any, dict[str, int]]:
    return {k: {"lines": n} for k, n in rows.items()}


def _attempts(rows: Mapping[DeniedKey, int]) -> dict[Any, dict[str, int]]:
    return {k: {"attempts": n} for k, n in rows.items()}


def row_id(key: tuple[Any, ...]) -> str:
    return "/".join(str(part) for part in key)


Rows = Mapping[Any, Mapping[str, int]]


def _diff(table: str, want: Rows, have: Rows) -> Iterator[Problem]:
    for key in sorted(set(want) | set(have), key=row_id):
        w, h = want.get(key), have.get(key)
        if h is None:
            yield Problem(ROLLUP, f"the {table} row the tables and the ledger imply is missing",
                          table=table, id=row_id(key))  # fmt: skip
        elif w is None:
            yield Problem(ROLLUP, f"no encounter or event accounts for this {table} row",
                          table=table, id=row_id(key))  # fmt: skip
        else:
            for name, value in w.items():
                if h.get(name) != value:
                    yield Problem(ROLLUP, f"{table}.{name} differs from the GROUP BY over the tables and "
                                  "the ledger", table=table, id=row_id(key), field=name, expected=value,
                                  found=h.get(name))  # fmt: skip
