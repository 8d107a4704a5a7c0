"""`audit restore FILE`: put a backup back, and prove it before any write is accepted.

Into an *empty* database only (a new SQLite path, or a PostgreSQL database with no tables): a restore
never overwrites records. In order:
1. every file's SHA-256 must match the backup's manifest;
2. the database is restored where no writer can use it yet: SQLite into a temporary file beside the
   target, renamed into place only at the end; PostgreSQL with ``pg_restore --single-transaction``
   while this process holds the ledger's append lock (every write appends an event, so every write
   waits) on a connection of its own;
3. the schema is brought up to date (a backup from an older release);
4. the backup's checkpoint must be signed by our key and match the restored ledger;
5. the witness file (``AUDIT_WITNESS_FILE``; the backup's copy is put there when it is missing) must
   not be ahead of the restored ledger: if it witnessed a larger tree, restoring would lose the events
   past the backup's head, and the restore is refused saying how many;
6. `audit verify` in full (chain, checkpoints database and witness, indexed columns, reconciliation);
7. a ``backup.restore`` event is appended (in the restored ledger), then the database is released.
Any failure empties the target again and names the problem.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session

from audit.config import get_settings
from audit.db import session_scope
from audit.ledger import checkpoints
from audit.ledger import service as ledger
from audit.ledger.checkpoint import CheckpointError
from audit.ledger.witness import FileWitness, size_of
from audit.ops.backup import (
    FORMAT,
    MANIFEST,
    PG_FILE,
    SQLITE_FILE,
    WITNESS,
    BackupError,
    libpq,
    pg_tool,
    sqlite_path,
)


@dataclass(frozen=True)
class Restored:
    head_seq: int
    checkpoint_size: int | None
    witness_size: int | None
    events_checked: int
    seq: int  # the backup.restore event


def read_manifest(zf: zipfile.ZipFile) -> dict[str, Any]:
    try:
        manifest = json.loads(zf.read(MANIFEST))
    except (KeyError, ValueError) as exc:
        raise BackupError(
            f"not a backup made by `audit backup`: {MANIFEST} is missing or unreadable"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError(
            f"unknown backup format {manifest.get('format') if isinstance(manifest, dict) else None!r}"
        )
    return manifest


def extract_checked(zf: zipfile.ZipFile, manifest: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Extract each listed file and check its SHA-256 against the manifest."""
    found: dict[str, Path] = {}
    for name, digest in manifest["files"].items():
        if name not in (SQLITE_FILE, PG_FILE, WITNESS):
            raise BackupError(f"unexpected file {name!r} in the backup")
        target = folder / name
        with zf.open(name) as src, target.open("wb") as dst:
            hasher = hashlib.sha256()
            for block in iter(lambda: src.read(1 << 20), b""):
                hasher.update(block)
                dst.write(block)
        if hasher.hexdigest() != digest:
            raise BackupError(f"{name} does not match the backup's manifest (damaged or altered backup)")
        found[name] = target
    return found


def restore(backup: Path, url: str | None = None) -> Restored:
    settings = get_settings()
    url = url or settings.database_url
    postgres = url.startswith("postgresql")
    with zipfile.ZipFile(backup) as zf, tempfile.TemporaryDirectory(prefix="audit-restore-") as tmp:
        manifest = read_manifest(zf)
        if manifest["engine"] != ("postgresql" if postgres else "sqlite"):
            raise BackupError(
                f"this is a {manifest['engine']} backup; AUDIT_DATABASE_URL names a "
                f"{'PostgreSQL' if postgres else 'SQLite'} database"
            )
        if manifest["log_id"] != settings.log_id:
            raise BackupError(
                f"the backup is of log {manifest['log_id']!r}, this service is {settings.log_id!r}"
            )
        files = extract_checked(zf, manifest, Path(tmp))
        if postgres:
            return _restore_postgres(url, files[PG_FILE], files.get(WITNESS), manifest)
        return _restore_sqlite(url, files[SQLITE_FILE], files.get(WITNESS), manifest)


def _restore_sqlite(url: str, dump: Path, witness: Path | None, manifest: dict[str, Any]) -> Restored:
    from audit.db import make_engine

    target = sqlite_path(url)
    if target.exists() and target.stat().st_size > 0:
        raise BackupError(f"{target} exists: restore into a new path (nothing is ever overwritten)")
    staging = target.with_name(f".{target.name}.restoring")
    staging.unlink(missing_ok=True)
    _copy(dump, staging)
    engine = make_engine(f"sqlite:///{staging}")
    placed: Path | None = None
    try:
        placed = _upgrade_and_check(engine, f"sqlite:///{staging}", witness, manifest)
        result = _record(engine, manifest)
        engine.dispose()
        os.replace(staging, target)
        _fsync_dir(target.parent)
        return result
    except BaseException:
        engine.dispose()
        staging.unlink(missing_ok=True)
        if placed is not None:
            placed.unlink(missing_ok=True)
        raise


