"""Replay the ledger into the state it implies (pure: no session, no clock).

Each allowed state-changing event sets the rows it wrote: users, encounters and their status,
code lines with every version, attestations, delegations, engagements, compliance notes, and the
coding audits with their findings, responses, signatures and follow-up (audit.ledger.replay_audits). The
result is compared with the tables by `audit.ledger.reconcile`. Along the way the ledger is checked
against itself: a change to a line it never added, a `before` that is not the state replayed so far,
an attestation whose digest is not the code set it implies, an actor who is not a user or acts in
a role the ledger never gave them. Those are EVENT problems, named by seq.

Events written before rows took their times from their event (`detail.row_time == "ts"`) and users
created before events carried account digests cannot vouch for those fields: they hold LEGACY, which
the comparison counts as unreconciled and never guesses.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from audit.ledger.digest import code_set_digest
from audit.ledger.problems import EVENT, Problem
from audit.ledger.replay_audits import AUDIT_TABLES, AuditReplay
from audit.ledger.shapes import ShapeError, an_id, pick
from audit.ledger.shapes import as_dict as _dict
from audit.ledger.shapes import get as _get

LEGACY = "<legacy>"  # an expected value the ledger does not hold (older event); counted, not compared

# The fields of a code line as its events record them (audit.encounter.views.line_state).
LINE_STATE = (
    "system",
    "code",
    "modifiers",
    "units",
    "diagnosis_pointers",
    "version",
    "status",
    "void_reason",
)
DELEGATION_STATE = (
    "provider_id",
    "coder_id",
    "code_systems",
    "valid_from",
    "valid_until",
    "dos_from",
    "dos_until",
    "revoked_at",
    "revoked_by",
    "reason",
)
ENGAGEMENT_STATE = (
    "auditor_id",
    "date_from",
    "date_to",
    "provider_ids",
    "expires_at",
    "purpose",
    "revoked_at",
    "revoked_by",
)
USER_PUBLIC = ("username", "display_name", "roles", "npi", "credential")
ACCOUNT = ("is_active", "credential_active", "password_sha256")
ATTESTATION_STATE = (
    "encounter_id",
    "signer_id",
    "printed_name",
    "credential",
    "npi",
    "signed_at",
    "meaning",
    "code_set_digest",
    "policy_version",
    "late",
    "status",
)
DATETIMES = {"valid_from", "valid_until", "revoked_at", "expires_at", "signed_at", "superseded_at"}
DATES = {"dos_from", "dos_until", "date_from", "date_to", "date_of_service"}

Row = dict[str, Any]
TABLES = (
    "app_user",
    "encounter",
    "code_line",
    "attestation",
    "delegation",
    "engagement",
    "encounter_note",
    *AUDIT_TABLES,
)


def _id(body: dict[str, Any], key: str = "subject") -> str:
    """The event's subject id (or its `encounter_id`), which a state event cannot lack."""
    value = _get(body.get("subject"), "id") if key == "subject" else body.get(key)
    return an_id(value, f"{key} id")


def typed(name: str, value: Any) -> Any:
    """A payload value as the table holds it: datetimes and dates parsed, the rest as is."""
    if value is None or value == LEGACY:
        return value
    if name in DATETIMES:
        return datetime.fromisoformat(value)
    if name in DATES:
        return date.fromisoformat(value)
    return value


def _pick(source: dict[str, Any], names: tuple[str, ...]) -> Row:
    """The named fields, dates and datetimes parsed as the tables hold them."""
    row = pick(source, names)
    converted = _TYPED.get(names)
    if converted is None:
        converted = _TYPED[names] = tuple(n for n in names if n in DATETIMES or n in DATES)
    for name in converted:
        row[name] = typed(name, row[name])
    return row


_TYPED: dict[tuple[str, ...], tuple[str, ...]] = {}  # field tuple -> its date and datetime fields


