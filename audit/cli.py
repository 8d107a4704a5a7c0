"""The `audit` command line. Each command is one unit of work (one transaction)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from audit.codesets.cli import app as codesets_app
from audit.config import get_settings
from audit.report.sample_cli import sample

app = typer.Typer(help="Coding responsibility audit trail", no_args_is_help=True)
db_app = typer.Typer(help="Database schema", no_args_is_help=True)
user_app = typer.Typer(help="Users", no_args_is_help=True)
policy_app = typer.Typer(help="Access policies and compliance parameters", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(policy_app, name="policy")
app.add_typer(codesets_app, name="codesets")
app.command("sample")(sample)
console = Console()


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema up to date (Alembic)."""
    from audit.migrate import upgrade

    upgrade()
    console.print(f"[green]schema up to date[/green] ({_safe_url()})")


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
) -> None:
    """Upgrade the schema, then serve the API (OpenAPI at /docs)."""
    import uvicorn

    from audit.migrate import upgrade

    upgrade()
    if demo:
        _seed_demo(only_if_empty=True)
    console.print(f"Serving on http://{host}:{port}  (OpenAPI: http://{host}:{port}/docs)")
    uvicorn.run("audit.main:create_app", factory=True, host=host, port=port, log_level="info")


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
    """Create a user (bootstraps the first admin). The event names the CLI as the actor."""
    from pydantic import ValidationError

    from audit.ledger.events import Actor
    from audit.uow import unit_of_work
    from audit.user.schemas import UserCreate
    from audit.user.service import create_user

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
        user = create_user(session, data=data, actor=Actor(id=None, role="cli", username="cli"))
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
    from audit.policy.engine import PolicyEngine, load_decision_cases

    folder = Path(policies_dir) if policies_dir else get_settings().resolved_policies_dir
    try:
        engine = PolicyEngine.load(folder)
    except PolicyError as exc:
        console.print(f"[red]invalid policy folder {folder}[/red]: {exc}")
        raise typer.Exit(1) from exc
    table = folder / "tests" / "decisions.yaml"
    try:
        rows = len(load_decision_cases(table))
        failures = engine.check_decision_table(table)
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
        bool, typer.Option("--incremental", help="Only check events after the latest signed checkpoint")
    ] = False,
) -> None:
    """Recompute the ledger's hashes and check the latest signed checkpoint; exit 1 naming the first
    bad seq."""
    from audit.ledger import checkpoints
    from audit.ledger import service as ledger
    from audit.uow import unit_of_work

    with unit_of_work() as session:
        result = checkpoints.verify_incremental(session) if incremental else ledger.verify(session)
        signed = checkpoints.check_against_latest(session)
    if not result.ok:
        console.print(
            f"[red]FAIL[/red]: first bad seq {result.first_bad_seq}: {result.problem} "
            f"({result.events_checked} events verified before it)"
        )
        raise typer.Exit(1)
    if not signed.ok:
        console.print(f"[red]FAIL[/red]: checkpoint at tree size {signed.tree_size}: {signed.problem}")
        raise typer.Exit(1)
    covered = (
        f", checkpoint at tree size {signed.tree_size} matches" if signed.tree_size else ", no checkpoint yet"
    )
    console.print(
        f"[green]OK[/green]: {result.events_checked} events, head seq {result.head_seq}, "
        f"chain {result.chain_hash.hex()}{covered}"
    )


@app.command()
def checkpoint() -> None:
    """Sign a checkpoint over the current ledger head and print the signed note."""
    from audit.ledger import checkpoints
    from audit.uow import unit_of_work

    created = checkpoints.create_in_own_transaction()
    with unit_of_work() as session:
        latest = checkpoints.latest(session)
    if latest is None:
        console.print("[yellow]the ledger is empty: nothing to checkpoint[/yellow]")
        raise typer.Exit(1)
    if created is None:
        console.print("[dim]head unchanged since the latest checkpoint[/dim]")
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
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the user's password")
    ] = False,
) -> None:
    """Write a verifiable export bundle, as USER (who re-enters their password on stdin)."""
    from datetime import date

    from audit.export.service import DEFAULT_REPORTS, ExportRequest, export_bundle
    from audit.principal import CurrentUser
    from audit.uow import unit_of_work
    from audit.user.service import authenticate

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
    req = ExportRequest(start, end, tuple(provider or ()), tuple(report or DEFAULT_REPORTS))
    with domain_errors_exit(), unit_of_work() as session:
        actor = CurrentUser.of(authenticate(session, username=user, password=password))
        result = export_bundle(session, user=actor, req=req, out=output)
    kind = "full" if result.manifest.get("full") else "scoped"
    console.print(
        f"[green]wrote[/green] {output} ({kind}, tree size {result.manifest['tree_size']}, "
        f"sha256 {result.sha256})"
    )


@app.command("verify-bundle")
def verify_bundle(
    bundle: Annotated[Path, typer.Argument(help="An export zip or its unpacked folder")],
) -> None:
    """Check an export bundle offline, exactly as its own verify.py does; exit 1 naming the first problem."""
    from audit.export.verify import main as verify_main

    raise typer.Exit(verify_main([str(bundle)]))


if __name__ == "__main__":
    app()
