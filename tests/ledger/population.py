"""A populated database built through the real services, for the tamper test and the app-role test.

Users of every role, delegations (granted, revoked by the grantor and by compliance), auditor
engagements (one revoked), encounters created by a provider, a delegated coder and an integration
feed on a coder's behalf, code lines added, changed and voided, attestations, amendments that
supersede them and re-attestations, compliance flags and notes, denied attempts, failed sign-ins and
signings, verifications, and checkpoints. The ledger ends like this, so every kind of tail deletion
has something to remove:

    ... C1 | S1 | R1 | C2 | S2 | R2 | C3 | R3

where C1, C2 and C3 are signed checkpoints, each S a block of state events (an encounter with its
codes, signatures and notes) and each R a block of events that change no reconciled state
(verifications and sign-ins): the ledger ends with reads after its last checkpoint.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url

from audit.attestation.service import attest
from audit.config import get_settings
from audit.db import make_engine
from audit.delegation.schemas import DelegationCreate
from audit.delegation.service import grant_delegation, revoke_delegation
from audit.encounter.codes import add_code, change_code, void_code
from audit.encounter.oversight import add_note
from audit.encounter.schemas import CodeLineCreate, CodeLinePatch, EncounterCreate, ReasonIn
from audit.encounter.service import create_encounter
from audit.engagement.schemas import EngagementCreate
from audit.engagement.service import open_engagement, revoke_engagement
from audit.errors import DomainError
from audit.ledger import checkpoints
from audit.ledger.events import Actor
from audit.migrate import upgrade
from audit.models import utcnow
from audit.principal import CurrentUser
from audit.trail.service import verify_as
from audit.uow import unit_of_work
from audit.user import entry
from audit.user.schemas import UserCreate
from audit.user.service import bootstrap_user, create_user
from tests.support import IS_POSTGRES, PASSWORD, TEST_DB_URL

SOURCE = "192.0.2.10"  # a documentation address (RFC 5737): the population's sign-ins
NPIS = ["1987654328", "1456789019", "1678901236"]
DIAGNOSES = ["E11.9", "I10", "J45.909", "M54.50", "Z00.00", "R05.9"]
PROCEDURES = ["99213", "99214", "99215", "99203", "83036", "94010", "96372"]


@dataclass
class Population:
    users: dict[str, CurrentUser] = field(default_factory=dict)
    encounters: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    # seq ranges (first, last) of the blocks at the ledger's end, and the checkpoints' tree sizes
    s: list[tuple[int, int]] = field(default_factory=list)
    r: list[tuple[int, int]] = field(default_factory=list)
    c: list[int] = field(default_factory=list)
    witness: Path | None = None  # the witness file its checkpoints were appended to (pristine)


@contextmanager
def witness_at(path: Path) -> Iterator[Path]:
    """Point AUDIT_WITNESS_FILE at `path` for the duration (module-scoped fixtures cannot use the
    per-test `witness_file` fixture)."""
    before = os.environ.get("AUDIT_WITNESS_FILE")
    os.environ["AUDIT_WITNESS_FILE"] = str(path)
    get_settings.cache_clear()
    try:
        yield path
    finally:
        if before is None:
            os.environ.pop("AUDIT_WITNESS_FILE", None)
        else:
            os.environ["AUDIT_WITNESS_FILE"] = before
        get_settings.cache_clear()


def witness_copy(pop: Population, folder: Path) -> Path:
    """A fresh working copy of the population's pristine witness file, in `folder`."""
    assert pop.witness is not None
    work = folder / "witness-work.txt"
    shutil.copyfile(pop.witness, work)
    return work


