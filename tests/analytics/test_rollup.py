"""The rollups are what the raw events say, however they were counted.

A random but well-formed history (conversations with the bot, hand-offs, operators
answering, transferring and closing, statuses, links, ratings) is written to the log.
Counted live in small batches, rebuilt in one go, or rebuilt from a day on, the
rollups are identical; and the counters equal a plain recount of the raw events.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from abonent.analytics.rebuild import rebuild
from abonent.analytics.reports import Stats, percentiles
from abonent.analytics.rollup import METRICS, StatsConsumer
from abonent.config import Settings
from abonent.core import eventlog
from abonent.core import events as ev
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.db.models import (
    EventRecord,
    StatsConversation,
    StatsCount,
    StatsCustomerDay,
    StatsDaily,
    StatsLink,
    StatsOperatorEvent,
    StatsQueueWait,
    StatsResponse,
    StatsStatusInterval,
    StatsTopic,
)
from abonent.db.session import Database
from conftest import require_postgres

TZ = ZoneInfo("Europe/Moscow")
START = datetime(2026, 11, 9, 0, 0, tzinfo=TZ)  # a Monday
CHANNELS = ("webchat", "tg", "wa")
INTENTS = ("payment_methods", "tariffs", "readings_submit", "outage", "personal_account")
TABLES = (
    StatsCount,
    StatsDaily,
    StatsTopic,
    StatsConversation,
    StatsResponse,
    StatsQueueWait,
    StatsStatusInterval,
    StatsOperatorEvent,
    StatsCustomerDay,
    StatsLink,
)


def history(seed: int, conversations: int = 120, days: int = 3) -> list[Event]:
    """Events of a plausible few days, in time order."""
    rnd = random.Random(seed)
    out: list[Event] = []
    contacts = list(range(1, 60))
    operators = [101, 102, 103]
    for user in operators:
        for day in range(days):
            t = START + timedelta(days=day, hours=8 + rnd.random())
            out.append(Event(ev.OPERATOR_SIGNED_IN, {"user_id": user}, occurred_at=t))
            status = "offline"
            for _ in range(rnd.randint(2, 5)):
                new = rnd.choice(("online", "break", "online"))
                out.append(
                    Event(
                        ev.OPERATOR_STATUS,
                        {"user_id": user, "previous": status, "status": new, "auto": False},
                        occurred_at=t,
                    )
                )
                status = new
                t += timedelta(minutes=rnd.randint(10, 180))
            out.append(
                Event(
                    ev.OPERATOR_STATUS,
                    {"user_id": user, "previous": status, "status": "offline", "auto": False},
                    occurred_at=t,
                )
            )
            out.append(Event(ev.OPERATOR_SIGNED_OUT, {"user_id": user}, occurred_at=t))
    ids = iter(range(1, 10**9))
    for conv in range(1, conversations + 1):
        _conversation(
            _Script(out, rnd, ids, conv, rnd.choice(CHANNELS), rnd.choice(contacts)),
            operators,
            days,
        )
    out.sort(key=lambda e: e.occurred_at or START)
    return out


class _Script:
    """One conversation's events, its clock moving forward as things happen."""

    def __init__(
        self,
        out: list[Event],
        rnd: random.Random,
        ids: Any,
        conv: int,
        channel: str,
        contact: int,
    ) -> None:
        self.out, self.rnd, self.ids = out, rnd, ids
        self.base = {"conversation_id": conv, "channel_id": channel}
        self.conv, self.contact = conv, contact
        self.t = START

    def add(self, type_: str, at: datetime | None = None, **data: Any) -> None:
        self.out.append(Event(type_, {**self.base, **data}, occurred_at=at or self.t))

    def later(self, low: int, high: int) -> None:
        self.t += timedelta(seconds=self.rnd.randint(low, high))

    def customer(self) -> None:
        self.later(5, 300)
        self.add(
            ev.MESSAGE_RECEIVED, message_id=next(self.ids), contact_id=self.contact, kind="text"
        )

    def reply(self, author: str = "bot", user: int | None = None) -> None:
        self.later(1, 200) if user else self.later(1, 1)
        self.add(ev.MESSAGE_SENT, message_id=next(self.ids), author=author, author_id=user)


