"""`audit import`: the command line around audit.imports.service (progress bar, report file)."""

from __future__ import annotations

import csv
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from audit.imports.feed import FeedError, Rejection
from audit.imports.service import ImportResult, run_import
from audit.principal import CurrentUser, host_operator


def submitter_for(as_user: str | None, password: str | None) -> CurrentUser:
    """The host's operator, or the named account once its password is checked (the same sign-in,
    back-off and failure events as the API's)."""
    if as_user is None:
        return host_operator()
    from audit.user.entry import CLI_ADDRESS, authenticate

    return CurrentUser.of(authenticate(None, username=as_user, password=password or "", address=CLI_ADDRESS))


def run_import_command(
    console: Console,
    file: Path,
    *,
    as_user: str | None,
    password: str | None,
    fmt: str | None,
    report: Path,
    batch: int,
) -> int:
    """Run the import with a progress bar; returns the exit status (2: the file cannot be read)."""
    submitter = submitter_for(as_user, password)
    total = file.stat().st_size
    columns = (
        TextColumn("[bold]import[/bold]"),
        BarColumn(),
        TaskProgressColumn(),
        DownloadColumn(),
        TextColumn("{task.fields[rows]:,} rows, {task.fields[rate]:,.0f} rows/s"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with (
        report.open("w", newline="", encoding="utf-8") as out,
        file.open("rb") as stream,
        Progress(*columns, console=console, transient=False) as progress,
    ):
        writer = csv.writer(out)
        writer.writerow(["line", "field", "reason"])
        task = progress.add_task("import", total=total, rows=0, rate=0.0)

        def on_rejection(rejection: Rejection) -> None:
            writer.writerow([rejection.line_no, rejection.field, rejection.reason])

        def on_progress(done: int, rows: int) -> None:
            elapsed = progress.tasks[task].elapsed or 1e-9
            progress.update(task, completed=done, rows=rows, rate=rows / elapsed)

        try:
            result = run_import(
                None,
                submitter=submitter,
                stream=stream,
                fmt=fmt,
                on_rejection=on_rejection,
                on_progress=on_progress,
                batch_rows=batch,
            )
        except FeedError as exc:
            console.print(f"[red]{file.name}: {exc.field}: {exc.message}[/red]", soft_wrap=True)
            return 2
    _print_summary(console, result, report)
    return 0


def _print_summary(console: Console, result: ImportResult, report: Path) -> None:
    c = result.counts
    console.print(
        f"[green]imported[/green] {result.format} sha256 {result.sha256}: {c.rows:,} rows, "
        f"{c.created:,} new lines, {c.changed:,} changed, {c.unchanged:,} unchanged, "
        f"{c.encounters_created:,} new encounters, {c.rejected:,} rejected"
        + (f" (see {report})" if c.rejected else "")
        + f"; ledger seq {result.seq}",
        soft_wrap=True,
        highlight=False,
    )
