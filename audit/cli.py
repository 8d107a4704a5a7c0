"""The `audit` command line. Each command is one unit of work (one transaction)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from audit.codesets.cli import app as codesets_app
from audit.config import get_settings
from audit.report.sample_cli import sample

if TYPE_CHECKING:
    from audit.ledger.verification import Verification

app = typer.Typer(help="Coding responsibility audit trail", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
user_app = typer.Typer(help="Users", no_args_is_help=True)
policy_app = typer.Typer(help="Access policies and compliance parameters", no_args_is_help=True)
witness_app = typer.Typer(help="Witnesses: copies of every signed checkpoint kept outside the database")
app.add_typer(db_app, name="db")
app.add_typer(witness_app, name="witness")
app.add_typer(user_app, name="user")
app.add_typer(policy_app, name="policy")
app.add_typer(codesets_app, name="codesets")
app.command("sample")(sample)
console = Console()
err_console = Console(stderr=True)  # status for commands whose stdout is data (`audit checkpoint`)

if TYPE_CHECKING:
    from sqlmodel import Session

    from audit.ledger.checkpoint import NoteEntry


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (Alembic)."""
    from audit.migrate import upgrade

    upgrade()
    console.print(f"[green]schema up to date[/green] ({_safe_url()})")


@db_app.command("grant-app-role")
def db_grant_app_role(
    role: Annotated[str, typer.Argument(help="The role the service will connect as")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Set the role's login password from stdin")
    ] = False,
) -> None:
    """Set up the least-privilege PostgreSQL role the service runs as (run as the schema owner, after
    every `db upgrade`): it reads everything, only appends to the ledger and checkpoints, updates only
    the columns the services change, and cannot disable the append-only triggers."""
    from sqlalchemy.exc import DBAPIError

    from audit.db import get_engine
    from audit.db_roles import grant_app_role

    if get_settings().is_sqlite:
        console.print(
            "[red]SQLite has no database roles[/red]: the service and anyone who can write the file have "
            "the same power. Keep the database file and its -wal/-shm files readable and writable only "
            "by the service's user, and rely on `audit verify` (and the checkpoints kept outside the "
            "file) to detect changes. Use PostgreSQL to run the service with less privilege."
        )
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else None
    try:
        with domain_errors_exit(), get_engine().begin() as conn:
            report = grant_app_role(conn, role, password=password)
    except DBAPIError as exc:
        console.print(f"[red]PostgreSQL refused[/red]: {str(exc.orig).strip()}")
        raise typer.Exit(1) from exc
    console.print(f"{'created' if report.created else 'updated'} role [bold]{role}[/bold] ({_safe_url()}):")
    for line in report.granted:
        console.print(f"  {line}", soft_wrap=True, highlight=False)
    for warning in report.warnings:
        console.print(f"[yellow]warning[/yellow]: {warning}", soft_wrap=True)
    console.print("Re-run after every `audit db upgrade`: new tables get no privileges until then.")


