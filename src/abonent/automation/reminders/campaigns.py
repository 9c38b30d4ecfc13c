"""Campaigns as admins define them, and what a campaign is doing now (its progress)."""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from decimal import Decimal
from typing import Any

from cronsim import CronSim, CronSimError
from sqlalchemy import func, select, update

from abonent.automation.reminders import quiet
from abonent.clock import utcnow
from abonent.db.models import ReminderCampaign, ReminderConsent, ReminderSend
from abonent.db.session import Database

KINDS = ("payment_due", "readings_window", "custom")
SCHEDULES = ("once", "monthly", "cron")
STATES = ("draft", "running", "paused", "done")
# Every status a send can be in; "remaining" in the progress is the first three.
OPEN = ("queued", "claimed", "sending")
DEFAULT_TEXTS = {
    "payment_due": (
        "Здравствуйте, {name}! По лицевому счёту {account} задолженность {amount}"
        "{due_date_text}. Оплатить онлайн: {link}"
    ),
    "readings_window": (
        "Здравствуйте, {name}! Открыт приём показаний по лицевому счёту {account}. "
        "Передайте их прямо здесь: нажмите «Передать показания»."
    ),
    "custom": "",
}


class CampaignError(ValueError):
    """A campaign that cannot be created or changed as asked (said to the admin)."""


@dataclass(frozen=True)
class Progress:
    campaign: str
    state: str
    period: str | None
    counts: dict[str, int]
    # Recipients who turned reminders off after this campaign's reminder reached them.
    opted_out: int = 0

    @property
    def remaining(self) -> int:
        return sum(self.counts.get(s, 0) for s in OPEN)

    def as_dict(self) -> dict[str, Any]:
        return {
            "campaign": self.campaign,
            "state": self.state,
            "period": self.period,
            "sent": self.counts.get("sent", 0),
            "skipped": self.counts.get("skipped", 0),
            "failed": self.counts.get("failed", 0) + self.counts.get("interrupted", 0),
            "remaining": self.remaining,
            "opted_out": self.opted_out,
        }


def period_of(campaign: ReminderCampaign, now: datetime, tz: tzinfo) -> tuple[str, datetime] | None:
    """The period whose reminders are due at ``now`` and when it began; None before the
    first. ``once``: one period; ``monthly``: the start's day and time each month (the
    last day in shorter months), in the company timezone."""
    start = campaign.start_at
    if now < start:
        return None
    if campaign.schedule == "once":
        return "once", start
    if campaign.schedule == "cron":
        return cron_period(campaign.cron or "", start, now, tz)
    local_start = start.astimezone(tz)
    local_now = now.astimezone(tz)
    year, month = local_now.year, local_now.month
    for _ in range(2):
        day = min(local_start.day, calendar.monthrange(year, month)[1])
        moment = local_start.replace(year=year, month=month, day=day)
        if moment <= local_now:
            return f"{year}-{month:02d}", moment
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return None


def cron_period(
    expr: str, start: datetime, now: datetime, tz: tzinfo
) -> tuple[str, datetime] | None:
    """The latest fire time of ``expr`` at or before ``now`` (and not before the
    campaign's start), in the company timezone. The key is that fire time as local
    «YYYY-MM-DDTHH:MM», so two schedulers that look at the same moment agree on the
    period, and the unique (campaign, contact, period) row stops a second send. A fire
    missed while every server was down is not made up: only the latest one counts."""
    local_now = now.astimezone(tz).replace(second=0, microsecond=0) + timedelta(minutes=1)
    try:
        fired = next(CronSim(expr, local_now, reverse=True))
    except (CronSimError, StopIteration):
        return None
    if fired < start:
        return None
    return fired.strftime("%Y-%m-%dT%H:%M"), fired


def check_cron(expr: str) -> str:
    """The expression, or CampaignError saying what is wrong with it."""
    expr = " ".join(expr.split())
    if not expr:
        raise CampaignError("a cron schedule needs its expression, e.g. «0 10 1 * *»")
    try:
        CronSim(expr, datetime(2026, 1, 1))
    except CronSimError as exc:
        raise CampaignError(f"cron expression {expr!r}: {exc}") from exc
    return expr


def describe_schedule(campaign: ReminderCampaign) -> str:
    return f"cron {campaign.cron}" if campaign.schedule == "cron" else campaign.schedule