def _restore_postgres(url: str, dump: Path, witness: Path | None, manifest: dict[str, Any]) -> Restored:
    from audit.db import make_engine

    engine = make_engine(url)
    tool = pg_tool("pg_restore")
    placed: Path | None = None
    with engine.connect() as holder:
        holder = holder.execution_options(isolation_level="AUTOCOMMIT")
        if inspect(holder).get_table_names():
            engine.dispose()
            raise BackupError(
                "the database has tables: restore into an empty database (nothing is ever overwritten)"
            )
        holder.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ledger.advisory_key(get_settings().log_id)})
        try:
            conninfo, env = libpq(url)
            done = subprocess.run(
                [tool, "--single-transaction", "--exit-on-error", "--no-owner", "--no-privileges",
                 f"--dbname={conninfo}", str(dump)],
                env=env, capture_output=True, text=True, check=False,
            )  # fmt: skip
            if done.returncode != 0:
                raise BackupError(f"pg_restore failed: {done.stderr.strip()[:2000]}")
            placed = _upgrade_and_check(engine, url, witness, manifest)
            return _record(holder, manifest)
        except BaseException:
            _empty_postgres(holder)
            if placed is not None:
                placed.unlink(missing_ok=True)
            raise
        finally:
            holder.execute(text("SELECT pg_advisory_unlock_all()"))
            engine.dispose()


def _empty_postgres(conn: Connection) -> None:
    conn.execute(text("DROP SCHEMA public CASCADE"))
    conn.execute(text("CREATE SCHEMA public"))


def _upgrade_and_check(
    engine: Engine, url: str, witness: Path | None, manifest: dict[str, Any]
) -> Path | None:
    """Steps 3 to 6; returns the witness file this restore put in place (None if it was there)."""
    from audit.ledger import verification
    from audit.migrate import upgrade

    upgrade(url)
    with Session(engine) as session:
        head_seq, _ = ledger.head(session)
        _check_backup_checkpoint(session, manifest, head_seq)
    placed = _place_witness(witness)
    try:
        _refuse_if_witness_ahead(head_seq)
        with Session(engine) as session:
            result = verification.verify_ledger(session, checks=verification.FULL)
        if not result.ok:
            raise BackupError(
                f"the restored ledger does not verify: {result.problem} ({result.problem_count} problems; "
                f"first bad seq {result.first_bad_seq})"
            )
    except BaseException:
        if placed is not None:
            placed.unlink(missing_ok=True)
        raise
    manifest["_events_checked"] = result.events_checked
    manifest["_head_seq"] = head_seq
    return placed


def _check_backup_checkpoint(session: Session, manifest: dict[str, Any], head_seq: int) -> None:
    if head_seq != manifest["head_seq"]:
        raise BackupError(
            f"the restored ledger ends at seq {head_seq}, the manifest says {manifest['head_seq']}"
        )
    note = (manifest.get("checkpoint") or {}).get("note")
    if note is None:
        return  # a backup of a ledger that had no checkpoint yet: the chain is still verified in full
    try:
        signed = checkpoints.verify_note(note)
    except CheckpointError as exc:
        raise BackupError(f"the backup's checkpoint does not verify with this service's key: {exc}") from exc
    problem = checkpoints.ledger_mismatch(session, signed, head_seq)
    if problem:
        raise BackupError(f"the restored ledger does not match the backup's checkpoint: {problem}")


def _place_witness(copy: Path | None) -> Path | None:
    """Put the backup's witness copy in place when the configured witness file is missing."""
    path = get_settings().resolved_witness_file
    if path.exists() or copy is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    _copy(copy, path)
    return path


def _refuse_if_witness_ahead(head_seq: int) -> None:
    witness = FileWitness(get_settings().resolved_witness_file)
    newest = witness.newest()
    size = size_of(newest) if newest else None
    if size is not None and size > head_seq + 1:
        missing = size - (head_seq + 1)
        raise BackupError(
            f"the witness file {witness.path} holds a signed checkpoint of {size} events, but the "
            f"backup ends at seq {head_seq} ({head_seq + 1} events): restoring it would lose {missing} "
            f"witnessed event{'s' if missing != 1 else ''}. Restore a newer backup (see docs/deploy.md)."
        )


def _record(bind: Engine | Connection, manifest: dict[str, Any]) -> Restored:
    from audit.policy.engine import SystemRes
    from audit.policy.guard import Target, authorize
    from audit.principal import host_operator

    operator = host_operator()
    with session_scope(bind) as session:  # commits the restore's event
        grant = authorize(operator, "backup.restore", Target("backup", None), SystemRes())
        seq = ledger.append_now(
            session,
            grant.event(
                detail={
                    "head_seq": manifest["head_seq"],
                    "checkpoint_size": (manifest.get("checkpoint") or {}).get("tree_size"),
                    "backup_created_at": manifest["created_at"],
                    "files": manifest["files"],
                },
            ),
        )
    newest = FileWitness(get_settings().resolved_witness_file).newest()
    return Restored(
        manifest["_head_seq"],
        (manifest.get("checkpoint") or {}).get("tree_size"),
        size_of(newest) if newest else None,
        manifest["_events_checked"],
        seq,
    )


def _copy(src: Path, dst: Path) -> None:
    with src.open("rb") as a, dst.open("wb") as b:
        for block in iter(lambda: a.read(1 << 20), b""):
            b.write(block)
        b.flush()
        os.fsync(b.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
