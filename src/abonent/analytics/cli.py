"""``abonent stats …``: the statistics from the command line.

``summary`` prints the period's figures (the same rollups as the reports page; the
JSON keys are listed in the README);
it first applies whatever events the running servers have not counted yet, so a
script run right after a busy minute sees it. ``rebuild`` recomputes the rollups from
the log (and backfills history from before it); ``export`` writes any report as CSV
or XLSX; ``status`` shows how far the consumers are.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from abonent.analytics.exports import KINDS, XLSX_MAX_ROWS, stream_csv, table, to_xlsx
from abonent.analytics.rebuild import consumer_status, rebuild
from abonent.analytics.reports import Period, PeriodError, Scope, Stats
from abonent.analytics.rollup import StatsConsumer
from abonent.channels.registry import build_channels
from abonent.cli_support import ReadableGroup, database_url
from abonent.clock import utcnow
from abonent.config import Settings, get_settings
from abonent.core.bus import LocalBus
from abonent.core.eventlog import EventConsumers
from abonent.db.migrate import upgrade
from abonent.db.session import Database

stats_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Statistics: summaries, exports and rebuilding the rollups.",
)
T = TypeVar("T")


def _day(value: str, option: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        typer.echo(f"{option} must be a date as YYYY-MM-DD, not {value!r}", err=True)
        raise typer.Exit(2) from None


def _run(work: Callable[[Database, Settings], Awaitable[T]]) -> T:
    url = database_url()
    settings = get_settings()

    async def go() -> T:
        db = Database(url)
        try:
            await upgrade(db.engine)
            return await work(db, settings)
        finally:
            await db.dispose()

    return asyncio.run(go())


def _stats(db: Database, settings: Settings) -> Stats:
    channels = build_channels(settings)
    return Stats(
        db,
        settings.company.tz,
        {cid: c.type for cid, c in channels.items()},
        night_hours=settings.stats.night_hours,
    )


async def _catch_up(db: Database, settings: Settings) -> None:
    """Count what the servers have not yet (a no-op while a rebuild has them paused)."""
    consumer = StatsConsumer(settings.company.tz, settings.company.working_hours)
    await EventConsumers(db, LocalBus(), [consumer]).catch_up()


def _period(settings: Settings, start: str | None, end: str | None) -> Period:
    today = utcnow().astimezone(settings.company.tz).date()
    first = _day(start, "--from") if start else today
    last = _day(end, "--to") if end else first if start else today
    try:
        return Period(first, last, settings.company.tz)
    except PeriodError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


FromOpt = Annotated[
    str | None,
    typer.Option("--from", metavar="DATE", help="First day, YYYY-MM-DD, company time (today)."),
]
ToOpt = Annotated[
    str | None,
    typer.Option("--to", metavar="DATE", help="Last day, YYYY-MM-DD, included (--from)."),
]


@stats_app.command()
def summary(
    start: FromOpt = None,
    end: ToOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout.")] = False,
) -> None:
    """The period's figures: messages, conversations, the bot, operators, satisfaction."""
    settings = get_settings()
    period = _period(settings, start, end)

    async def work(db: Database, settings: Settings) -> dict[str, Any]:
        await _catch_up(db, settings)
        return await _stats(db, settings).summary(period)

    figures = _run(work)
    if as_json:
        typer.echo(json.dumps(figures, ensure_ascii=False))
        return
    _print_summary(figures)


