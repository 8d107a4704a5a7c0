"""The tamper test's classes of direct database mutation, as a table (used by test_tamper.py).

Each class applies one random (seeded) mutation inside an open transaction whose append-only guards
are dropped, and says where verification must name it: a seq, a table row (and field), or the
signed checkpoint. A class the threat model cannot detect today is listed with `detectable=False`
and the reason; classes that need parts not built yet (the witness file) have no `apply` and say
what would add them, so they can be switched on where those parts are merged.
"""

from __future__ import annotations

import hashlib
import json
import random
import struct
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Table, delete, func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from audit.db import metadata
from audit.ledger import rollups
from audit.ledger.chain import canonical_json, rfc3339
from audit.ledger.columns import INDEXED_COLUMNS, indexed_values
from audit.ledger.events import ROW_TIME, Actor, EventDraft
from audit.ledger.problems import CHECKPOINT, Problem
from audit.ledger.reconcile import RECONCILED
from audit.ledger.replay_audits import AUDIT_TABLES
from audit.ledger.service import LEDGER
from tests.ledger.population import Population

CHECKPOINTS: Table = metadata.tables["checkpoint"]
# The population holds no coding audits: their tables' edits, forged and deleted rows are the cases of
# tests/coding_audit/test_reconcile_audits.py, on a whole audit loop run through the API.
STATE_TABLES = tuple(t for t in RECONCILED if t not in AUDIT_TABLES)
# Which rows an allowed event of each type writes (for the tail deletions' expected findings).
WRITES = {
    "user.create": "app_user",
    "encounter.create": "encounter",
    "code.add": "code_line",
    "code.change": "code_line",
    "code.void": "code_line",
    "encounter.attest": "attestation",
    "attestation.supersede": "attestation",
    "delegation.grant": "delegation",
    "delegation.revoke": "delegation",
    "engagement.open": "engagement",
    "engagement.revoke": "engagement",
    "encounter.flag": "encounter_note",
    "encounter.annotate": "encounter_note",
}
ALTERNATIVES = {  # realistic other values for enumerated fields
    ("code_line", "status"): ["active", "voided"],
    ("code_line", "entered_role"): ["coder", "provider", "integration"],
    ("encounter", "status"): ["open", "attested", "amended"],
    ("attestation", "status"): ["valid", "superseded"],
    ("encounter_note", "kind"): ["flag", "annotation"],
    ("app_user", "roles"): [["admin"], ["coder", "admin"], ["provider"], ["compliance"]],
}


@dataclass(frozen=True)
class Expect:
    """Where verification must name the mutation: a seq, one of some table rows (and a field), or
    the signed checkpoint."""

    seq: int | None = None
    rows: frozenset[tuple[str, str]] = frozenset()
    field: str | None = None
    checkpoint: bool = False

    def named_by(self, problems: list[Problem]) -> bool:
        if self.checkpoint:
            return any(p.kind == CHECKPOINT for p in problems)
        if self.seq is not None:
            return any(p.seq == self.seq and (self.field is None or p.field == self.field) for p in problems)
        return any(
            (p.table, p.id) in self.rows and (self.field is None or p.field == self.field) for p in problems
        )


def row(table: str, row_id: str, name: str | None = None) -> Expect:
    return Expect(rows=frozenset({(table, row_id)}), field=name)