def _safe_url() -> str:
    from sqlalchemy.engine import make_url

    return make_url(get_settings().database_url).render_as_string(hide_password=True)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Seed the demo organisation if the database is empty")
    ] = False,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="Worker processes (PostgreSQL only for more than 1)")
    ] = 1,
    migrate: Annotated[
        bool,
        typer.Option(
            "--migrate/--no-migrate",
            help="Bring the schema up to date first (--no-migrate: the service runs as the "
            "least-privilege role and the owner migrated; /readyz reports a stale schema)",
        ),
    ] = True,
) -> None:
    """Upgrade the schema, then serve the API (OpenAPI at /docs) with N worker processes; one of
    them (elected through PostgreSQL) signs checkpoints. Logs are JSON lines on stderr."""
    import uvicorn

    from audit.migrate import upgrade
    from audit.ops.logs import log_config

    settings = get_settings()
    if workers > 1 and settings.is_sqlite:
        console.print(
            f"[red]--workers {workers} needs PostgreSQL[/red]: SQLite lets one process write at a time, so "
            "more workers would only queue on its lock (and each would sign checkpoints). Serve SQLite "
            "with --workers 1, or set AUDIT_DATABASE_URL=postgresql://... to scale out."
        )
        raise typer.Exit(2)
    if migrate:
        upgrade()
    if demo:
        _seed_demo(only_if_empty=True)
    if workers > 1:
        _shared_metrics_dir()
    console.print(
        f"Serving on http://{host}:{port} with {workers} worker process{'es' if workers > 1 else ''} "
        f"(OpenAPI: http://{host}:{port}/docs)"
    )
    if workers > 1:  # one socket per worker, so that keep-alive clients are spread (audit.ops.workers)
        from audit.ops import workers as supervisor

        supervisor.serve(host, port, workers, log_config("info"))
        return
    uvicorn.run(
        "audit.main:create_app",
        factory=True,
        host=host,
        port=port,
        log_config=log_config("info"),
        access_log=False,  # ours names route templates, never raw paths (audit.ops.metrics)
    )


def _shared_metrics_dir() -> None:
    """Worker processes share their Prometheus counters through files in a fresh folder."""
    import os
    import tempfile

    from audit.ops.metrics import MULTIPROC_ENV

    os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="audit-metrics-")


@app.command()
def demo() -> None:
    """Seed a small realistic organisation and print the sign-in names and passwords."""
    from audit.migrate import upgrade

    upgrade()
    _seed_demo(only_if_empty=False)


def _seed_demo(*, only_if_empty: bool) -> None:
    from audit.demo import DEMO_PASSWORDS, seed_demo

    if get_settings().env == "production":
        console.print("[red]refusing to seed demo users with published passwords in production[/red]")
        raise typer.Exit(2)
    created = seed_demo(only_if_empty=only_if_empty)
    if not created:
        console.print("Demo data already present; sign in with the passwords printed when it was created.")
        return
    table = Table(title="Demo sign-ins (development only)")
    for column in ("username", "roles", "password"):
        table.add_column(column)
    for username, roles in created:
        table.add_row(username, ", ".join(roles), DEMO_PASSWORDS[roles[0]])
    console.print(table)


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[list[str], typer.Option("--role", help="Role; repeat for several")],
    display_name: Annotated[str | None, typer.Option(help="Printed name")] = None,
    npi: Annotated[str | None, typer.Option(help="Provider NPI (10 digits)")] = None,
    credential: Annotated[str | None, typer.Option(help="MD, DO, NP, PA ...")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from stdin")
    ] = False,
) -> None:
    """Create a user from the host: the bootstrap of the first administrator (no one can sign in to
    authorise it yet). The event names the CLI as the actor and carries no policy decision; every
    later user is best created through the API by an administrator, which the policy decides."""
    from pydantic import ValidationError

    from audit.uow import unit_of_work
    from audit.user.schemas import UserCreate
    from audit.user.service import bootstrap_user

    if not password_stdin:
        console.print("[red]--password-stdin is required (passwords never go on the command line)[/red]")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n")
    try:
        data = UserCreate(
            username=username,
            password=password,
            display_name=display_name or username,
            roles=role,
            npi=npi,
            credential=credential,
        )
    except ValidationError as exc:
        for err in exc.errors():
            console.print(f"[red]{'.'.join(str(p) for p in err['loc'])}: {err['msg']}[/red]")
        raise typer.Exit(2) from exc
    with domain_errors_exit(), unit_of_work() as session:
        user = bootstrap_user(session, data=data)
        console.print(f"created user [bold]{user.username}[/bold] id={user.id} roles={','.join(user.roles)}")


@contextmanager
def domain_errors_exit() -> Iterator[None]:
    """Map domain errors to a red message and exit status 1 (the CLI's one error handler)."""
    from audit.errors import DomainError

    try:
        yield
    except DomainError as exc:
        console.print(f"[red]{exc.kind}: {exc.detail}[/red]")
        raise typer.Exit(1) from exc