class Replay:
    """Feed every event in seq order; then `tables` holds the expected rows by table and id."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Row]] = {table: {} for table in TABLES}
        self.last_seq: dict[tuple[str, str], int] = {}  # (table, id) -> seq of the event that last set it
        self.lines_of: dict[str, list[str]] = {}  # encounter id -> its line ids
        self.roles: dict[str, frozenset[str]] = {}  # user id -> the roles the ledger gave them
        self.signins: set[tuple[str, datetime]] = set()  # (user id, ts) of every allowed sign-in
        self.problems: list[Problem] = []
        self._handlers: dict[str, Callable[[int, dict[str, Any]], None]] = {
            "user.create": self._user,
            "encounter.create": self._encounter,
            "code.add": self._code_add,
            "code.change": self._code_version,
            "code.void": self._code_version,
            "encounter.attest": self._attest,
            "attestation.supersede": self._supersede,
            "delegation.grant": self._delegation_grant,
            "delegation.revoke": self._delegation_revoke,
            "engagement.open": self._engagement_open,
            "engagement.revoke": self._engagement_revoke,
            "encounter.flag": self._note,
            "encounter.annotate": self._note,
            "encounter.resolve_flag": self._resolution,
            "auth.signin": self._signin,
            **AuditReplay(self).handlers(),
        }

    # -- the feed ------------------------------------------------------------------------------

    def feed(self, seq: int, body: Any) -> None:
        if not isinstance(body, dict):
            return  # the chain check names a payload that is not a JSON object
        try:
            self._check_actor(seq, body)
            self._check_provider(seq, body)
            if body.get("outcome") != "allowed":
                return
            handler = self._handlers.get(body.get("type"))  # type: ignore[arg-type]
            if handler is None and _get(body.get("subject"), "type") == "user" and body.get("after"):
                handler = self._user  # user-admin events (audit.user.records.user_event)
            if handler is not None:
                handler(seq, body)
        except (ShapeError, TypeError, ValueError, KeyError) as exc:
            self._event(seq, f"a {body.get('type')} event without the shape it needs: {exc}")

    def _event(self, seq: int, detail: str, **where: Any) -> None:
        self.problems.append(Problem(EVENT, detail, seq=seq, **where))

    def _set(self, table: str, row_id: str, row: Row, seq: int) -> None:
        self.tables[table][row_id] = row
        self.last_seq[(table, row_id)] = seq

    def _existing(self, table: str, row_id: Any, seq: int) -> Row | None:
        row = self.tables[table].get(row_id) if isinstance(row_id, str) else None
        if row is None:
            self._event(
                seq, f"refers to {table} {row_id}, which no earlier event created", table=table, id=row_id
            )
        return row

    def _new(self, table: str, row_id: Any, seq: int) -> bool:
        if not isinstance(row_id, str) or not row_id:
            raise ShapeError("no subject id")
        if row_id in self.tables[table]:
            self._event(seq, f"creates {table} {row_id} again", table=table, id=row_id)
            return False
        return True

    # The bookkeeping, by the names the coding-audit handlers (audit.ledger.replay_audits) use.
    legacy = LEGACY

    def new_row(self, table: str, row_id: Any, seq: int) -> bool:
        return self._new(table, row_id, seq)

    def existing_row(self, table: str, row_id: Any, seq: int) -> Row | None:
        return self._existing(table, row_id, seq)

    def set_row(self, table: str, row_id: str, row: Row, seq: int) -> None:
        self._set(table, row_id, row, seq)

    def row_time(self, body: dict[str, Any]) -> Any:
        return row_time(body)

    def _compare_before(
        self, seq: int, table: str, row_id: str, row: Row, before: Any, names: tuple[str, ...]
    ) -> None:
        """A change's `before` must be the state replayed so far, else the ledger contradicts itself."""
        before = _dict(before, "before")
        for name in names:
            want = typed(name, before.get(name))
            if row.get(name) != want:
                self._event(
                    seq,
                    f"the event's before.{name} is not the state the earlier events left",
                    table=table,
                    id=row_id,
                    field=name,
                    expected=plain(row.get(name)),
                    found=plain(want),
                )

    # -- checks on every event ---------------------------------------------------------------------

    def _check_actor(self, seq: int, body: dict[str, Any]) -> None:
        """The actor (and the user acted for) must be users the ledger created, acting in a role the
        ledger gave them: a role granted behind the ledger's back shows on every event it is used for."""
        actor = body.get("actor")
        actor_id = _get(actor, "id")
        if actor_id is not None:
            roles = self.roles.get(actor_id)
            role = _get(actor, "role")
            if roles is None:
                self._event(
                    seq, "the actor is not a user the ledger created", field="actor.id", found=actor_id
                )
            elif role and role not in roles and not _all_granted(role, roles):
                self._event(
                    seq,
                    "the actor acted in a role the ledger never gave them",
                    table="app_user",
                    id=actor_id,
                    field="actor.role",
                    expected=sorted(roles),
                    found=role,
                )
        obo = _get(_get(body, "on_behalf_of"), "user_id")
        if obo is not None and obo not in self.roles:
            self._event(seq, "on_behalf_of names a user the ledger never created", field="on_behalf_of")

    def _check_provider(self, seq: int, body: dict[str, Any]) -> None:
        encounter = self.tables["encounter"].get(body.get("encounter_id"))  # type: ignore[arg-type]
        provider = body.get("provider_id")
        if encounter is not None and provider is not None and provider != encounter["rendering_provider_id"]:
            self._event(
                seq,
                "provider_id is not the encounter's rendering provider",
                field="provider_id",
                expected=encounter["rendering_provider_id"],
                found=provider,
            )

    # -- users ---------------------------------------------------------------------------------------

    def _user(self, seq: int, body: dict[str, Any]) -> None:
        user_id = _id(body)
        after = _dict(body.get("after"), "after")
        detail = _get(body, "detail")
        account = _get(detail, "account")
        if body.get("type") == "user.create":
            if not self._new("app_user", user_id, seq):
                return
            # Accounts are created active; an older event says nothing of the password or the time.
            row = _pick(after, USER_PUBLIC)
            row.update(is_active=True, credential_active=True, password_hash=LEGACY, created_at=LEGACY)
            if account is not None:
                row["created_at"] = event_time(body)
        else:
            existing = self._existing("app_user", user_id, seq)
            if existing is None:
                return
            if body.get("before") is not None:
                self._compare_before(seq, "app_user", user_id, existing, body["before"], USER_PUBLIC)
            row = {**existing, **_pick(after, USER_PUBLIC)}
        if account is not None:
            fields = _pick(_dict(account, "detail.account"), ACCOUNT)
            fields["password_hash"] = fields.pop("password_sha256")
            row.update(fields)
        self._set("app_user", user_id, row, seq)
        roles = row["roles"]
        self.roles[user_id] = (
            frozenset(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else frozenset()
        )

    # -- encounters and code lines ----------------------------------------------------------------------

    def _encounter(self, seq: int, body: dict[str, Any]) -> None:
        encounter_id = _id(body)
        if not self._new("encounter", encounter_id, seq):
            return
        after = _dict(body.get("after"), "after")
        row = _pick(
            after,
            (
                "source",
                "external_id",
                "patient_ref",
                "date_of_service",
                "rendering_provider_id",
                "supervising_provider_ids",
                "status",
            ),
        )
        row.update(created_by=acting_user(body), created_at=row_time(body))
        self._set("encounter", encounter_id, row, seq)
        self.lines_of.setdefault(encounter_id, [])

    def _code_add(self, seq: int, body: dict[str, Any]) -> None:
        line_id = _id(body)
        encounter_id = _id(body, "encounter_id")
        if self._existing("encounter", encounter_id, seq) is None or not self._new("code_line", line_id, seq):
            return
        at, by = row_time(body), acting_user(body)
        row = _pick(_dict(body.get("after"), "after"), LINE_STATE)
        row.update(
            encounter_id=encounter_id,
            entered_by=by,
            entered_role=acting_role(body),
            delegation_id=_get(body.get("on_behalf_of"), "delegation_id"),
            entered_at=at,
            changed_by=by,
            changed_at=at,
        )
        self._set("code_line", line_id, row, seq)
        self.lines_of[encounter_id].append(line_id)

    def _code_version(self, seq: int, body: dict[str, Any]) -> None:
        line_id = _id(body)
        row = self._existing("code_line", line_id, seq)
        if row is None:
            return
        if row["encounter_id"] != body.get("encounter_id"):
            self._event(seq, "the line belongs to another encounter", table="code_line", id=line_id)
        self._compare_before(seq, "code_line", line_id, row, body.get("before"), LINE_STATE)
        after = _pick(_dict(body.get("after"), "after"), LINE_STATE)
        if after["version"] != row["version"] + 1:
            self._event(
                seq,
                "a new version must be the previous one plus one",
                table="code_line",
                id=line_id,
                field="version",
                expected=row["version"] + 1,
                found=after["version"],
            )
        changed = {"changed_by": acting_user(body), "changed_at": row_time(body)}
        self._set("code_line", line_id, {**row, **after, **changed}, seq)

    # -- attestations -----------------------------------------------------------------------------------

    def _attest(self, seq: int, body: dict[str, Any]) -> None:
        attestation_id = _id(body)
        encounter_id = _id(body, "encounter_id")
        encounter = self._existing("encounter", encounter_id, seq)
        if encounter is None or not self._new("attestation", attestation_id, seq):
            return
        row = _pick(_dict(body.get("after"), "after"), ATTESTATION_STATE)
        row.update(superseded_at=None, ledger_seq=seq)
        if row["signer_id"] != _get(body.get("actor"), "id"):
            self._event(seq, "the signer is not the actor", table="attestation", id=attestation_id)
        implied = self._digest(encounter_id, encounter)
        if row["code_set_digest"] != implied:
            self._event(
                seq,
                "the signed digest is not the code set the ledger implies",
                table="attestation",
                id=attestation_id,
                field="code_set_digest",
                expected=implied,
                found=row["code_set_digest"],
            )
        self._set("attestation", attestation_id, row, seq)
        self._set("encounter", encounter_id, {**encounter, "status": "attested"}, seq)

    def _digest(self, encounter_id: str, encounter: Row) -> str:
        lines = self.tables["code_line"]
        active = [
            {"id": i, **lines[i]}
            for i in self.lines_of.get(encounter_id, ())
            if lines[i]["status"] == "active"
        ]
        return code_set_digest(
            encounter_id=encounter_id,
            rendering_provider_id=encounter["rendering_provider_id"],
            date_of_service=encounter["date_of_service"],
            lines=active,
        )

    def _supersede(self, seq: int, body: dict[str, Any]) -> None:
        attestation_id = _id(body)
        row = self._existing("attestation", attestation_id, seq)
        encounter_id = _id(body, "encounter_id")
        encounter = self._existing("encounter", encounter_id, seq)
        if row is None or encounter is None:
            return
        if row["status"] != "valid":
            self._event(
                seq, "supersedes an attestation that is not valid", table="attestation", id=attestation_id
            )
        superseded = {"status": "superseded", "superseded_at": row_time(body)}
        self._set("attestation", attestation_id, {**row, **superseded}, seq)
        self._set("encounter", encounter_id, {**encounter, "status": "amended"}, seq)

    # -- delegations, engagements, notes ---------------------------------------------------------------------

    def _delegation_grant(self, seq: int, body: dict[str, Any]) -> None:
        delegation_id = _id(body)
        if not self._new("delegation", delegation_id, seq):
            return
        row = _pick(_dict(body.get("after"), "after"), DELEGATION_STATE)
        row.update(
            granted_by=_get(body.get("actor"), "id"),
            granted_at=row_time(body),
        )
        self._set("delegation", delegation_id, row, seq)

    def _delegation_revoke(self, seq: int, body: dict[str, Any]) -> None:
        delegation_id = _id(body)
        row = self._existing("delegation", delegation_id, seq)
        if row is None:
            return
        self._compare_before(seq, "delegation", delegation_id, row, body.get("before"), DELEGATION_STATE)
        self._set("delegation", delegation_id, {**row, **_pick(body["after"], DELEGATION_STATE)}, seq)

    def _engagement_open(self, seq: int, body: dict[str, Any]) -> None:
        engagement_id = _id(body)
        if not self._new("engagement", engagement_id, seq):
            return
        row = _pick(_dict(body.get("after"), "after"), ENGAGEMENT_STATE)
        row.update(
            opened_by=_get(body.get("actor"), "id"),
            opened_at=row_time(body),
        )
        self._set("engagement", engagement_id, row, seq)

    def _engagement_revoke(self, seq: int, body: dict[str, Any]) -> None:
        engagement_id = _id(body)
        row = self._existing("engagement", engagement_id, seq)
        if row is None:
            return
        self._compare_before(seq, "engagement", engagement_id, row, body.get("before"), ENGAGEMENT_STATE)
        self._set("engagement", engagement_id, {**row, **_pick(body["after"], ENGAGEMENT_STATE)}, seq)

    def _note(self, seq: int, body: dict[str, Any]) -> None:
        self._note_row(seq, body, _id(body))

    def _resolution(self, seq: int, body: dict[str, Any]) -> None:
        """A flag's resolution: the event's subject is the flag; the `resolution` note it writes is
        named in `after.note_id`."""
        note_id = _dict(body.get("after"), "after").get("note_id")
        if not isinstance(note_id, str) or not note_id:
            raise ShapeError("no after.note_id")
        self._note_row(seq, body, note_id)

    def _note_row(self, seq: int, body: dict[str, Any], note_id: str) -> None:
        encounter_id = _id(body, "encounter_id")
        if self._existing("encounter", encounter_id, seq) is None or not self._new(
            "encounter_note", note_id, seq
        ):
            return
        row = _pick(_dict(body.get("after"), "after"), ("kind", "text"))
        row.update(
            encounter_id=encounter_id,
            author_id=_get(body.get("actor"), "id"),
            created_at=row_time(body),
        )
        self._set("encounter_note", note_id, row, seq)

    def _signin(self, seq: int, body: dict[str, Any]) -> None:
        """A sign-in issues a bearer token stamped with the event's time: a token row with no such
        sign-in was minted behind the service's back (it would let its holder act as that user)."""
        self.signins.add((_id(body), event_time(body)))


def _all_granted(role: Any, roles: frozenset[str]) -> bool:
    """`role` is one granted role, or several joined by commas (an actor whose capacity was unknown)."""
    return isinstance(role, str) and all(part in roles for part in role.split(","))


def event_time(body: dict[str, Any]) -> datetime:
    ts = body.get("ts")
    if not isinstance(ts, str):
        raise ShapeError("no ts")
    return datetime.fromisoformat(ts)


def row_time(body: dict[str, Any]) -> Any:
    """The event's ts when the row took its time from its event (`detail.row_time == "ts"`), else
    LEGACY: older events were stamped a moment after their rows."""
    return event_time(body) if _get(body.get("detail"), "row_time") == "ts" else LEGACY


# Actors that submit for another user (`on_behalf_of`): an integration account, and the host's
# operator running `audit import` at the command line.
FEED_ROLES = ("integration", "operator")


def acting_user(body: dict[str, Any]) -> Any:
    """Whose authority wrote the row: the user a feed (integration account, operator) submitted for,
    else the actor (a delegated coder is the actor; the provider they code for is only `on_behalf_of`)."""
    obo = _get(body.get("on_behalf_of"), "user_id")
    actor = body.get("actor")
    return obo if _get(actor, "role") in FEED_ROLES and obo else _get(actor, "id")


def acting_role(body: dict[str, Any]) -> Any:
    obo = body.get("on_behalf_of")
    actor = body.get("actor")
    if _get(actor, "role") in FEED_ROLES and _get(obo, "user_id"):
        return _get(obo, "role")
    return _get(actor, "role")


def plain(value: Any) -> Any:
    """A value as a JSON answer shows it."""
    return value.isoformat() if isinstance(value, date | datetime) else value