@dataclass
class Ctx:
    conn: Connection
    rng: random.Random
    pop: Population
    log_id: str
    witness: Path | None = None  # the working copy of the witness file this mutation may change

    # -- reading -----------------------------------------------------------------------------------

    def head(self) -> int:
        return int(self.conn.execute(select(func.max(LEDGER.c.seq))).scalar_one())

    def body(self, seq: int) -> dict[str, Any]:
        payload = self.conn.execute(select(LEDGER.c.payload).where(LEDGER.c.seq == seq)).scalar_one()
        return dict(json.loads(bytes(payload)))

    def seqs(self, *types: str, lo: int = 0, hi: int | None = None, outcome: str | None = None) -> list[int]:
        stmt = select(LEDGER.c.seq).where(LEDGER.c.seq >= lo).order_by(LEDGER.c.seq)
        if types:
            stmt = stmt.where(LEDGER.c.type.in_(types))
        if hi is not None:
            stmt = stmt.where(LEDGER.c.seq <= hi)
        if outcome:
            stmt = stmt.where(LEDGER.c.outcome == outcome)
        return [int(s) for s in self.conn.execute(stmt).scalars()]

    def ids(self, table: str) -> list[str]:
        t = metadata.tables[table]
        return [str(i) for i in self.conn.execute(select(t.c.id).order_by(t.c.id)).scalars()]

    def record(self, table: str, row_id: str) -> dict[str, Any]:
        t = metadata.tables[table]
        return dict(self.conn.execute(select(t).where(t.c.id == row_id)).mappings().one())

    def user(self, key: str) -> Any:
        return self.pop.users[key]

    # -- writing the ledger behind its writer ------------------------------------------------------------

    def set_ledger(self, at: int, /, **values: Any) -> None:
        assert self.conn.execute(update(LEDGER).where(LEDGER.c.seq == at).values(**values)).rowcount == 1

    def rechain(self, first: int) -> None:
        """Recompute every leaf and chain hash from `first` to the head, as a careful forger would."""
        prev = (
            bytes(
                self.conn.execute(select(LEDGER.c.chain_hash).where(LEDGER.c.seq == first - 1)).scalar_one()
            )
            if first
            else bytes(32)
        )
        rows = self.conn.execute(
            select(LEDGER.c.seq, LEDGER.c.payload).where(LEDGER.c.seq >= first).order_by(LEDGER.c.seq)
        ).all()
        for seq, payload in rows:
            leaf = hashlib.sha256(b"\x00" + bytes(payload)).digest()
            prev = hashlib.sha256(b"\x02" + prev + struct.pack(">Q", seq) + leaf).digest()
            self.set_ledger(seq, leaf_hash=leaf, chain_hash=prev)

    def rewrite(self, seq: int, body: dict[str, Any]) -> None:
        """A payload rewritten with its columns to match and the chain recomputed to the head."""
        values = dict(zip(INDEXED_COLUMNS, indexed_values(body), strict=True))
        values["ts"] = datetime.fromisoformat(values["ts"])
        self.set_ledger(seq, payload=canonical_json(body), **{k: v for k, v in values.items() if k != "seq"})
        self.rechain(seq)

    def append(self, draft: EventDraft, *, ts: datetime | None = None) -> tuple[int, dict[str, Any]]:
        """A forged event appended at the head with a correctly recomputed chain."""
        head = self.head()
        prev = bytes(self.conn.execute(select(LEDGER.c.chain_hash).where(LEDGER.c.seq == head)).scalar_one())
        seq, moment = head + 1, ts or datetime.now(UTC)
        body = draft.payload(log_id=self.log_id, seq=seq, ts=rfc3339(moment), event_id=str(uuid.uuid4()))
        payload = canonical_json(body)
        leaf = hashlib.sha256(b"\x00" + payload).digest()
        chained = hashlib.sha256(b"\x02" + prev + struct.pack(">Q", seq) + leaf).digest()
        values = dict(zip(INDEXED_COLUMNS, indexed_values(body), strict=True))
        values.update(ts=moment, payload=payload, leaf_hash=leaf, chain_hash=chained)
        self.conn.execute(insert(LEDGER).values(**values))
        return seq, body

    def flag_after_checkpoint(self) -> int:
        """Compliance flags an encounter through the real service (the ledger ends with reads after
        its last checkpoint, so this is the state event after it); returns the event's seq."""
        from audit.encounter.oversight import add_note
        from audit.uow import unit_of_work

        encounter = self.rng.choice(self.ids("encounter"))
        with unit_of_work(self.conn) as session:
            add_note(
                session, user=self.user("compliance"), encounter_id=encounter, kind="flag", text="late look"
            )
        return self.head()

    def delete_tail(self, first: int, *, checkpoints_too: bool) -> set[tuple[str, str]]:
        """Delete every event from `first` on; returns the rows those events wrote."""
        written = set()
        for seq in self.seqs(*WRITES, lo=first, outcome="allowed"):
            body = self.body(seq)
            written.add((WRITES[body["type"]], body["subject"]["id"]))
        self.conn.execute(delete(LEDGER).where(LEDGER.c.seq >= first))
        if checkpoints_too:
            self.conn.execute(delete(CHECKPOINTS).where(CHECKPOINTS.c.tree_size > first))
        return written


