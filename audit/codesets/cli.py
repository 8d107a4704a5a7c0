"""``audit codesets``: import code-set files (as the host's operator) and list what is covered."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from audit.codesets.store import IMPORT_SYSTEMS

app = typer.Typer(
    name="codesets",
    help="Import and list code-set releases (ICD-10-CM, ICD-10-PCS, HCPCS, CPT, NCCI PTP, MUE).",
    no_args_is_help=True,
)
console = Console()
LOOK_BACK_YEARS = 6  # external auditors look back six years


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
    """Import FILE as a new release of SYSTEM, as the OS user running the command. The import is a
    ledger event (who, file, SHA-256, counts); the active lines it can judge (on encounters from its
    first day on) are re-checked, and each line it makes invalid (or no longer unverified) gets an
    event too."""
    from audit.cli import domain_errors_exit
    from audit.codesets.service import import_release
    from audit.principal import host_operator
    from audit.uow import unit_of_work

    if system.lower() not in IMPORT_SYSTEMS:
        raise typer.BadParameter(f"expected one of {', '.join(IMPORT_SYSTEMS)}", param_hint="SYSTEM")
    start, end = _date(from_, "--from"), _date(until, "--until")
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    operator = host_operator()
    with Progress(*columns, console=console, transient=False) as bar, domain_errors_exit():
        tasks: dict[str, TaskID] = {}

        def tick(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                what = f"{system} {file.name}" if phase == "store" else "re-checking lines"
                tasks[phase] = bar.add_task(what, total=total)
            bar.update(tasks[phase], completed=done, total=total if total is not None else done)

        with unit_of_work() as session:
            result = import_release(
                session,
                user=operator,
                system=system,
                path=file,
                label=label,
                effective_from=start,
                effective_until=end,
                progress=tick,
            )
            rel, recheck = result.release, result.recheck
            summary = (
                f"imported {rel.code_count:,} records as {rel.system} release '{rel.label}' "
                f"({rel.effective_from} to {rel.effective_until or 'open-ended'}), id {rel.id}, "
                f"by {operator.username} (ledger seq {result.seq})"
            )
    console.print(summary)
    if recheck.checked:
        console.print(
            f"re-checked {recheck.checked:,} active lines: {recheck.invalid:,} now invalid, "
            f"{recheck.verified:,} no longer unverified ({recheck.events:,} events); "
            "see the codes-invalid-for-date report"
        )


@app.command("list")
def list_cmd() -> None:
    """List the built-in and imported releases, and which years each system covers."""
    from audit.codesets.builtin import manifest
    from audit.codesets.store import list_releases, load_index
    from audit.db import session_scope

    table = Table(title="Code-set releases")
    for col in ("id", "system", "label", "from", "until", "records", "source", "imported"):
        table.add_column(col, justify="right" if col in ("id", "records") else "left")
    for row in manifest():
        scope = f" (codes {', '.join(row.scope)}… only)" if row.scope else ""
        table.add_row(
            "built-in",
            row.system,
            row.label + scope,
            str(row.effective_from),
            str(row.effective_until),
            f"{row.counts['entries'] if row.base is None else row.counts['removed']:,}"
            + ("" if row.base is None else " changes"),
            row.sources[0]["package"],
            "-",
        )
    with session_scope() as session:
        for r in list_releases(session):
            at = r.imported_at
            table.add_row(
                str(r.id),
                r.system,
                r.label,
                str(r.effective_from),
                str(r.effective_until or "open-ended"),
                f"{r.code_count:,}",
                r.source_file,
                at.strftime("%Y-%m-%d %H:%M") if isinstance(at, datetime) else "",
            )
        index = load_index(session)
    console.print(table)
    _print_coverage(index, date.today())


def _print_coverage(index: object, today: date) -> None:
    from audit.codesets.coverage import CALENDAR, COVERED, FISCAL, NOT_COVERED, coverage
    from audit.codesets.periods import fiscal_year_of, required_release
    from audit.codesets.releases import CodeSetIndex

    assert isinstance(index, CodeSetIndex)
    style = {COVERED: "green", NOT_COVERED: "red"}
    for systems, last in ((FISCAL, fiscal_year_of(today)), (CALENDAR, today.year)):
        years = list(range(last - LOOK_BACK_YEARS, last + 1))
        fiscal = systems == FISCAL
        kind = "fiscal" if fiscal else "calendar"
        table = Table(title=f"Coverage by {kind} year (today {today.isoformat()})")
        table.add_column("system")
        for y in years:
            table.add_column(f"FY{y}" if fiscal else f"CY{y}")
        gaps: list[str] = []
        for system in systems:
            cells = coverage(index, system, years)
            texts = [f"[{style.get(c.state, 'yellow')}]{c.state}[/]\n{c.note}".rstrip() for c in cells]
            table.add_row(system, *texts)
            missing = [c.name for c in cells if c.state != COVERED]
            if missing:
                need = required_release(system, date(years[-1], 1, 1))
                command = need.command.replace(str(years[-1]), "<YYYY>")
                gaps.append(f"{system} {', '.join(missing)}: {command}\n    from {need.source}")
        console.print(table)
        for gap in gaps:
            console.print(f"  {gap}", soft_wrap=True)
    console.print(
        "On a date no release covers, the latest earlier release judges: its headers and terminated "
        "codes are refused, a code it has is accepted naming it, and a code it lacks is accepted as "
        "unverified (compliance.yaml codesets.unverified: block | warn decides attestation)."
    )