def _conversation(s: _Script, operators: list[int], days: int) -> None:
    rnd = s.rnd
    s.t = START + timedelta(days=rnd.randrange(days), seconds=rnd.randrange(86400))
    s.add(ev.CONVERSATION_STARTED, contact_id=s.contact)
    for _ in range(rnd.randint(1, 4)):
        s.customer()
        if rnd.random() < 0.85:
            intent = rnd.choice(INTENTS)
            s.add(ev.TEXT_RECOGNISED, intent=intent, confidence=0.9)
            if intent == "readings_submit":
                s.add(ev.FLOW_STARTED, flow="readings")
                if rnd.random() < 0.7:
                    s.add(ev.READINGS_SUBMITTED, plan="single")
            if rnd.random() < 0.4:
                token = f"t{s.conv}x{rnd.randrange(10**9)}"
                url = rnd.choice(("https://pay.example", "https://lk.example"))
                s.add(ev.LINK_SENT, token=token, url=url, intent=intent)
                if rnd.random() < 0.5:
                    clicked = s.t + timedelta(minutes=rnd.randint(1, 3000))
                    s.add(ev.LINK_CLICKED, clicked, token=token, url=url, intent=intent)
        else:
            s.add(ev.TEXT_FALLBACK, intent="fallback", confidence=0.2, step="rephrase")
            if rnd.random() < 0.3:
                s.add(ev.PROFANITY_DETECTED)
        s.reply()
    if rnd.random() >= 0.35:
        return
    s.later(2, 2)
    s.add(ev.CONVERSATION_QUEUED, reason="handoff")
    if rnd.random() < 0.2:
        s.later(10, 600)
        s.add(ev.CONVERSATION_LEFT_QUEUE)
        return
    operator = rnd.choice(operators)
    s.later(5, 900)
    s.add(ev.CONVERSATION_ASSIGNED, assignee_id=operator, by=None, how="auto")
    for _ in range(rnd.randint(0, 3)):
        s.reply("operator", operator)
        if rnd.random() < 0.6:
            s.customer()
    if rnd.random() < 0.3:
        colleague = rnd.choice([o for o in operators if o != operator])
        s.later(30, 30)
        s.add(ev.CONVERSATION_TRANSFERRED, assignee_id=colleague, group=None, **{"from": operator})
        operator = colleague
        s.reply("operator", operator)
    s.later(60, 60)
    s.add(ev.CONVERSATION_CLOSED, by=operator, assignee_id=operator)
    s.add(ev.CSAT_ASKED, user_id=operator)
    if rnd.random() < 0.6:
        s.add(ev.CSAT_RATED, s.t + timedelta(seconds=20), rating=rnd.randint(1, 5))


async def _write(db: Database, events: list[Event]) -> None:
    for i in range(0, len(events), 97):  # several transactions, as the servers write
        async with db.write() as conn:
            await eventlog.record(conn, events[i : i + 97])


def _snapshot_query(table: Any) -> Any:
    columns = [c for c in table.__table__.columns if c.name != "id"]
    return select(*columns)


async def snapshot(db: Database) -> dict[str, list[tuple[Any, ...]]]:
    out: dict[str, list[tuple[Any, ...]]] = {}
    async with db.read() as conn:
        for table in TABLES:
            rows = (await conn.execute(_snapshot_query(table))).all()
            out[table.__tablename__] = sorted(
                (tuple(round(v, 6) if isinstance(v, float) else v for v in row) for row in rows),
                key=repr,
            )
    return out


def _settings(db: Database) -> Settings:
    return Settings(
        database_url=db.url,
        company={"timezone": "Europe/Moscow", "working_hours": {"mon-fri": "08:00-20:00"}},
    )