# -- chain classes ----------------------------------------------------------------------------------------


def payload_edit(c: Ctx) -> Expect:
    seq = c.rng.randrange(c.head() + 1)
    body = c.body(seq)
    body["reason"] = f"{body.get('reason') or ''} (edited)"
    c.set_ledger(seq, payload=canonical_json(body))
    return Expect(seq=seq)


def payload_rewrite_before_checkpoint(c: Ctx) -> Expect:
    seq = c.rng.randrange(c.pop.c[-1])
    body = c.body(seq)
    body["reason"] = "rewritten with the chain recomputed"
    c.rewrite(seq, body)
    return Expect(checkpoint=True)


def state_rewrite_after_checkpoint(c: Ctx) -> Expect:
    seq = c.flag_after_checkpoint()
    body = c.body(seq)
    body["after"] = {**body["after"], "text": "nothing to review"}
    c.rewrite(seq, body)
    return row("encounter_note", body["subject"]["id"], "text")


def leaf_edit(c: Ctx) -> Expect:
    seq = c.rng.randrange(c.head() + 1)
    c.set_ledger(seq, leaf_hash=c.rng.randbytes(32))
    return Expect(seq=seq)


def chain_edit(c: Ctx) -> Expect:
    seq = c.rng.randrange(c.head() + 1)
    c.set_ledger(seq, chain_hash=c.rng.randbytes(32))
    return Expect(seq=seq)


def row_delete(c: Ctx) -> Expect:
    seq = c.rng.randrange(c.head())  # not the last: that is a tail deletion
    c.conn.execute(delete(LEDGER).where(LEDGER.c.seq == seq))
    return Expect(seq=seq)


def row_reorder(c: Ctx) -> Expect:
    seq = c.rng.randrange(c.head())
    cols = [LEDGER.c[n] for n in (*INDEXED_COLUMNS[2:], "payload", "leaf_hash", "chain_hash")]
    a, b = (c.conn.execute(select(*cols).where(LEDGER.c.seq == s)).mappings().one() for s in (seq, seq + 1))
    c.set_ledger(seq, event_id="swap-a")
    c.set_ledger(seq + 1, event_id="swap-b")
    c.set_ledger(seq, **dict(b))
    c.set_ledger(seq + 1, **dict(a))
    return Expect(seq=seq)


def row_insert(c: Ctx) -> Expect:
    seq = c.rng.randrange(1, c.head())
    for s in range(c.head(), seq - 1, -1):
        c.set_ledger(s, seq=s + 1)
    donor = dict(c.conn.execute(select(LEDGER).where(LEDGER.c.seq == seq + 1)).mappings().one())
    body = {**c.body(seq + 1), "seq": seq, "event_id": str(uuid.uuid4()), "reason": "inserted"}
    payload = canonical_json(body)
    donor.update(seq=seq, event_id=body["event_id"], payload=payload)
    donor["leaf_hash"] = hashlib.sha256(b"\x00" + payload).digest()
    c.conn.execute(insert(LEDGER).values(**donor))
    return Expect(seq=seq)


# -- indexed columns ---------------------------------------------------------------------------------------


