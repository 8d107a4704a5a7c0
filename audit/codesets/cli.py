"""``audit codesets``: import code-set files and list releases."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from audit.codesets.parsers import CodeSetError
from audit.codesets.service import IMPORT_SYSTEMS, import_release, list_releases

app = typer.Typer(
    name="codesets",
    help="Import and list code-set releases (ICD-10-CM, HCPCS, CPT, NCCI PTP, MUE).",
    no_args_is_help=True,
)
console = Console()


def _date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"'{value}' is not a date (YYYY-MM-DD)", param_hint=option) from None


@app.command("import")
def import_cmd(
    system: Annotated[str, typer.Argument(help=f"one of: {', '.join(IMPORT_SYSTEMS)}")],
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
    label: Annotated[str | None, typer.Option("--label", help="release label")] = None,
    from_: Annotated[str | None, typer.Option("--from", help="effective from, YYYY-MM-DD")] = None,
    until: Annotated[str | None, typer.Option("--until", help="last day in force, YYYY-MM-DD")] = None,
) -> None:
    """Import FILE as a new release of SYSTEM."""
    from audit.db import session_scope

    if system.lower() not in IMPORT_SYSTEMS:
        raise typer.BadParameter(f"expected one of {', '.join(IMPORT_SYSTEMS)}", param_hint="SYSTEM")
    start, end = _date(from_, "--from"), _date(until, "--until")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=False) as bar, session_scope() as session:
            task = bar.add_task(f"{system} {file.name}", total=None)

            def tick(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            rel = import_release(
                session,
                system=system,
                path=file,
                label=label,
                effective_from=start,
                effective_until=end,
                progress=tick,
            )
            summary = (
                f"imported {rel.code_count:,} records as {rel.system} release '{rel.label}' "
                f"({rel.effective_from} to {rel.effective_until or 'open-ended'}), id {rel.id}"
            )
    except CodeSetError as exc:
        console.print(f"[red]error[/red] ({exc.field}): {exc}")
        raise typer.Exit(code=1) from None
    console.print(summary)


@app.command("list")
def list_cmd() -> None:
    """List imported releases with their effective periods and counts."""
    from audit.codesets.releases import builtin_icd10cm_release
    from audit.db import session_scope

    table = Table(title="Code-set releases")
    for col in ("id", "system", "label", "from", "until", "records", "file", "imported"):
        table.add_column(col, justify="right" if col in ("id", "records") else "left")
    builtin = builtin_icd10cm_release()
    if builtin is not None:
        table.add_row(
            "-",
            builtin.system,
            builtin.label,
            str(builtin.effective_from),
            str(builtin.effective_until),
            "lazy",
            "simple-icd-10-cm",
            "-",
        )
    with session_scope() as session:
        for r in list_releases(session):
            at = r.imported_at
            imported = at.strftime("%Y-%m-%d %H:%M") if isinstance(at, datetime) else ""
            until_text = str(r.effective_until or "open-ended")
            table.add_row(
                str(r.id),
                r.system,
                r.label,
                str(r.effective_from),
                until_text,
                f"{r.code_count:,}",
                r.source_file,
                imported,
            )
    console.print(table)
