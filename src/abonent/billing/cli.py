"""``abonent billing …``: billing data maintenance from the command line.

Exit codes of ``import``, for the cron job or script that runs the nightly export:
0 when the file was read, even if some rows were bad (they are listed on stderr, and the
good rows are loaded); 1 when nothing could be imported (missing or unreadable file, wrong
header). A script that must also notice bad rows can check stderr for "line ".
"""

from __future__ import annotations

import asyncio
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Annotated

import typer

from abonent.billing.csv_import import ImportFailed, ImportReport, import_accounts
from abonent.billing.export import ExportReport, export_readings
from abonent.cli_support import ReadableGroup, database_url
from abonent.db.migrate import upgrade
from abonent.db.session import Database

billing_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Billing data: import accounts from the supplier's CSV export, export readings.",
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


async def _export(url: str, output: Path | None, since: date | None, again: bool) -> ExportReport:
    db = Database(url)
    try:
        await upgrade(db.engine)
        if output is None:
            return await export_readings(db, sys.stdout, since=since, again=again)
        # Written next to the target and renamed once committed: a reader of FILE never
        # sees half a file, and a failed run leaves no file claiming rows it did not mark.
        partial = output.with_name(output.name + ".part")
        try:
            with partial.open("w", encoding="utf-8", newline="") as out:
                report = await export_readings(db, out, since=since, again=again)
            partial.replace(output)
        finally:
            partial.unlink(missing_ok=True)
        return report
    finally:
        await db.dispose()


def _day(value: str) -> date:
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError as exc:
        raise typer.BadParameter("use YYYY-MM-DD, e.g. 2026-12-01") from exc


@billing_app.command("export-readings")
def export_readings_command(
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="DATE",
            help="Only readings taken on this day (YYYY-MM-DD) or later.",
            show_default=False,
        ),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            metavar="FILE",
            help="Write the CSV here instead of standard output.",
            show_default=False,
        ),
    ] = None,
    again: Annotated[
        bool,
        typer.Option(
            "--again",
            help="Include readings already exported (a lost file); they stay marked.",
        ),
    ] = False,
) -> None:
    """Write customers' accepted readings that no earlier run exported as CSV, and mark
    them exported: run it nightly for a billing fed by files, re-running is harmless.

    Columns: `id,account,plan,t1,t2,t3,taken_on,source,submitted_at` — `t1`–`t3` as in
    the accounts import (day/night, peak/half-peak/night); of several rows of one account
    in one month the one with the highest `id` is in force.
    """
    day = _day(since) if since is not None else None
    url = database_url()
    report = asyncio.run(_export(url, output, day, again))
    where = f" to {output}" if output is not None else ""
    typer.echo(f"Exported {report.written} readings{where}.", err=True)
