"""A campaign's statistics from the event log: what the platform took or refused, who
clicked its payment link, who turned reminders off after it and whose readings
followed within the window — and cron schedules, whose period is the fire time."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from typer.testing import CliRunner

from abonent.analytics.campaigns import campaign_stats
from abonent.automation.reminders import campaigns
from abonent.db.models import ReminderCampaign
from automation import test_reminders as base
from automation.test_reminders import (
    create,
    customers,
    reminders_to,
    run_sender,
    sender,
    tg_press,
    tg_says,
)
from fakes.telegram import FakeTelegram
from support import Clock, LiveServer, moscow, to_values, web_chat

# The end-to-end world of test_reminders: the server, fake Telegram and WhatsApp, a clock.
server = base.server
tg = base.tg
wa = base.wa
clock = base.clock


def figures(server: LiveServer, name: str) -> dict[str, Any]:
    async def go() -> dict[str, Any]:
        await server.runtime.consumers.catch_up()
        [found] = await campaign_stats(server.runtime.db, [name])
        return found.as_dict()

    result: dict[str, Any] = server.call(go())
    return result


def tg_submits(server: LiveServer, tg: FakeTelegram, chat: int, number: str, value: str) -> None:
    tg_press(server, tg, chat, "readings")
    tg_says(server, tg, chat, number)
    tg_press(server, tg, chat, "yes")
    tg_says(server, tg, chat, value)
    assert tg.sent[-1].text.startswith("Показания приняты"), tg.sent[-1].text


def test_the_figures_count_what_followed_each_reminder(
    server: LiveServer, tg: FakeTelegram, wa: Any, clock: Clock
) -> None:
    customers(server, tg, wa, clock)  # Tuesday 8 December, 11:00
    create(
        server,
        "december",
        text="{name}, ваша задолженность {amount} по счёту {account}. Оплатить: {link}",
    )
    run_sender(server, sender(server))
    [to_ivan] = reminders_to(tg, 1001)
    link = re.search(r"http://\S+/r/\S+", to_ivan)
    assert link is not None
    # Ivan opens the payment link twice and submits his readings the next day.
    for _ in range(2):
        r = httpx.get(link.group(0), follow_redirects=False)
        assert r.status_code == 302
    clock.advance(24 * 3600)
    tg_submits(server, tg, 1001, "1000000001", "150")
    # Pyotr turns reminders off from the reminder itself.
    tg_press(server, tg, 1002, "reminders:off")
    # The WhatsApp customer's readings come 8 days later: past the 7-day window.
    clock.advance(8 * 24 * 3600)

    async def late() -> None:
        async with web_chat(server) as me:
            await to_values(me, "1000000004")
            replies = await me.say("150")
        assert any(m["text"].startswith("Показания приняты") for m in replies)

    asyncio.run(late())

    got = figures(server, "december")
    assert {k: got[k] for k in ("sent", "delivered", "failed", "skipped", "remaining")} == {
        "sent": 4,
        "delivered": 4,
        "failed": 0,
        "skipped": 0,
        "remaining": 0,
    }
    assert (got["link_clicks"], got["clicked"]) == (2, 1)
    assert (got["opted_out"], got["followed"]) == (1, 1)

    # A second campaign: Ivan has blocked the bot, Pyotr is opted out.
    tg.blocked.add(1001)
    create(server, "january", channel="telegram")
    run_sender(server, sender(server))
    got = figures(server, "january")
    assert (got["sent"], got["delivered"], got["failed"], got["skipped"]) == (1, 0, 1, 1)
    # Ivan's readings of last week belong to the first campaign only.
    assert (got["followed"], got["opted_out"], got["link_clicks"]) == (0, 0, 0)
    assert figures(server, "december")["followed"] == 1


def test_status_prints_the_figures(
    server: LiveServer, tg: FakeTelegram, wa: Any, clock: Clock, monkeypatch: Any
) -> None:
    customers(server, tg, wa, clock)
    create(server, "debts", channel="telegram")
    run_sender(server, sender(server))
    tg_press(server, tg, 1001, "reminders:off")
    server.call(server.runtime.consumers.catch_up())

    from abonent.cli import app
    from abonent.config import get_settings

    monkeypatch.setenv("ABONENT_DATABASE_URL", server.runtime.settings.database_url)
    monkeypatch.delenv("ABONENT_CONFIG", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["reminders", "status", "debts"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "sent 2, skipped 0, failed 0, remaining 0" in result.stdout
    assert (
        "Statistics: handed to the platform 2, delivered 2, failed 0; within 7 days: "
        "opted out 1, readings submitted 0; link clicks 0 by 0 recipients"
    ) in result.stdout


def test_a_cron_campaign_sends_once_per_fire_time(
    server: LiveServer, tg: FakeTelegram, wa: Any, clock: Clock
) -> None:
    customers(server, tg, wa, clock)  # Tuesday 8 December, 11:00
    create(
        server,
        "twice-a-month",
        channel="telegram",
        cron="0 10 8,22 * *",
        start_at=moscow(2026, 12, 1, 0, 0),
    )
    row = server.call(campaigns.get(server.runtime.db, "twice-a-month"))
    assert (row.schedule, row.cron) == ("cron", "0 10 8,22 * *")
    # The 8th's 10:00 fired an hour ago: that period goes out, once, however many
    # schedulers look.
    for _ in range(3):
        run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 1
    assert server.call(campaigns.get(server.runtime.db, "twice-a-month")).state == "running"
    clock.now = moscow(2026, 12, 22, 9, 59)
    run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 1
    clock.now = moscow(2026, 12, 22, 10, 0)
    run_sender(server, sender(server))
    run_sender(server, sender(server))
    assert len(reminders_to(tg, 1001)) == 2
    assert (
        server.call(campaigns.get(server.runtime.db, "twice-a-month")).expanded_period
        == "2026-12-22T10:00"
    )


def test_cron_periods_are_the_fire_times_in_the_company_timezone() -> None:
    tz = ZoneInfo("Asia/Yekaterinburg")
    start = datetime(2026, 12, 1, 0, 0, tzinfo=tz)
    row = ReminderCampaign(schedule="cron", cron="30 9 * * 1", start_at=start)
    monday = datetime(2026, 12, 7, 9, 30, tzinfo=tz)
    assert campaigns.period_of(row, monday - timedelta(seconds=1), tz) is None  # none yet
    assert campaigns.period_of(row, monday, tz) == ("2026-12-07T09:30", monday)
    # The same instant seen from UTC (another server's clock) gives the same period.
    later = (monday + timedelta(days=3)).astimezone(ZoneInfo("UTC"))
    assert campaigns.period_of(row, later, tz) == ("2026-12-07T09:30", monday)
    for bad in ("", "61 * * * *", "every day"):
        try:
            campaigns.check_cron(bad)
        except campaigns.CampaignError as exc:
            assert "cron" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")
