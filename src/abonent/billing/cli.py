"""``abonent billing …``: billing data maintenance from the command line.

Exit codes of ``import``, for the cron job or script that runs the nightly export:
0 when the file was read, even if some rows were bad (they are listed on stderr, and the
good rows are loaded); 1 when nothing could be imported (missing or unreadable file, wrong
header). A script that must also notice bad rows can check stderr for "line ".
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from abonent.billing.csv_import import ImportFailed, ImportReport, import_accounts
from abonent.cli_support import ReadableGroup, database_url
from abonent.db.migrate import upgrade
from abonent.db.session import Database

billing_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Billing data: import accounts from the supplier's CSV export.",
)


@billing_app.callback()
def _billing() -> None:
    """Billing data: import accounts from the supplier's CSV export."""
    # A callback keeps "import" a subcommand even while it is the only one.


async def _import(path: Path, url: str) -> ImportReport:
    db = Database(url)
    try:
        await upgrade(db.engine)
        return await import_accounts(db, path)
    finally:
        await db.dispose()


@billing_app.command("import")
def import_command(
    file: Annotated[
        Path,
        typer.Argument(
            metavar="FILE.csv",
            help="The accounts: UTF-8 CSV with the header row above.",
            show_default=False,
        ),
    ],
) -> None:
    """Upsert accounts from FILE.csv by account number; bad rows are reported with their
    line numbers, good rows load.

    UTF-8, comma-separated, with this header row:

    `account,holder,address,plan,t1,t2,t3,readings_date,balance,phone`

    * `plan`: `single`, `two_zone` (t1 day, t2 night) or `three_zone` (t1 peak,
      t2 half-peak, t3 night); unused zones empty.
    * `t1`–`t3`: the last accepted readings, kWh; `readings_date`: YYYY-MM-DD.
    * `balance`: rubles, positive: the customer owes, negative: overpaid.
    * `phone`: optional, +7…

    Exit code 0 when the file was read (even with bad rows), 1 when it could not be
    imported.
    """
    if not file.is_file():
        typer.echo(f"Error: {file} is not a readable file.", err=True)
        raise typer.Exit(1)
    url = database_url(create=True)
    try:
        report = asyncio.run(_import(file, url))
    except ImportFailed as exc:
        typer.echo(f"Error: {exc}. Nothing was imported.", err=True)
        raise typer.Exit(1) from exc
    for line, reason in report.errors:
        typer.echo(f"line {line}: {reason}", err=True)
    if report.rejected > len(report.errors):
        typer.echo(
            f"… and {report.rejected - len(report.errors)} more bad rows not listed.", err=True
        )
    typer.echo(f"Loaded {report.loaded} accounts.")
    if report.rejected:
        typer.echo(f"Skipped {report.rejected} bad rows (listed on stderr).")
    if report.kept_newer_readings:
        typer.echo(
            f"Kept newer stored readings for {report.kept_newer_readings} accounts "
            "(submitted after the export was made)."
        )