def column_edit(column: str) -> Callable[[Ctx], Expect]:
    def apply(c: Ctx) -> Expect:
        seq = c.rng.randrange(c.head() + 1)
        current = c.conn.execute(select(LEDGER.c[column]).where(LEDGER.c.seq == seq)).scalar_one()
        users = [u for u in c.ids("app_user") if u != current]
        value: Callable[[], Any] = {
            "log_id": lambda: "another-log",
            "seq": lambda: c.head() + 1000 + seq,
            "event_id": lambda: str(uuid.uuid4()),
            "ts": lambda: current + timedelta(minutes=c.rng.randint(1, 600)),
            "type": lambda: "report.view" if current != "report.view" else "fhir.search",
            "actor_id": lambda: c.rng.choice(users),
            "actor_role": lambda: "compliance" if current != "compliance" else "admin",
            "on_behalf_of": lambda: c.rng.choice(users),
            "subject_type": lambda: "ledger" if current != "ledger" else "encounter",
            "subject_id": lambda: str(uuid.uuid4()),
            "encounter_id": lambda: c.rng.choice([e for e in c.ids("encounter") if e != current]),
            "provider_id": lambda: c.rng.choice(users),
            "outcome": lambda: "denied" if current == "allowed" else "allowed",
        }[column]
        c.set_ledger(seq, **{column: value()})
        if column in ("log_id", "seq"):  # the row leaves its place in the chain
            return Expect(seq=seq)
        return Expect(seq=seq, field=column)

    return apply


# -- tail deletions ---------------------------------------------------------------------------------------


def tail_covered_by_checkpoint(c: Ctx) -> Expect:
    c.delete_tail(c.rng.randrange(c.pop.s[0][0], c.pop.c[-1]), checkpoints_too=False)
    return Expect(checkpoint=True)


def tail_with_state_after_checkpoint(c: Ctx) -> Expect:
    flagged = c.flag_after_checkpoint()
    first = c.rng.randint(c.pop.r[-1][0], flagged)
    return Expect(rows=frozenset(c.delete_tail(first, checkpoints_too=False)))


def tail_of_reads_after_checkpoint(c: Ctx) -> Expect:
    c.delete_tail(c.rng.randint(*c.pop.r[-1]), checkpoints_too=False)
    return Expect(checkpoint=True)


def tail_with_state_and_checkpoint_rows(c: Ctx) -> Expect:
    """From a state event on (the tail may end with refusals and reads that wrote nothing)."""
    first, last = c.rng.choice(c.pop.s)
    start = c.rng.choice(c.seqs(*WRITES, lo=first, hi=last, outcome="allowed"))
    return Expect(rows=frozenset(c.delete_tail(start, checkpoints_too=True)))


def tail_of_reads_and_checkpoint_rows(c: Ctx) -> Expect:
    """Only read events and the checkpoint between them go: no state row is left without its event,
    but the deleted checkpoint is still in the witness file outside the database."""
    c.delete_tail(c.rng.randint(*c.pop.r[-2]), checkpoints_too=True)
    return Expect(checkpoint=True)


def witness_last_line_deleted(c: Ctx) -> Expect:
    """The witness file loses its last line (the newest note's signature), or, half the time, its
    whole newest note: either way it no longer holds every checkpoint the database has."""
    assert c.witness is not None
    text = c.witness.read_text(encoding="utf-8")
    if c.rng.random() < 0.5:
        cut = text.rstrip("\n").rfind("\n")
        c.witness.write_text(text[: cut + 1], encoding="utf-8")
    else:
        cut = text.rstrip("\n").rfind("\n\n")
        c.witness.write_text(text[: cut + 1], encoding="utf-8")
    return Expect(checkpoint=True)


# -- forged appends with a recomputed chain ---------------------------------------------------------


def _line_state(record: dict[str, Any]) -> dict[str, Any]:
    names = (
        "id",
        "system",
        "code",
        "modifiers",
        "units",
        "diagnosis_pointers",
        "version",
        "status",
        "void_reason",
    )
    return {n: record[n] for n in names}