@policy_app.command("check")
def policy_check(
    policies_dir: Annotated[
        str | None, typer.Argument(help="Folder to check (default: the configured one)")
    ] = None,
) -> None:
    """Validate the Cedar policies against the schema and run the decision table."""
    from pathlib import Path

    from audit.policy.compliance import PolicyError
    from audit.policy.decision_table import check_decision_table, load_decision_cases
    from audit.policy.engine import PolicyEngine

    folder = Path(policies_dir) if policies_dir else get_settings().resolved_policies_dir
    try:
        engine = PolicyEngine.load(folder)
    except PolicyError as exc:
        console.print(f"[red]invalid policy folder {folder}[/red]: {exc}")
        raise typer.Exit(1) from exc
    table = folder / "tests" / "decisions.yaml"
    try:
        rows = len(load_decision_cases(table))
        failures = check_decision_table(engine, table)
    except PolicyError as exc:
        console.print(f"[red]decision table {table}[/red]: {exc}")
        raise typer.Exit(1) from exc
    for failure in failures:
        console.print(f"[red]FAIL[/red] {failure}")
    if failures or not rows:
        console.print(f"[red]{len(failures)} of {rows} decisions failed[/red] (policy {engine.version})")
        raise typer.Exit(1)
    console.print(
        f"[green]OK[/green]: policy {engine.version}, {len(engine.rule_files)} rules, {rows} decisions pass"
    )


@app.command()
def verify(
    incremental: Annotated[
        bool,
        typer.Option(
            "--incremental",
            help="Only the chain and indexed columns after the latest signed checkpoint (no reconciliation)",
        ),
    ] = False,
    held: Annotated[
        list[Path] | None,
        typer.Option(
            "--checkpoint",
            help="A signed checkpoint kept elsewhere (a note, or a file of notes such as a copy of the "
            "witness file): the ledger must still hold its tree. Repeat for several files.",
        ),
    ] = None,
    chain_only: Annotated[
        bool, typer.Option("--chain-only", help="Only the hash chain and the checkpoints")
    ] = False,
    show: Annotated[int, typer.Option("--show", help="How many problems to list")] = 50,
) -> None:
    """Check the hash chain, the latest signed checkpoints (the database's and the witnesses'), every
    row's indexed columns and the state tables against the ledger, and any checkpoints kept elsewhere;
    exit 1 naming the first bad seq and each problem's seq, or table, id and field."""
    from audit.ledger import verification
    from audit.uow import unit_of_work

    if incremental and chain_only:
        console.print("[red]--incremental and --chain-only are alternatives; give one[/red]")
        raise typer.Exit(2)
    checks = verification.INCREMENTAL if incremental else verification.FULL
    checks = verification.CHAIN_ONLY if chain_only else checks
    notes = _read_notes(held or [])
    with unit_of_work() as session:
        result = verification.verify_ledger(session, checks=checks)
        held_ok = _check_held(session, notes)
    for note in result.unreconciled:
        console.print(
            f"[yellow]unreconciled[/yellow]: {note.table}.{note.field} of {note.rows} rows ({note.reason})",
            soft_wrap=True,
        )
    if not result.ok:
        _print_failure(result, show)
        raise typer.Exit(1)
    if not held_ok:
        raise typer.Exit(1)
    covered = (
        f", checkpoint at tree size {result.checkpoint.tree_size} matches"
        if result.checkpoint.tree_size
        else ", no checkpoint yet"
    )
    console.print(
        f"[green]OK[/green] ({result.checks}): {result.events_checked} events, head seq {result.head_seq}, "
        f"chain {result.chain_hash.hex()}{covered}",
        soft_wrap=True,
    )