async def create(
    db: Database,
    *,
    name: str,
    kind: str,
    text: str | None,
    start_at: datetime | None = None,
    schedule: str = "once",
    min_balance: Decimal | None = None,
    due_within_days: int | None = None,
    channel: str | None = None,
    quiet_hours: str = "21:00-09:00",
    whatsapp_template: str | None = None,
    cron: str | None = None,
) -> ReminderCampaign:
    if cron and schedule == "once":
        schedule = "cron"  # an expression given is the schedule meant
    if kind not in KINDS:
        raise CampaignError(f"kind must be one of {', '.join(KINDS)}")
    if schedule not in SCHEDULES:
        raise CampaignError(f"schedule must be one of {', '.join(SCHEDULES)}")
    expr = check_cron(cron or "") if schedule == "cron" else None
    body = (text or DEFAULT_TEXTS[kind]).strip()
    if not body:
        raise CampaignError("a custom campaign needs its text")
    try:
        quiet.parse(quiet_hours)
    except ValueError as exc:
        raise CampaignError(str(exc)) from exc
    if start_at is not None and start_at.tzinfo is None:
        raise CampaignError("the start time must carry its timezone")
    async with db.session() as session:
        if await session.scalar(select(ReminderCampaign.id).where(ReminderCampaign.name == name)):
            raise CampaignError(f"a campaign named {name!r} exists already")
    row = ReminderCampaign(
        name=name,
        kind=kind,
        text=body,
        schedule=schedule,
        cron=expr,
        start_at=start_at or utcnow(),
        min_balance=min_balance
        if min_balance is not None
        else (Decimal("0") if kind == "payment_due" else None),
        due_within_days=due_within_days,
        channel=channel or None,
        quiet_hours=quiet_hours,
        whatsapp_template=whatsapp_template or None,
        state="draft",
    )
    async with db.transaction() as session:
        session.add(row)
    return row


async def get(db: Database, name: str) -> ReminderCampaign:
    async with db.session() as session:
        row = await session.scalar(select(ReminderCampaign).where(ReminderCampaign.name == name))
    if row is None:
        raise CampaignError(f"no campaign named {name!r}")
    return row


async def all_campaigns(db: Database) -> list[ReminderCampaign]:
    async with db.session() as session:
        return list(await session.scalars(select(ReminderCampaign).order_by(ReminderCampaign.id)))


_MOVES = {
    "start": ({"draft", "paused", "done"}, "running"),
    "pause": ({"running"}, "paused"),
    "resume": ({"paused"}, "running"),
}


async def move(db: Database, name: str, action: str) -> ReminderCampaign:
    """start | pause | resume. A paused campaign's sends stay queued; nothing is lost."""
    allowed, target = _MOVES[action]
    row = await get(db, name)
    if row.state not in allowed:
        raise CampaignError(f"campaign {name!r} is {row.state}: cannot {action} it")
    async with db.transaction() as session:
        await session.execute(
            update(ReminderCampaign)
            .where(ReminderCampaign.id == row.id)
            .values(state=target, updated_at=utcnow())
        )
    row.state = target
    return row


async def progress(db: Database, name: str) -> Progress:
    row = await get(db, name)
    async with db.session() as session:
        counts = dict(
            (
                await session.execute(
                    select(ReminderSend.status, func.count())
                    .where(ReminderSend.campaign_id == row.id)
                    .group_by(ReminderSend.status)
                )
            ).all()
        )
        opted_out = await session.scalar(
            select(func.count())
            .select_from(ReminderSend)
            .join(ReminderConsent, ReminderConsent.contact_id == ReminderSend.contact_id)
            .where(
                ReminderSend.campaign_id == row.id,
                ReminderSend.status == "sent",
                ReminderConsent.state == "out",
                ReminderConsent.changed_at >= ReminderSend.sent_at,
            )
        )
    return Progress(
        row.name,
        row.state,
        row.expanded_period,
        {str(k): int(v) for k, v in counts.items()},
        opted_out=int(opted_out or 0),
    )


async def by_id(db: Database, campaign_id: int) -> ReminderCampaign:
    async with db.session() as session:
        row = await session.get(ReminderCampaign, campaign_id)
    if row is None:
        raise CampaignError(f"no campaign {campaign_id}")
    return row


async def progress_all(db: Database) -> dict[int, dict[str, int]]:
    """Every campaign's sends by status, in one grouped read (the admin page's list)."""
    async with db.session() as session:
        found = (
            await session.execute(
                select(ReminderSend.campaign_id, ReminderSend.status, func.count()).group_by(
                    ReminderSend.campaign_id, ReminderSend.status
                )
            )
        ).all()
    out: dict[int, dict[str, int]] = {}
    for campaign_id, status, n in found:
        out.setdefault(int(campaign_id), {})[str(status)] = int(n)
    return out


async def skip_reasons(db: Database, name: str) -> dict[str, int]:
    row = await get(db, name)
    async with db.session() as session:
        found = (
            await session.execute(
                select(ReminderSend.reason, func.count())
                .where(ReminderSend.campaign_id == row.id, ReminderSend.status == "skipped")
                .group_by(ReminderSend.reason)
            )
        ).all()
    return {str(reason): int(n) for reason, n in found}