def forged_state_append(c: Ctx) -> Expect:
    """An event that changes state, appended with a valid chain, the tables left as they were."""
    kind = c.rng.choice(["change", "add", "roles", "revoke", "note"])
    coder, admin = c.user("coder1"), c.user("admin")
    if kind == "change":
        line = c.rng.choice([i for i in c.ids("code_line") if c.record("code_line", i)["status"] == "active"])
        record = c.record("code_line", line)
        before = _line_state(record)
        after = {
            **before,
            "code": "99205" if before["code"] != "99205" else "99204",
            "version": before["version"] + 1,
        }
        c.append(_code_event("code.change", c, record, before, after))
        return row("code_line", line)
    if kind == "add":
        encounter = c.record("encounter", c.rng.choice(c.ids("encounter")))
        line = str(uuid.uuid4())
        after = {
            "id": line,
            "system": "CPT",
            "code": "99215",
            "modifiers": [],
            "units": 1,
            "diagnosis_pointers": [],
            "version": 1,
            "status": "active",
            "void_reason": None,
        }
        c.append(
            EventDraft(
                type="code.add",
                actor=coder.actor("coder"),
                subject_type="code_line",
                subject_id=line,
                encounter_id=encounter["id"],
                provider_id=encounter["rendering_provider_id"],
                after=after,
                detail=dict(ROW_TIME),
            )
        )
        return row("code_line", line)
    if kind == "roles":
        target = c.record("app_user", c.user("coder2").id)
        view = {k: target[k] for k in ("id", "username", "display_name", "npi", "credential")}
        view["roles"] = sorted(target["roles"])
        c.append(
            EventDraft(
                type="user.roles",
                actor=admin.actor("admin"),
                subject_type="user",
                subject_id=target["id"],
                before=view,
                after={**view, "roles": ["admin", "coder"]},
            )
        )
        return row("app_user", target["id"], "roles")
    if kind == "revoke":
        live = [d for d in c.ids("delegation") if c.record("delegation", d)["revoked_at"] is None]
        d = c.record("delegation", c.rng.choice(live))
        state = _delegation_state(d)
        after = {
            **state,
            "revoked_at": datetime.now(UTC).isoformat(),
            "revoked_by": c.user("compliance").id,
            "reason": "forged",
        }
        c.append(
            EventDraft(
                type="delegation.revoke",
                actor=c.user("compliance").actor("compliance"),
                subject_type="delegation",
                subject_id=d["id"],
                provider_id=d["provider_id"],
                before=state,
                after=after,
            )
        )
        return row("delegation", d["id"])
    encounter = c.record("encounter", c.rng.choice(c.ids("encounter")))
    note = str(uuid.uuid4())
    c.append(
        EventDraft(
            type="encounter.flag",
            actor=c.user("compliance").actor("compliance"),
            subject_type="encounter_note",
            subject_id=note,
            encounter_id=encounter["id"],
            provider_id=encounter["rendering_provider_id"],
            after={"kind": "flag", "text": "x"},
            detail=dict(ROW_TIME),
        )
    )
    return row("encounter_note", note)


def _code_event(kind: str, c: Ctx, record: dict[str, Any], before: Any, after: Any) -> EventDraft:
    encounter = c.record("encounter", record["encounter_id"])
    actor_user = c.record("app_user", record["entered_by"])
    return EventDraft(
        type=kind,
        actor=Actor(actor_user["id"], record["entered_role"], actor_user["username"]),
        on_behalf_of={
            "user_id": encounter["rendering_provider_id"],
            "role": "provider",
            "delegation_id": record["delegation_id"],
        }
        if record["delegation_id"]
        else None,
        subject_type="code_line",
        subject_id=record["id"],
        encounter_id=encounter["id"],
        provider_id=encounter["rendering_provider_id"],
        reason="forged",
        before=before,
        after=after,
        detail=dict(ROW_TIME),
    )


def _delegation_state(d: dict[str, Any]) -> dict[str, Any]:
    def iso(v: Any) -> Any:
        return v.isoformat() if v is not None else None

    return {
        "id": d["id"],
        "provider_id": d["provider_id"],
        "coder_id": d["coder_id"],
        "code_systems": sorted(d["code_systems"]),
        "valid_from": iso(d["valid_from"]),
        "valid_until": iso(d["valid_until"]),
        "dos_from": iso(d["dos_from"]),
        "dos_until": iso(d["dos_until"]),
        "revoked_at": iso(d["revoked_at"]),
        "revoked_by": d["revoked_by"],
        "reason": d["reason"],
    }