async def test_counted_live_in_small_batches_equals_rebuilt_and_the_raw_recount(
    db: Database,
) -> None:
    events = history(seed=7)
    await _write(db, events)
    settings = _settings(db)
    consumer = StatsConsumer(TZ, settings.company.working_hours)
    runner = eventlog.EventConsumers(db, LocalBus(), [consumer], batch=7)
    async with db.read() as conn:
        logged = len((await conn.execute(select(EventRecord.id))).all())
    assert logged >= len(events)  # and the migration's log.started marker, if any
    assert await runner.catch_up() == logged
    assert await runner.catch_up() == 0  # nothing is counted twice
    live = await snapshot(db)

    # A plain recount of the raw events, by local day and channel.
    async with db.read() as conn:
        raw = (
            await conn.execute(select(EventRecord.type, EventRecord.occurred_at, EventRecord.data))
        ).all()
    counted: Counter[tuple[str, date, str]] = Counter()
    for kind, at, data in raw:
        counted[(kind, at.astimezone(TZ).date(), data.get("channel_id", ""))] += 1
    rollup: Counter[tuple[str, date, str]] = Counter()
    for row in live["stats_counts"]:
        metric, day, _hour, channel, _user, _key, n, _total = row
        rollup[(metric, day, channel)] += n
    pairs = {
        "msg.customer": ev.MESSAGE_RECEIVED,
        "bot.recognised": ev.TEXT_RECOGNISED,
        "bot.fallback": ev.TEXT_FALLBACK,
        "readings.submitted": ev.READINGS_SUBMITTED,
        "link.sent": ev.LINK_SENT,
        "link.clicks": ev.LINK_CLICKED,
        "profanity": ev.PROFANITY_DETECTED,
        "queue.queued": ev.CONVERSATION_QUEUED,
        "op.transfers": ev.CONVERSATION_TRANSFERRED,
        "csat.asked": ev.CSAT_ASKED,
    }
    for metric, kind in pairs.items():
        expected = {(d, c): n for (k, d, c), n in counted.items() if k == kind}
        got = {(d, c): n for (m, d, c), n in rollup.items() if m == metric}
        assert got == expected, metric
    assert sum(n for (m, _d, _c), n in rollup.items() if m == "msg.operator") == sum(
        1 for kind, _at, data in raw if kind == ev.MESSAGE_SENT and data.get("author") == "operator"
    )
    # The daily rollup is the hourly one summed, and every counter is one reports read.
    by_day: Counter[tuple[Any, ...]] = Counter()
    for metric, day, _hour, channel, user, key, n, _total in live["stats_counts"]:
        by_day[(metric, day, channel, user, key)] += n
    assert {row[:5]: row[5] for row in live["stats_daily"]} == dict(by_day)
    assert {row[0] for row in live["stats_counts"]} <= METRICS
    started = {data["conversation_id"] for kind, _at, data in raw if kind == ev.MESSAGE_RECEIVED}
    assert len(live["stats_conversations"]) == len(started)

    # Rebuilt from the log in one go: the same rows, to the last column.
    await rebuild(db, settings)
    assert await snapshot(db) == live
    # Rebuilt from the middle day on (conversations crossing midnight included).
    await rebuild(db, settings, since=(START + timedelta(days=1)).date())
    assert await snapshot(db) == live
    # And the consumer, handed the cursor back, finds nothing left to count.
    assert await runner.catch_up() == 0


async def test_reports_of_a_period_add_up_to_its_days(db: Database) -> None:
    """Every counter of a three-day period is the sum of its days' (nothing is lost or
    counted twice at the edges), and the percentiles come from the stored delays."""
    events = history(seed=11)
    await _write(db, events)
    settings = _settings(db)
    runner = eventlog.EventConsumers(
        db, LocalBus(), [StatsConsumer(TZ, settings.company.working_hours)]
    )
    await runner.catch_up()
    stats = Stats(db, TZ, {"tg": "telegram", "wa": "whatsapp", "webchat": "webchat"})
    days = [(START + timedelta(days=i)).date() for i in range(3)]
    whole = await stats.summary(stats.period(days[0], days[-1]))
    parts = [await stats.summary(stats.period(d, d)) for d in days]
    for key in ("total", "bot_only", "to_operator"):
        assert whole["conversations"][key] == sum(p["conversations"][key] for p in parts)
    for key in ("free_text", "recognised", "fallback"):
        assert whole["bot"][key] == sum(p["bot"][key] for p in parts)
    for key in ("queued", "abandoned"):
        assert whole["queue"][key] == sum(p["queue"][key] for p in parts)
    assert whole["links"]["sent"] == sum(p["links"]["sent"] for p in parts)
    assert whole["csat"]["answered"] == sum(p["csat"]["answered"] for p in parts)
    for login, row in whole["operators"].items():
        assert row["replies"] == sum(p["operators"].get(login, {}).get("replies", 0) for p in parts)
        assert row["online_s"] == sum(
            p["operators"].get(login, {}).get("online_s", 0) for p in parts
        )
    assert (
        whole["conversations"]["bot_only"] + whole["conversations"]["to_operator"]
        == (whole["conversations"]["total"])
    )
    async with db.read() as conn:
        firsts = sorted(
            (
                await conn.execute(
                    select(StatsResponse.seconds).where(StatsResponse.kind == "first")
                )
            ).scalars()
        )
    report = await stats.report(stats.period(days[0], days[-1]))
    totals = report["operators"]["totals"]["first_response_s"]
    assert totals == percentiles(firsts) and totals["count"] == len(firsts) > 10
    # Per operator too (PostgreSQL computes them itself: the same interpolation).
    for row in report["operators"]["operators"]:
        async with db.read() as conn:
            mine = list(
                (
                    await conn.execute(
                        select(StatsResponse.seconds).where(
                            StatsResponse.kind == "next", StatsResponse.user_id == row["user_id"]
                        )
                    )
                ).scalars()
            )
        assert row["response_s"] == percentiles(mine)