def _print_summary(f: dict[str, Any]) -> None:
    p = f["period"]
    c, b, q = f["conversations"], f["bot"], f["queue"]
    lines = [
        f"Period {p['from']} – {p['to']} ({p['timezone']})",
        f"Conversations: {c['total']} (bot only {c['bot_only']}, to operators {c['to_operator']})",
        f"Customers: {f['customers']['unique']} unique, {f['customers']['returning']} returning",
        f"Free text: {b['free_text']}, recognised {b['recognised']}, fallback {b['fallback']}",
        f"Readings submitted: {f['readings']['submitted']}; links sent {f['links']['sent']}, "
        f"clicked {f['links']['clicked']}; profanity {f['profanity']}",
        f"Queue: {q['queued']} queued, {q['abandoned']} left; wait median "
        f"{q['wait_s']['median']} s, p90 {q['wait_s']['p90']} s",
    ]
    for channel, counts in f["messages"].items():
        lines.append(
            f"  {channel}: {counts['customer']} from customers, {counts['bot']} bot, "
            f"{counts['operator']} operators"
        )
    for login, o in f["operators"].items():
        fr = o["first_response_s"]
        lines.append(
            f"  operator {login}: {o['conversations']} conversations, {o['replies']} replies, "
            f"{o['transfers']} transfers, first response median {fr['median']} s "
            f"(p90 {fr['p90']}, max {fr['max']}), online {o['online_s']} s, "
            f"break {o['break_s']} s"
        )
    csat = f["csat"]
    lines.append(
        f"Satisfaction: asked {csat['asked']}, answered {csat['answered']}, "
        f"average {csat['average']}"
    )
    typer.echo("\n".join(lines))


@stats_app.command("rebuild")
def rebuild_command(
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="DATE",
            help="Keep the rollups before this day (YYYY-MM-DD); rebuild it and later.",
        ),
    ] = None,
) -> None:
    """Recompute the rollups from the event log (all of them, with the history from
    before the log, or from a day on). Running servers pause their statistics meanwhile."""
    since = _day(start, "--from") if start else None

    async def work(db: Database, settings: Settings) -> None:
        await rebuild(db, settings, since=since, progress=lambda m: typer.echo(m, err=True))

    try:
        _run(work)
    except Exception as exc:
        typer.echo(
            f"rebuild failed: {type(exc).__name__}: {exc}\n"
            "The statistics stay paused until a rebuild finishes: run it again.",
            err=True,
        )
        raise typer.Exit(1) from None


@stats_app.command()
def export(
    kind: Annotated[str, typer.Argument(metavar="REPORT", help=f"One of: {', '.join(KINDS)}.")],
    start: FromOpt = None,
    end: ToOpt = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", "-o", metavar="FILE", help="File (.csv or .xlsx); omitted: CSV on stdout."
        ),
    ] = None,
) -> None:
    """Write one report as CSV or XLSX (by the file's extension)."""
    if kind not in KINDS:
        typer.echo(f"unknown report {kind!r}; one of {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    settings = get_settings()
    period = _period(settings, start, end)
    xlsx = out is not None and out.suffix.lower() == ".xlsx"

    async def work(db: Database, settings: Settings) -> int:
        await _catch_up(db, settings)
        stats = _stats(db, settings)
        if xlsx:
            assert out is not None
            columns, rows = await table(stats, kind, period, Scope(), limit=XLSX_MAX_ROWS + 1)
            if len(rows) > XLSX_MAX_ROWS:
                typer.echo(
                    f"more than {XLSX_MAX_ROWS} rows: write a .csv, or choose a shorter period",
                    err=True,
                )
                raise typer.Exit(1)
            out.write_bytes(to_xlsx(columns, rows, kind))
            return len(rows)
        lines = -1  # the header
        target = out.open("wb") if out is not None else sys.stdout.buffer
        try:
            first = True
            async for chunk in stream_csv(stats, kind, period, Scope()):
                if out is None and first:
                    chunk = chunk.removeprefix("\ufeff".encode())  # a terminal wants no BOM
                first = False
                target.write(chunk)
                lines += chunk.count(b"\n")
        finally:
            if out is not None:
                target.close()
        return lines

    written = _run(work)
    if out is not None:
        typer.echo(f"{written} rows written to {out}", err=True)


@stats_app.command()
def status() -> None:
    """The durable consumers: events applied, events waiting, a rebuild's pause."""
    state = _run(lambda db, _settings: consumer_status(db))
    typer.echo(json.dumps(state, ensure_ascii=False, indent=2))