def forged_actor_append(c: Ctx) -> Expect:
    """A forged event naming an actor the ledger never created, or a role it never gave them."""
    actor = c.rng.choice(
        [
            Actor(str(uuid.uuid4()), "compliance"),
            c.user("coder1").actor("compliance"),
            c.user("auditor1").actor("admin"),
            c.user("provider1").actor("coder"),
        ]
    )
    seq, _ = c.append(EventDraft(type="report.view", actor=actor, subject_type="report", subject_id="x"))
    return Expect(seq=seq)


def forged_read_append(c: Ctx) -> Expect:
    """A read event by a real user in a role they hold: it changes no state, so nothing contradicts it."""
    officer = c.user("compliance")
    seq, _ = c.append(
        EventDraft(
            type="report.view",
            actor=officer.actor("compliance"),
            subject_type="report",
            subject_id="provider-responsibility",
        )
    )
    return Expect(seq=seq)


def forged_state_with_rows(c: Ctx) -> Expect:
    """A forged change written the way the application writes one: event and row together."""
    line = c.rng.choice([i for i in c.ids("code_line") if c.record("code_line", i)["status"] == "active"])
    record = c.record("code_line", line)
    before = _line_state(record)
    after = {
        **before,
        "code": "99205" if before["code"] != "99205" else "99204",
        "version": before["version"] + 1,
    }
    moment = datetime.now(UTC)
    c.append(_code_event("code.change", c, record, before, after), ts=moment)
    table = metadata.tables["code_line"]
    c.conn.execute(
        update(table)
        .where(table.c.id == line)
        .values(
            code=after["code"], version=after["version"], changed_by=record["entered_by"], changed_at=moment
        )
    )
    return row("code_line", line, "code")


def forged_checkpoint(c: Ctx) -> Expect:
    latest = (
        c.conn.execute(select(CHECKPOINTS).order_by(CHECKPOINTS.c.tree_size.desc()).limit(1)).mappings().one()
    )
    size = c.head() + 1
    lines = latest["note"].split("\n")
    lines[1] = str(size)
    c.conn.execute(
        insert(CHECKPOINTS).values(
            log_id=latest["log_id"],
            tree_size=size,
            root_hash=latest["root_hash"],
            chain_hash=latest["chain_hash"],
            note="\n".join(lines),
            created_at=datetime.now(UTC),
        )
    )
    return Expect(checkpoint=True)


def forged_frontier(c: Ctx) -> Expect:
    """A stored Merkle frontier (the cache incremental verification starts from) at a size no
    checkpoint has, with plausible nodes (one 32-byte root per set bit of the size) that are not the
    tree's right edge. Full verification rebuilds the tree and must name the row."""
    frontier = metadata.tables["merkle_frontier"]
    taken = set(c.conn.execute(select(frontier.c.tree_size)).scalars())
    size = c.rng.choice([n for n in range(1, c.head() + 1) if n not in taken])
    nodes = c.rng.randbytes(32 * bin(size).count("1"))
    c.conn.execute(
        insert(frontier).values(log_id=c.log_id, tree_size=size, nodes=nodes, created_at=datetime.now(UTC))
    )
    return row("merkle_frontier", str(size), "nodes")


# -- state tables ------------------------------------------------------------------------------------------


def state_edit(table_name: str) -> Callable[[Ctx], Expect]:
    def apply(c: Ctx) -> Expect:
        table = metadata.tables[table_name]
        row_id = c.rng.choice(c.ids(table_name))
        name = c.rng.choice(RECONCILED[table_name])
        current = c.record(table_name, row_id)[name]
        value = _other_value(c, table, name, current)
        c.conn.execute(update(table).where(table.c.id == row_id).values(**{name: value}))
        return row(table_name, row_id, name)

    return apply


