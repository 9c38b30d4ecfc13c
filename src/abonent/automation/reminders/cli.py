"""``abonent reminders …``: define, preview, start, pause and watch reminder campaigns.

The server's reminder loop does the sending; these commands only change what it reads
(a campaign's state) or read what it wrote (progress), so they are safe while servers
run. Exit code 1 when the campaign is unknown or the change is not allowed.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, TypeVar

import typer

from abonent.automation.reminders import campaigns
from abonent.automation.reminders.audience import Audience
from abonent.automation.reminders.campaigns import CampaignError
from abonent.automation.reminders.preview import preview
from abonent.cli_support import ReadableGroup, database_url
from abonent.config import Settings, get_settings
from abonent.db.migrate import upgrade
from abonent.db.models import ReminderCampaign
from abonent.db.session import Database

reminders_app = typer.Typer(
    cls=ReadableGroup,
    rich_markup_mode="markdown",
    help="Payment and readings reminders: campaigns, their preview and progress.",
)
_T = TypeVar("_T")


@reminders_app.callback()
def _reminders() -> None:
    """Payment and readings reminders: campaigns, their preview and progress."""


def _run(work: Callable[[Database, Settings], Awaitable[_T]], *, create: bool = False) -> _T:
    url = database_url(create=create)
    settings = get_settings()

    async def run() -> _T:
        db = Database(url)
        try:
            await upgrade(db.engine)
            return await work(db, settings)
        finally:
            await db.dispose()

    try:
        return asyncio.run(run())
    except CampaignError as exc:
        typer.echo(f"Error: {exc}", err=True)
        raise typer.Exit(1) from exc


def _when(value: str | None, settings: Settings) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not YYYY-MM-DD HH:MM") from exc
    return moment.replace(tzinfo=settings.company.tz) if moment.tzinfo is None else moment


@reminders_app.command("create")
def create_command(
    name: Annotated[str, typer.Argument(metavar="CAMPAIGN", help="A short unique name.")],
    kind: Annotated[
        str, typer.Option(help="payment_due, readings_window or custom.")
    ] = "payment_due",
    text: Annotated[
        str | None,
        typer.Option(
            help="The text, with placeholders in braces: name, account, amount, due_date, "
            "link (the tracked payment link). Default: the kind's standard text."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            metavar="YYYY-MM-DD HH:MM",
            help="When it starts, company time (default: as soon as it is started).",
        ),
    ] = None,
    schedule: Annotated[
        str,
        typer.Option(
            help="once, monthly (the same day and time each month), or cron (see --cron)."
        ),
    ] = "once",
    cron: Annotated[
        str | None,
        typer.Option(
            metavar="'MIN HOUR DAY MONTH WEEKDAY'",
            help="A cron expression in company time, e.g. '0 10 1,15 * *' (implies "
            "--schedule cron).",
        ),
    ] = None,
    min_balance: Annotated[
        str | None, typer.Option(metavar="RUBLES", help="Only debts above this.")
    ] = None,
    due_within: Annotated[
        int | None,
        typer.Option(metavar="DAYS", help="Only balances due within DAYS (where known)."),
    ] = None,
    channel: Annotated[
        str | None,
        typer.Option(help="Only this channel id or type (telegram, whatsapp and so on)."),
    ] = None,
    quiet: Annotated[
        str | None, typer.Option(metavar="HH:MM-HH:MM", help="Quiet hours (company time).")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(help="WhatsApp template outside the 24-hour window: name[:language]."),
    ] = None,
) -> None:
    """Define a campaign (a draft: `abonent reminders start CAMPAIGN` runs it)."""
    balance: Decimal | None = None
    if min_balance is not None:
        try:
            balance = Decimal(min_balance.replace(",", "."))
        except InvalidOperation as exc:
            raise typer.BadParameter(f"{min_balance!r} is not an amount") from exc

    async def work(db: Database, settings: Settings) -> ReminderCampaign:
        return await campaigns.create(
            db,
            name=name,
            kind=kind,
            text=text,
            start_at=_when(at, settings),
            schedule=schedule,
            min_balance=balance,
            due_within_days=due_within,
            channel=channel,
            quiet_hours=quiet if quiet is not None else settings.reminders.quiet_hours,
            whatsapp_template=template,
            cron=cron,
        )

    row = _run(work, create=True)
    typer.echo(f"Campaign {row.name!r} created (draft). Preview: abonent reminders preview {name}")


@reminders_app.command("list")
def list_command() -> None:
    """Every campaign with its state and schedule."""

    async def work(db: Database, settings: Settings) -> list[ReminderCampaign]:
        return await campaigns.all_campaigns(db)

    rows = _run(work)
    if not rows:
        typer.echo("No campaigns yet: abonent reminders create NAME")
    tz = get_settings().company.tz
    for r in rows:
        start = r.start_at.astimezone(tz)
        typer.echo(
            f"{r.name}\t{r.kind}\t{r.state}\t{campaigns.describe_schedule(r)}"
            f" from {start:%Y-%m-%d %H:%M}"
            f"\tquiet {r.quiet_hours or 'none'}"
        )


@reminders_app.command("preview")
def preview_command(
    name: Annotated[str, typer.Argument(metavar="CAMPAIGN")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """The audience per channel, who is skipped and why, and three rendered samples,
    computed now by the same code the sends use. Nothing is sent or written."""

    async def work(db: Database, settings: Settings) -> dict[str, Any]:
        from abonent.billing import build_billing

        row = await campaigns.get(db, name)
        billing = build_billing(settings.billing, settings.tariffs, db)
        try:
            audience = Audience(
                db,
                billing,
                {c.id: c.type for c in settings.channels},
                settings.reminders,
                settings.company.tz,
            )
            found = await preview(audience, row, settings.company.links.get("payment", ""))
        finally:
            await billing.close()
        return found.as_dict()

    result = _run(work)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(f"Audience: {result['audience']}, would be written to: {result['reached']}")
    for channel, n in sorted(result["channels"].items()):
        typer.echo(f"  {channel}: {n}")
    typer.echo("Skipped:" if result["skipped"] else "Skipped: none")
    for reason, n in sorted(result["skipped"].items()):
        typer.echo(f"  {reason}: {n}")
    for i, sample in enumerate(result["samples"], 1):
        typer.echo(f"--- sample {i} ({sample['channel']}, {sample['mode']})")
        typer.echo(sample["text"])


def _move(action: str) -> Callable[[str], None]:
    def command(name: Annotated[str, typer.Argument(metavar="CAMPAIGN")]) -> None:
        async def work(db: Database, settings: Settings) -> ReminderCampaign:
            return await campaigns.move(db, name, action)

        row = _run(work)
        typer.echo(f"Campaign {row.name!r} is {row.state}.")

    return command


reminders_app.command("start", help="Run the campaign (the servers' reminder loop sends it).")(
    _move("start")
)
reminders_app.command("pause", help="Stop sending; queued reminders wait.")(_move("pause"))
reminders_app.command("resume", help="Go on after a pause.")(_move("resume"))


@reminders_app.command("status")
def status_command(
    name: Annotated[str, typer.Argument(metavar="CAMPAIGN")],
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object.")] = False,
) -> None:
    """Progress: sent, skipped (and why), failed, remaining; and what followed: accepted
    by the platform, opted out, link clicks, readings submitted within the follow-up
    window (the statistics listener's figures, a few seconds behind the log)."""

    async def work(db: Database, settings: Settings) -> dict[str, Any]:
        from abonent.analytics.campaigns import campaign_stats

        found = (await campaigns.progress(db, name)).as_dict()
        found["skipped_by_reason"] = await campaigns.skip_reasons(db, name)
        [stats] = await campaign_stats(db, [name])
        found["statistics"] = stats.as_dict()
        found["followup_days"] = settings.reminders.followup_days
        return found

    result = _run(work)
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False))
        return
    typer.echo(
        f"{result['campaign']}: {result['state']}, period {result['period'] or '—'}: "
        f"sent {result['sent']}, skipped {result['skipped']}, failed {result['failed']}, "
        f"remaining {result['remaining']}; turned reminders off after it: {result['opted_out']}"
    )
    for reason, n in sorted(result["skipped_by_reason"].items()):
        typer.echo(f"  skipped, {reason}: {n}")
    s = result["statistics"]
    typer.echo(
        f"Statistics: handed to the platform {s['sent']}, delivered {s['delivered']}, "
        f"failed {s['failed']}; within {result['followup_days']} days: opted out "
        f"{s['opted_out']}, readings submitted {s['followed']}; link clicks "
        f"{s['link_clicks']} by {s['clicked']} recipients"
    )