def _print_failure(result: Verification, show: int) -> None:
    first = f"first bad seq {result.first_bad_seq}: " if result.first_bad_seq is not None else ""
    console.print(
        f"[red]FAIL[/red] ({result.checks}): {first}{result.problem} "
        f"({result.problem_count} problems; {result.events_checked} events verified in the chain)",
        soft_wrap=True,
    )
    for problem in result.problems[:show]:
        values = ""
        if problem.expected is not None or problem.found is not None:
            values = f": expected {problem.expected!r}, found {problem.found!r}"
        line = f"  {problem.kind:<14} {problem.where()}{values} ({problem.detail})"
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    if result.problem_count > show:
        console.print(f"... and {result.problem_count - show} more (--show N lists more)")


def _read_notes(paths: list[Path]) -> list[tuple[Path, list[NoteEntry]]]:
    from audit.ledger.checkpoint import iter_notes

    found = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            console.print(f"[red]--checkpoint {path}: cannot read it ({exc})[/red]")
            raise typer.Exit(2) from exc
        found.append((path, list(iter_notes(text.splitlines(keepends=True)))))
    return found


def _check_held(session: Session, notes: list[tuple[Path, list[NoteEntry]]]) -> bool:
    """Print one line per held checkpoint; False if any does not match the ledger."""
    from audit.ledger.proofs import check_notes

    ok = True
    for path, entries in notes:
        if not entries:
            console.print(f"[red]FAIL[/red]: {path}: no signed note in it")
            ok = False
        for check in check_notes(session, entries):
            size = f", tree size {check.tree_size}" if check.tree_size is not None else ""
            where = f"{path} line {check.line}{size}"
            if check.ok:
                console.print(f"[green]OK[/green]: {where}: the ledger still holds this signed tree")
            else:
                console.print(f"[red]FAIL[/red]: {where}: {check.problem}")
                ok = False
    return ok


@witness_app.command("init")
def witness_init() -> None:
    """Start the witness file over the database's checkpoints (each signature checked). Only for a
    database whose checkpoints predate its witness: refuses when the witness file exists."""
    from audit.ledger import checkpoints
    from audit.ledger import service as ledger
    from audit.ledger.checkpoint import CheckpointError
    from audit.ledger.events import Actor, EventDraft
    from audit.ledger.witness import WitnessError
    from audit.uow import unit_of_work

    try:
        with unit_of_work() as session:
            started = checkpoints.start_witnesses(session)
            if started:
                ledger.append_one(
                    session,
                    EventDraft(
                        type="witness.started",
                        actor=Actor(id=None, role="cli", username="cli"),
                        subject_type="witness",
                        detail={"witnesses": started},
                    ),
                )
    except (WitnessError, CheckpointError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from exc
    if not started:
        console.print("every witness already exists: nothing to do")
    for name, count in started.items():
        console.print(f"[green]started[/green] {name} with {count} checkpoints from the database")


@app.command()
def checkpoint() -> None:
    """Sign a checkpoint over the current ledger head and print the signed note.

    Only the note goes to stdout (so `audit checkpoint > cp.txt` is a note that Go's `note.Open`
    accepts); status goes to stderr."""
    from audit.ledger import checkpoints
    from audit.ledger.witness import WitnessError
    from audit.uow import unit_of_work

    try:
        created = checkpoints.create_in_own_transaction()
    except WitnessError as exc:
        err_console.print(f"[red]not signed: {exc}[/red]")
        raise typer.Exit(1) from exc
    with unit_of_work() as session:
        latest = checkpoints.latest(session)
    if latest is None:
        err_console.print("[yellow]the ledger is empty: nothing to checkpoint[/yellow]")
        raise typer.Exit(1)
    if created is None:
        err_console.print("[dim]head unchanged since the latest checkpoint[/dim]")
    sys.stdout.write(latest.note)


@app.command("export")
def export_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the zip bundle")],
    user: Annotated[str, typer.Option("--user", help="The compliance officer or auditor exporting")],
    date_from: Annotated[
        str | None, typer.Option("--from", help="First date of service (YYYY-MM-DD)")
    ] = None,
    date_to: Annotated[str | None, typer.Option("--to", help="Last date of service (YYYY-MM-DD)")] = None,
    provider: Annotated[list[str] | None, typer.Option("--provider", help="Provider id; repeat")] = None,
    report: Annotated[list[str] | None, typer.Option("--report", help="Report to include; repeat")] = None,
    previous: Annotated[
        list[int] | None,
        typer.Option(
            "--previous",
            help="Tree size of a signed checkpoint you hold (repeat): the bundle proves the log only "
            "grew since it. Default: the tree sizes of your last exports.",
        ),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the user's password")
    ] = False,
) -> None:
    """Write a verifiable export bundle, as USER (who re-enters their password on stdin)."""
    from datetime import date

    from audit.export.service import DEFAULT_REPORTS, ExportRequest, export_bundle
    from audit.principal import CurrentUser
    from audit.uow import unit_of_work
    from audit.user.entry import CLI_ADDRESS, authenticate

    if not password_stdin:
        console.print("[red]--password-stdin is required: the export is made as a signed-in user[/red]")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n")
    try:
        start = date.fromisoformat(date_from) if date_from else None
        end = date.fromisoformat(date_to) if date_to else None
    except ValueError as exc:
        console.print(f"[red]--from/--to: {exc}[/red]")
        raise typer.Exit(2) from exc
    req = ExportRequest(
        start,
        end,
        tuple(provider or ()),
        tuple(report or DEFAULT_REPORTS),
        tuple(previous) if previous else None,
    )
    with domain_errors_exit():
        actor = CurrentUser.of(authenticate(None, username=user, password=password, address=CLI_ADDRESS))
        with unit_of_work() as session:
            result = export_bundle(session, user=actor, req=req, out=output)
    kind = "full" if result.manifest.get("full") else "scoped"
    console.print(
        f"[green]wrote[/green] {output} ({kind}, tree size {result.manifest['tree_size']}, "
        f"sha256 {result.sha256})"
    )