def _other_value(c: Ctx, table: Table, name: str, current: Any) -> Any:
    options = [v for v in ALTERNATIVES.get((table.name, name), []) if v != current]
    if options:
        return c.rng.choice(options)
    column = table.c[name]
    for fk in column.foreign_keys:
        return c.rng.choice([i for i in c.ids(fk.column.table.name) if i != current])
    if name == "password_hash":
        return "$argon2id$v=19$m=65536,t=3,p=4$forged$forged"
    if isinstance(current, bool):
        return not current
    if isinstance(current, int):
        return current + c.rng.randint(1, 5)
    if isinstance(current, datetime):
        return current + timedelta(minutes=c.rng.randint(1, 600))
    if isinstance(current, date):
        return current + timedelta(days=c.rng.randint(1, 30))
    if isinstance(current, list):
        return [*current, 9 if name == "diagnosis_pointers" else "X9"]
    if current is None:
        kind = type(column.type).__name__
        if "DateTime" in kind:
            return datetime.now(UTC)
        if kind == "Date":
            return date.today()
        return str(uuid.uuid4()) if name.endswith(("_id", "_by")) else "tampered"
    return f"{current[: (column.type.length or 99) - 1]}~"  # type: ignore[attr-defined]


def state_insert(table_name: str) -> Callable[[Ctx], Expect]:
    def apply(c: Ctx) -> Expect:
        table = metadata.tables[table_name]
        copy = c.record(table_name, c.rng.choice(c.ids(table_name)))
        copy["id"] = str(uuid.uuid4())
        if table_name == "app_user":
            copy["username"] = f"shadow.{copy['id'][:8]}"
        if table_name == "encounter":
            copy["external_id"] = f"SHADOW-{copy['id'][:8]}"
        c.conn.execute(insert(table).values(**copy))
        return row(table_name, copy["id"])

    return apply


def state_delete(table_name: str) -> Callable[[Ctx], Expect]:
    def apply(c: Ctx) -> Expect:
        table = metadata.tables[table_name]
        candidates = c.ids(table_name)
        c.rng.shuffle(candidates)
        for row_id in candidates:
            savepoint = c.conn.begin_nested()
            try:
                if table_name == "encounter":  # its lines, signatures and notes go with it
                    for child in ("code_line", "attestation", "encounter_note"):
                        t = metadata.tables[child]
                        c.conn.execute(delete(t).where(t.c.encounter_id == row_id))
                c.conn.execute(delete(table).where(table.c.id == row_id))
                savepoint.commit()
                return row(table_name, row_id)
            except IntegrityError:  # still referenced (a user who acted): try another
                savepoint.rollback()
        raise AssertionError(f"no {table_name} row could be deleted")

    return apply


def _rollup_row(c: Ctx) -> tuple[Table, dict[str, Any], list[str]]:
    """A random stored row of a random non-empty roll-up table, and its key columns."""
    tables = [t for t in (rollups.PER_DAY, rollups.PER_AUTHOR, rollups.DENIED)
              if c.conn.execute(select(func.count()).select_from(t)).scalar_one()]  # fmt: skip
    table = c.rng.choice(tables)
    found = dict(c.rng.choice(c.conn.execute(select(table).order_by(*table.primary_key)).mappings().all()))
    return table, found, [col.name for col in table.primary_key]


def rollup_edited(c: Ctx) -> Expect:
    """A report roll-up's count changed (a forged figure): the reports would show it."""
    table, found, key = _rollup_row(c)
    name = c.rng.choice([col.name for col in table.columns if col.name not in key])
    match = [table.c[k] == found[k] for k in key]
    c.conn.execute(update(table).where(*match).values({name: table.c[name] + c.rng.randint(1, 5)}))
    return row(table.name, rollups.row_id(tuple(found[k] for k in key)), name)