class Builder:
    def __init__(self, bind: Engine | Connection, seed: int) -> None:
        self.bind = bind
        self.rng = random.Random(seed)
        self.pop = Population()

    def run(self, fn: Any, **kw: Any) -> Any:
        with unit_of_work(self.bind) as session:
            return fn(session, **kw)

    def refused(self, fn: Any, **kw: Any) -> None:
        """An attempt the service refuses: its denied or failed event is recorded all the same."""
        try:
            self.run(fn, **kw)
        except DomainError:
            return
        raise AssertionError(f"{fn.__name__} was expected to be refused")

    def sign_in(self, username: str, password: str) -> tuple[str, int]:
        """Sign in as the API does (each step its own unit of work)."""
        return entry.sign_in(self.bind, username=username, password=password, address=SOURCE)

    def refused_sign_in(self, username: str, password: str) -> None:
        try:
            self.sign_in(username, password)
        except DomainError:
            return
        raise AssertionError(f"sign-in as {username} was expected to be refused")

    def head(self) -> int:
        with unit_of_work(self.bind) as session:
            return int(session.execute(text("SELECT max(seq) FROM ledger_event")).scalar_one())

    # -- people -----------------------------------------------------------------------------------

    def users(self) -> None:
        cli = Actor(id=None, role="cli", username="bootstrap")
        admin = self.run(bootstrap_user, data=self._user("admin", ["admin"]), actor=cli)
        self.pop.users["admin"] = CurrentUser.of(admin)
        wanted = [
            ("compliance", ["compliance"]),
            ("auditor1", ["auditor"]),
            ("auditor2", ["auditor"]),
            ("feed", ["integration"]),
            ("coder1", ["coder"]),
            ("coder2", ["coder"]),
            ("coder3", ["coder"]),
        ]
        wanted += [(f"provider{i}", ["provider"]) for i in range(1, 4)]
        for key, roles in wanted:
            npi = NPIS[int(key[-1]) - 1] if key.startswith("provider") else None
            made = self.run(create_user, data=self._user(key, roles, npi), user=self.pop.users["admin"])
            self.pop.users[key] = CurrentUser.of(made)

    def _user(self, key: str, roles: list[str], npi: str | None = None) -> UserCreate:
        return UserCreate(
            username=f"pop.{key}",
            password=PASSWORD,
            display_name=f"Population {key}",
            roles=roles,
            npi=npi,
            credential="MD" if npi else None,
        )

    def delegations(self) -> None:
        u = self.pop.users
        until = utcnow() + timedelta(days=60)
        systems = ["CPT", "HCPCS", "ICD-10-CM", "ICD-10-PCS"]
        for p, c in (
            ("provider1", "coder1"),
            ("provider2", "coder2"),
            ("provider3", "coder1"),
            ("provider1", "coder3"),
            ("provider2", "coder3"),
        ):
            data = DelegationCreate(coder_id=u[c].id, code_systems=systems, valid_until=until)
            grant_id = self.run(grant_delegation, user=u[p], data=data).id
            if (p, c) == ("provider1", "coder3"):
                self.run(revoke_delegation, user=u[p], delegation_id=grant_id, reason="left the practice")
            if (p, c) == ("provider2", "coder3"):
                self.run(revoke_delegation, user=u["compliance"], delegation_id=grant_id, reason="review")

    def engagements(self) -> None:
        u = self.pop.users
        today = date.today()
        for n, auditor in enumerate(("auditor1", "auditor2")):
            data = EngagementCreate(
                auditor_id=u[auditor].id,
                date_from=today - timedelta(days=90),
                date_to=today,
                provider_ids=[u["provider1"].id] if n == 0 else [],
                expires_at=utcnow() + timedelta(days=30),
                purpose=f"RAC review {n}",
            )
            opened = self.run(open_engagement, user=u["compliance"], data=data)
            if n == 1:
                self.run(
                    revoke_engagement, user=u["compliance"], engagement_id=opened.id, reason="scope changed"
                )

    # -- encounters and codes -----------------------------------------------------------------------

    def encounter(self, n: int) -> str:
        u = self.pop.users
        provider = f"provider{n % 3 + 1}"
        coder = {"provider1": "coder1", "provider2": "coder2", "provider3": "coder1"}[provider]
        creator, on_behalf = [(u[provider], None), (u[coder], None), (u["feed"], u[coder].id)][n % 3]
        data = EncounterCreate(
            external_id=f"POP-{n:04d}",
            patient_ref=f"MRN-{9000 + n}",
            date_of_service=date.today() - timedelta(days=self.rng.randint(1, 40)),
            rendering_provider_id=u[provider].id,
            on_behalf_of=on_behalf,
        )
        encounter_id = self.run(create_encounter, user=creator, data=data).id
        self.pop.encounters.append(encounter_id)
        writer, via = (u["feed"], u[coder].id) if n % 3 == 2 else (u[coder], None)
        for code in self.rng.sample(DIAGNOSES, 2):
            self._add(writer, encounter_id, "ICD-10-CM", code, via)
        lines = [self._add(writer, encounter_id, "CPT", c, via, [1]) for c in self.rng.sample(PROCEDURES, 2)]
        if n % 4 == 0:
            self.run(
                change_code,
                user=u[coder],
                encounter_id=encounter_id,
                line_id=lines[0],
                if_match='"1"',
                data=CodeLinePatch(code="99212", units=1, reason="level supported by the note"),
            )
        if n % 5 == 0:
            self.run(
                void_code,
                user=u[coder],
                encounter_id=encounter_id,
                line_id=lines[1],
                data=ReasonIn(reason="entered twice"),
            )
        self._oversight_and_signing(n, encounter_id, u[provider], u[coder])
        return encounter_id

    def _add(
        self,
        user: CurrentUser,
        encounter_id: str,
        system: str,
        code: str,
        via: str | None,
        ptr: Any = None,
        reason: str | None = None,
    ) -> str:
        data = CodeLineCreate(
            system=system, code=code, diagnosis_pointers=ptr or [], on_behalf_of=via, reason=reason
        )
        line_id: str = self.run(add_code, user=user, encounter_id=encounter_id, data=data).line.id
        self.pop.lines.append(line_id)
        return line_id

    def _oversight_and_signing(
        self, n: int, encounter_id: str, provider: CurrentUser, coder: CurrentUser
    ) -> None:
        u = self.pop.users
        if n % 2 == 0:
            self.run(attest, user=provider, encounter_id=encounter_id, password=PASSWORD)
        if n % 4 == 0:  # an amendment supersedes the attestation; the provider signs again
            self._add(coder, encounter_id, "CPT", "96372", None, [1], reason="injection was documented")
            self.run(attest, user=provider, encounter_id=encounter_id, password=PASSWORD)
        if n % 3 == 0:
            self.run(
                add_note, user=u["compliance"], encounter_id=encounter_id, kind="flag", text="check level"
            )
            self.run(add_note, user=u["compliance"], encounter_id=encounter_id, kind="annotation", text="ok")
        if n % 6 == 1:  # refusals leave denied and failed events
            self.refused(attest, user=coder, encounter_id=encounter_id, password=PASSWORD)
            self.refused(attest, user=provider, encounter_id=encounter_id, password="not the password")
            data = CodeLineCreate(system="CPT", code="99211")
            self.refused(add_code, user=u["auditor1"], encounter_id=encounter_id, data=data)

    # -- the ledger's end --------------------------------------------------------------------------------

    def reads(self, n: int) -> tuple[int, int]:
        """Events that change no reconciled state: verifications and a failed sign-in (its lockout
        counter is not reconciled)."""
        first = self.head() + 1
        for _ in range(n):
            self.run(verify_as, user=self.pop.users["compliance"])
        self.refused_sign_in("pop.coder1", "wrong password")
        return first, self.head()

    def states(self, n: int) -> tuple[int, int]:
        """An encounter with its codes, signatures and notes, and a sign-in (which issues a token)."""
        first = self.head() + 1
        for _ in range(n):
            self.encounter(1000 + len(self.pop.encounters))
        self.sign_in("pop.coder2", PASSWORD)
        return first, self.head()

    def checkpoint(self) -> int:
        made = checkpoints.create_in_own_transaction(self.bind)
        assert made is not None
        return made.tree_size