@pytest.mark.services
async def test_two_consumers_on_postgresql_share_the_work_and_count_each_event_once(
    db: Database,
) -> None:
    """Two processes' consumers (two engines here) racing over one log: each batch is
    taken by one of them (the cursor row is locked, the other skips), so the rollups are
    exactly those of a single consumer."""
    require_postgres()
    events = history(seed=23, conversations=200)
    settings = _settings(db)
    hours = settings.company.working_hours
    other = Database(db.url)
    try:
        runners = [
            eventlog.EventConsumers(d, LocalBus(), [StatsConsumer(TZ, hours)], batch=5)
            for d in (db, other)
        ]
        writing = asyncio.create_task(_write(db, events))
        counted = 0
        while not writing.done():
            counted += sum(await asyncio.gather(*(r.catch_up() for r in runners)))
        await writing
        counted += sum(await asyncio.gather(*(r.catch_up() for r in runners)))
        async with db.read() as conn:
            logged = len((await conn.execute(select(EventRecord.id))).all())
        assert counted == logged
        live = await snapshot(db)
        await rebuild(db, settings)
        assert await snapshot(db) == live
    finally:
        await other.dispose()


async def test_a_rebuild_while_the_servers_count_and_write_counts_nothing_twice(
    db: Database,
) -> None:
    events = history(seed=31)
    half = len(events) // 2
    settings = _settings(db)
    runner = eventlog.EventConsumers(
        db, LocalBus(), [StatsConsumer(TZ, settings.company.working_hours)], batch=11
    )
    await _write(db, events[:half])
    await runner.catch_up()

    async def keep_counting(until: asyncio.Task[Any]) -> None:
        while not until.done():
            await runner.catch_up()
            await asyncio.sleep(0)

    writing = asyncio.create_task(_write(db, events[half:]))
    rebuilding = asyncio.create_task(rebuild(db, settings))
    await asyncio.gather(writing, rebuilding, keep_counting(rebuilding))
    await runner.catch_up()
    during = await snapshot(db)
    await rebuild(db, settings)
    assert await snapshot(db) == during


async def test_raw_events_are_pruned_only_once_every_consumer_has_them(db: Database) -> None:
    events = history(seed=5)
    await _write(db, events)
    settings = _settings(db)
    consumer = StatsConsumer(TZ, settings.company.working_hours)
    runner = eventlog.EventConsumers(db, LocalBus(), [consumer], batch=40)
    later = START + timedelta(days=30)
    assert await runner.prune(later) == 0  # the consumer has not even started
    assert await runner.run_once(consumer) == 40
    async with db.read() as conn:
        before = len((await conn.execute(select(EventRecord.id))).all())
    removed = await runner.prune(later)
    assert 39 <= removed <= 40  # the 40 applied (the log.started marker always stays)
    async with db.read() as conn:
        assert len((await conn.execute(select(EventRecord.id))).all()) == before - removed
    await runner.catch_up()
    counted = await snapshot(db)
    # Only what is older than the cut-off goes; the rollups stay as they were.
    cutoff = START + timedelta(days=1)
    await runner.prune(cutoff)
    async with db.read() as conn:
        oldest = await conn.scalar(
            select(EventRecord.occurred_at)
            .where(EventRecord.type != ev.LOG_STARTED)
            .order_by(EventRecord.occurred_at)
            .limit(1)
        )
    assert oldest is not None and oldest >= cutoff
    assert await snapshot(db) == counted


async def test_conversations_page_by_page_and_by_topic_are_the_whole_list(db: Database) -> None:
    events = history(seed=13)
    await _write(db, events)
    settings = _settings(db)
    runner = eventlog.EventConsumers(
        db, LocalBus(), [StatsConsumer(TZ, settings.company.working_hours)]
    )
    await runner.catch_up()
    stats = Stats(db, TZ, {"tg": "telegram", "wa": "whatsapp", "webchat": "webchat"})
    period = stats.period(START.date(), (START + timedelta(days=2)).date())
    everything = (await stats.conversations(period, limit=1000))["conversations"]
    assert len(everything) == 120
    paged = [row async for page in stats.conversation_pages(period, page=7) for row in page]
    assert paged == everything
    for topic in INTENTS:
        found = await stats.conversations(period, topic=topic, limit=1000)
        expected = [c for c in everything if topic in c["topics"]]
        assert found["conversations"] == expected and found["total"] == len(expected)
    handed = await stats.conversations(period, handed_over=True, limit=1000)
    assert handed["conversations"] == [c for c in everything if c["handed_over"]]