def rollup_deleted(c: Ctx) -> Expect:
    """A report roll-up row removed (stale roll-ups: counts that no longer follow the ledger)."""
    table, found, key = _rollup_row(c)
    c.conn.execute(delete(table).where(*(table.c[k] == found[k] for k in key)))
    return row(table.name, rollups.row_id(tuple(found[k] for k in key)))


def token_minted(c: Ctx) -> Expect:
    """A bearer token for any user (the admin, say) written straight into api_token."""
    table = metadata.tables["api_token"]
    token_id, now = str(uuid.uuid4()), datetime.now(UTC)
    user = c.user(c.rng.choice(["admin", "compliance", "provider1", "coder2"])).id
    c.conn.execute(
        insert(table).values(
            id=token_id,
            token_hash=hashlib.sha256(token_id.encode()).hexdigest(),
            user_id=user,
            issued_at=now,
            expires_at=now + timedelta(hours=1),
        )
    )
    return row("api_token", token_id)


@dataclass(frozen=True)
class TamperClass:
    name: str
    apply: Callable[[Ctx], Expect] | None
    detectable: bool = True
    gap: str = ""  # for what is not detected today: why, and what would detect it


CLASSES: list[TamperClass] = [
    TamperClass("payload edited", payload_edit),
    TamperClass(
        "payload rewritten, chain recomputed (covered by a checkpoint)", payload_rewrite_before_checkpoint
    ),
    TamperClass(
        "state event rewritten after the checkpoint, chain recomputed", state_rewrite_after_checkpoint
    ),
    TamperClass("leaf hash edited", leaf_edit),
    TamperClass("chain hash edited", chain_edit),
    TamperClass("row deleted", row_delete),
    TamperClass("rows reordered", row_reorder),
    TamperClass("row inserted", row_insert),
    *(TamperClass(f"indexed column {name} edited", column_edit(name)) for name in INDEXED_COLUMNS),
    TamperClass("tail deleted (covered by the checkpoint)", tail_covered_by_checkpoint),
    TamperClass("tail deleted after the checkpoint (state events)", tail_with_state_after_checkpoint),
    TamperClass(
        "tail deleted with the newer checkpoint rows (state events)", tail_with_state_and_checkpoint_rows
    ),
    TamperClass(
        "tail deleted after the checkpoint (read events only)",
        tail_of_reads_after_checkpoint,
        detectable=False,
        gap="no state depends on them and no checkpoint covers them yet: while serving, a checkpoint is "
        "signed and witnessed every second, so this is at most the last second's reads",
    ),
    TamperClass(
        "tail deleted with the newer checkpoint rows (read events only)", tail_of_reads_and_checkpoint_rows
    ),
    TamperClass("witness file's last line or newest note deleted", witness_last_line_deleted),
    TamperClass("forged append that changes state, tables untouched", forged_state_append),
    TamperClass("forged append by an unknown actor or in a role never granted", forged_actor_append),
    TamperClass("forged checkpoint row", forged_checkpoint),
    TamperClass("forged Merkle frontier row (the incremental cache)", forged_frontier),
    TamperClass(
        "forged append of a read event (real user, granted role)",
        forged_read_append,
        detectable=False,
        gap="the app's database role may append what the app appends; only a signature by a key the "
        "database role cannot read would tell the two apart",
    ),
    TamperClass(
        "forged state change with its row written to match",
        forged_state_with_rows,
        detectable=False,
        gap="indistinguishable from the application's own write: the app's database role is the app",
    ),
    TamperClass("api_token minted with no sign-in", token_minted),
    TamperClass("report roll-up count edited", rollup_edited),
    TamperClass("report roll-up row deleted", rollup_deleted),
    *(TamperClass(f"{t} row edited", state_edit(t)) for t in STATE_TABLES),
    *(TamperClass(f"{t} row inserted with no event", state_insert(t)) for t in STATE_TABLES),
    *(TamperClass(f"{t} row deleted with no event", state_delete(t)) for t in STATE_TABLES),
]


@dataclass
class Tally:
    total: int = 0
    caught: int = 0
    named: int = 0
    misses: list[str] = field(default_factory=list)