@app.command("archive")
def archive_cmd(
    before: Annotated[
        str, typer.Option("--before", help="Archive encounters with a date of service before this day")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the bundle")],
    user: Annotated[str, typer.Option("--user", help="The compliance officer archiving")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the user's password")
    ] = False,
) -> None:
    """Write a verifiable bundle of everything before DATE for cold storage (an export scoped to dates
    of service before it, with the retention report); deletes nothing. Check it with
    `audit verify-bundle FILE` or the verify.py inside it."""
    from datetime import date, timedelta

    from audit.export.service import ExportRequest, export_bundle
    from audit.principal import CurrentUser
    from audit.uow import unit_of_work
    from audit.user.entry import CLI_ADDRESS, authenticate

    if not password_stdin:
        console.print("[red]--password-stdin is required: the archive is made as a signed-in user[/red]")
        raise typer.Exit(2)
    try:
        last_day = date.fromisoformat(before) - timedelta(days=1)
    except (ValueError, OverflowError) as exc:
        console.print(f"[red]--before: {before!r} is not a date (YYYY-MM-DD)[/red]")
        raise typer.Exit(2) from exc
    password = sys.stdin.readline().rstrip("\n")
    req = ExportRequest(None, last_day, (), ("retention", "provider-responsibility"), purpose="archive")
    with domain_errors_exit():
        actor = CurrentUser.of(authenticate(None, username=user, password=password, address=CLI_ADDRESS))
        with unit_of_work() as session:
            result = export_bundle(session, user=actor, req=req, out=output)
    manifest = result.manifest
    console.print(
        f"[green]archived[/green] {manifest['event_count']} events on dates of service up to {last_day} "
        f"to {output} (tree size {manifest['tree_size']}, sha256 {result.sha256}); nothing was deleted",
        soft_wrap=True,
    )


@app.command("backup")
def backup_cmd(
    output: Annotated[Path, typer.Argument(help="Where to write the backup (a zip)")],
) -> None:
    """Back up the database (SQLite online backup API, or pg_dump on an exported snapshot) and the
    witness file into one zip whose manifest records the head seq and the checkpoint it holds. As the
    host's operator; recorded in the ledger."""
    from audit.db import get_engine
    from audit.ledger.witness import WitnessError
    from audit.ops.backup import BackupError, record_backup, write_backup

    output = output.resolve()
    if output.exists():
        console.print(f"[red]{output} exists: choose a new file name[/red]")
        raise typer.Exit(2)
    try:
        with domain_errors_exit():
            manifest = write_backup(get_engine(), output)
            seq = record_backup(manifest)
    except (BackupError, WitnessError) as exc:
        console.print(f"[red]backup failed[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    checkpoint = manifest["checkpoint"]["tree_size"]
    console.print(
        f"[green]backed up[/green] {manifest['engine']} to {output}: head seq {manifest['head_seq']}, "
        f"checkpoint at tree size {checkpoint}, witness {'included' if manifest['witness'] else 'none yet'}, "
        f"sha256 {manifest['sha256']} (ledger seq {seq})",
        soft_wrap=True,
    )


@app.command("restore")
def restore_cmd(
    backup: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="A file made by `audit backup`")
    ],
) -> None:
    """Restore a backup into an empty database, then verify it against the backup's checkpoint and
    the witness file before anything can write; refuses a backup older than the witnessed head."""
    import zipfile

    from audit.ops.backup import BackupError
    from audit.ops.restore import restore

    try:
        with domain_errors_exit():
            done = restore(backup)
    except (BackupError, zipfile.BadZipFile) as exc:
        console.print(f"[red]restore refused[/red]: {exc}", soft_wrap=True)
        raise typer.Exit(1) from exc
    console.print(
        f"[green]restored[/green]: head seq {done.head_seq}, checkpoint at tree size {done.checkpoint_size}, "
        f"witness at tree size {done.witness_size}; {done.events_checked} events verified; recorded as "
        f"ledger seq {done.seq}. The service may start.",
        soft_wrap=True,
    )