def populate(bind: Engine | Connection, *, encounters: int = 14, seed: int = 20240601) -> Population:
    builder = Builder(bind, seed)
    builder.users()
    builder.delegations()
    builder.engagements()
    for n in range(encounters):
        builder.encounter(n)
    for _ in range(2):
        builder.refused_sign_in("pop.nobody", "whatever it is")
    pop = builder.pop
    for block in range(3):
        pop.c.append(builder.checkpoint())
        if block < 2:
            pop.s.append(builder.states(1))
        pop.r.append(builder.reads(1 if block else 2))
    return pop


@contextmanager
def populated_database(*, encounters: int = 14) -> Iterator[tuple[str, Engine, Population]]:
    """A new database of the backend under test, migrated and populated (committed), dropped after."""
    admin = None
    if IS_POSTGRES:
        name = f"audit_pop_{uuid.uuid4().hex[:10]}"
        admin = make_engine(TEST_DB_URL).execution_options(isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(TEST_DB_URL).set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{Path(tempfile.mkdtemp(prefix='audit-pop-')) / 'pop.db'}"
    upgrade(url)
    engine = make_engine(url)
    witness = Path(tempfile.mkdtemp(prefix="audit-pop-witness-")) / "witness.txt"
    try:
        with witness_at(witness):
            pop = populate(engine, encounters=encounters)
        pop.witness = witness
        yield url, engine, pop
    finally:
        engine.dispose()
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
