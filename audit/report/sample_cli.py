"""`audit sample`: draw a reproducible encounter sample as a named user (policy-checked, recorded)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.console import Console

console = Console()


def sample(
    n: Annotated[int, typer.Option("--n", min=1, help="How many encounters")] = 30,
    seed: Annotated[int, typer.Option("--seed", help="Seed: the same seed draws the same sample")] = 0,
    date_from: Annotated[
        datetime, typer.Option("--from", formats=["%Y-%m-%d"], help="First date of service")
    ] = ...,  # type: ignore[assignment]
    date_to: Annotated[
        datetime, typer.Option("--to", formats=["%Y-%m-%d"], help="Last date of service")
    ] = ...,  # type: ignore[assignment]
    provider: Annotated[str | None, typer.Option("--provider", help="Provider id")] = None,
    as_user: Annotated[
        str, typer.Option("--as", help="Username drawing the sample (compliance/auditor)")
    ] = ...,  # type: ignore[assignment]
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read that user's password from stdin")
    ] = False,
) -> None:
    """Draw N encounters with dates of service in [from, to]; prints one encounter id per line."""
    import sys

    from audit.errors import DomainError
    from audit.principal import CurrentUser
    from audit.report.sampling import draw_sample
    from audit.uow import unit_of_work
    from audit.user.entry import CLI_ADDRESS, authenticate

    if not password_stdin:
        console.print("[red]--password-stdin is required: the sample is drawn as a signed-in user[/red]")
        raise typer.Exit(2)
    password = sys.stdin.readline().rstrip("\n")
    try:
        user = CurrentUser.of(authenticate(None, username=as_user, password=password, address=CLI_ADDRESS))
        with unit_of_work() as session:
            result = draw_sample(
                session,
                user=user,
                n=n,
                seed=seed,
                date_from=date_from.date(),
                date_to=date_to.date(),
                provider_id=provider,
            )
    except DomainError as exc:
        console.print(f"[red]{exc.kind}: {exc.detail}[/red]")
        raise typer.Exit(1) from exc
    console.print(
        f"# {len(result['encounter_ids'])} of {result['candidates']} encounters, seed {seed}", style="dim"
    )
    for encounter_id in result["encounter_ids"]:
        typer.echo(encounter_id)