@app.command("import")
def import_cmd(
    file: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, help="The feed: CSV (header) or NDJSON")
    ],
    as_user: Annotated[
        str | None,
        typer.Option("--as", help="Submit as this account (an integration account or a person)"),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="With --as: read the account's password from stdin")
    ] = False,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv or ndjson (default: from the first line)")
    ] = None,
    report: Annotated[
        Path | None, typer.Option("--report", help="Rejected rows (default: FILE.rejected.csv)")
    ] = None,
    batch: Annotated[int, typer.Option(min=1, max=50_000, help="Rows per transaction")] = 2000,
) -> None:
    """Import a bulk charge feed, one code line per row. Without --as the host's operator submits,
    and each row is entered for its `entered_by` user, whose own authority and delegations decide.
    Rows go through the same rules as the API; refused rows go to the report, the rest are imported.
    Re-running a file imports nothing twice; a changed row becomes a change."""
    from audit.imports.cli import run_import_command

    if as_user is not None and not password_stdin:
        console.print("[red]--as needs --password-stdin (passwords never go on the command line)[/red]")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n") if as_user is not None else None
    report = report or file.with_name(file.name + ".rejected.csv")
    with domain_errors_exit():
        code = run_import_command(
            console, file, as_user=as_user, password=password, fmt=fmt, report=report, batch=batch
        )
    raise typer.Exit(code)


@app.command("verify-bundle")
def verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="An export zip or its unpacked folder")],
    key: Annotated[
        str | None, typer.Option("--key", help="The published signing key (vkey text or a file)")
    ] = None,
    previous: Annotated[
        list[Path] | None,
        typer.Option("--previous", help="An older signed checkpoint: prove the log only grew since"),
    ] = None,
) -> None:
    """Check an export bundle offline, exactly as its own verify.py does; exit 1 naming the first problem."""
    from audit.export.verify import main as verify_main

    args = [str(bundle), *(["--key", key] if key else [])]
    for note in previous or []:
        args += ["--previous", str(note)]
    raise typer.Exit(verify_main(args))


if __name__ == "__main__":
    app()
