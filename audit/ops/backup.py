"""`audit backup FILE`: one consistent copy of the database and the witness file, with a manifest.

The backup is a zip:
- ``database.sqlite`` (SQLite's online backup API: a consistent copy while writers carry on) or
  ``database.dump`` (PostgreSQL: ``pg_dump --format=custom`` run on a snapshot exported from our own
  REPEATABLE READ transaction, so the head recorded below is exactly the dump's);
- ``witness.txt``: the witness file, read under its lock after the snapshot (it holds every
  checkpoint in the copy, and may hold newer ones);
- ``manifest.json``: format, engine, log id, schema revision, the head seq and chain hash the copy
  ends at, the newest checkpoint it holds (tree size and signed note) and the SHA-256 of each file.

A checkpoint is signed just before the snapshot, so the copy's checkpoint covers (nearly) its head.
The backup is a ledger event (``backup.create``, by the host's operator) in the live database.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session

from audit.config import get_settings
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.models import utcnow

FORMAT = "audit-backup/v1"
MANIFEST = "manifest.json"
WITNESS = "witness.txt"
SQLITE_FILE = "database.sqlite"
PG_FILE = "database.dump"


class BackupError(RuntimeError):
    """The backup or restore cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class Head:
    seq: int
    chain_hash: str
    checkpoint_size: int | None
    checkpoint_note: str | None
    revision: str | None


def read_head(session: Session) -> Head:
    """The head, the newest checkpoint and the schema revision, as one transaction sees them."""
    seq, chain = ledger.head(session)
    last = checkpoints.latest(session)
    revision = session.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()
    return Head(
        seq,
        chain.hex(),
        last.tree_size if last else None,
        last.note if last else None,
        revision,
    )


def sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(database)


def libpq(url: str) -> tuple[str, dict[str, str]]:
    """A libpq connection URL for pg_dump/pg_restore and the environment carrying its password (so
    it never shows on a command line)."""
    parsed = make_url(url)
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    plain = parsed.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def pg_tool(name: str) -> str:
    from shutil import which

    found = which(name)
    if found is None:
        raise BackupError(
            f"{name} is not installed: apt-get install postgresql-client (the server's major version)"
        )
    return found


def snapshot_sqlite(engine: Engine, folder: Path) -> tuple[Path, Head]:
    source = sqlite3.connect(str(sqlite_path(str(engine.url))), timeout=30)
    target_path = folder / SQLITE_FILE
    target = sqlite3.connect(str(target_path))
    try:
        source.backup(target)  # the online backup API: one consistent copy
    finally:
        target.close()
        source.close()
    from audit.db import make_engine

    copy = make_engine(f"sqlite:///{target_path}")
    try:
        with Session(copy) as session:
            head = read_head(session)
    finally:
        copy.dispose()
    return target_path, head


def snapshot_postgres(engine: Engine, folder: Path) -> tuple[Path, Head]:
    dump = pg_tool("pg_dump")
    out = folder / PG_FILE
    conninfo, env = libpq(str(engine.url))
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            with Session(conn) as session:
                head = read_head(session)
            done = subprocess.run(
                [dump, "--format=custom", "--no-owner", "--no-privileges", f"--snapshot={snapshot}",
                 f"--file={out}", f"--dbname={conninfo}"],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
    if done.returncode != 0:
        raise BackupError(f"pg_dump failed: {done.stderr.strip()[:2000]}")
    return out, head


def copy_witness(folder: Path) -> Path | None:
    """The witness file as of now, read under its lock (whole notes only)."""
    source = get_settings().resolved_witness_file
    target = folder / WITNESS
    try:
        with source.open("rb") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH)
            data = fh.read()
    except FileNotFoundError:
        return None
    target.write_bytes(data)
    return target


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_backup(engine: Engine, out: Path) -> dict[str, Any]:
    """Sign a checkpoint, snapshot the database, copy the witness, and write the zip atomically.
    Returns the manifest (with ``sha256``: the whole file's digest)."""
    checkpoints.create_in_own_transaction(engine)
    postgres = engine.dialect.name == "postgresql"
    with tempfile.TemporaryDirectory(prefix="audit-backup-", dir=out.parent) as tmp:
        folder = Path(tmp)
        db_file, head = snapshot_postgres(engine, folder) if postgres else snapshot_sqlite(engine, folder)
        witness = copy_witness(folder)
        files = [p for p in (db_file, witness) if p is not None]
        manifest: dict[str, Any] = {
            "format": FORMAT,
            "engine": "postgresql" if postgres else "sqlite",
            "log_id": get_settings().log_id,
            "created_at": utcnow().isoformat().replace("+00:00", "Z"),
            "schema_revision": head.revision,
            "head_seq": head.seq,
            "head_chain_hash": head.chain_hash,
            "checkpoint": {"tree_size": head.checkpoint_size, "note": head.checkpoint_note},
            "witness": WITNESS if witness else None,
            "files": {p.name: sha256_file(p) for p in files},
        }
        partial = folder / "backup.zip"
        with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
            zf.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
            for path in files:
                zf.write(path, path.name)
        with partial.open("rb") as fh:
            os.fsync(fh.fileno())
        os.replace(partial, out)
    manifest["sha256"] = sha256_file(out)
    return manifest


def record_backup(manifest: dict[str, Any]) -> int:
    """The ``backup.create`` event (the host's operator; refused unless the policy allows it)."""
    from audit.policy.engine import SystemRes
    from audit.policy.guard import Target, authorize
    from audit.principal import host_operator
    from audit.uow import unit_of_work

    operator = host_operator()
    with unit_of_work() as session:
        grant = authorize(operator, "backup.create", Target("backup", None), SystemRes())
        return ledger.append_now(
            session,
            grant.event(
                subject_id=manifest["sha256"][:16],
                detail={
                    "head_seq": manifest["head_seq"],
                    "checkpoint_size": manifest["checkpoint"]["tree_size"],
                    "engine": manifest["engine"],
                    "sha256": manifest["sha256"],
                    "files": manifest["files"],
                },
            ),
        )
