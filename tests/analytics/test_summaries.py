"""The summaries the long reports read are what their raw rollup rows say.

``stats_response_values``, ``stats_queue_wait_values``, ``stats_customer_counts``,
``stats_monthly`` and ``stats_hourly`` are kept beside the per-fact rows so a quarter's
report reads a few rows a day. Whether counted live in small batches, with a batch
applied twice, rebuilt in one go or from a day on, or filled by the migration from
rollups already there, each equals a recomputation from ``stats_responses``,
``stats_queue_waits``, ``stats_customer_days``, ``stats_daily`` and ``stats_counts``;
and the reports read from them give the figures the raw rows give.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import date, timedelta
from typing import Any

from alembic import command
from sqlalchemy import Connection, distinct, func, select

from abonent.analytics.rebuild import rebuild
from abonent.analytics.reports import Scope, Stats, percentiles
from abonent.analytics.rollup import ALL_CHANNELS, StatsConsumer
from abonent.analytics.summaries import unpack
from abonent.core import eventlog
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.db.migrate import alembic_config, upgrade
from abonent.db.models import (
    StatsCount,
    StatsCustomerCount,
    StatsCustomerDay,
    StatsDaily,
    StatsHourly,
    StatsMonthly,
    StatsQueueWait,
    StatsQueueWaitValues,
    StatsResponse,
    StatsResponseValues,
)
from abonent.db.session import Database
from analytics.test_rollup import START, TZ, _settings, _write, history

CHANNEL_TYPES = {"tg": "telegram", "wa": "whatsapp", "webchat": "webchat"}


async def summaries(db: Database) -> dict[str, dict[Any, Any]]:
    """The summary tables as plain values (packed delays unpacked, per channel)."""
    async with db.read() as conn:
        responses: dict[Any, Any] = {}
        for row in (await conn.execute(select(StatsResponseValues.__table__))).mappings():
            seconds, work = unpack(row["seconds"]).tolist(), unpack(row["work_seconds"]).tolist()
            channels, at = {}, 0
            for channel, count in row["channels"]:
                channels[channel] = (seconds[at : at + count], work[at : at + count])
                at += count
            assert at == len(seconds) == len(work)
            responses[(row["day"], row["kind"], row["user_id"])] = channels
        waits = {
            (r.day, r.outcome, r.channel): unpack(r.seconds).tolist()
            for r in (await conn.execute(select(StatsQueueWaitValues.__table__))).all()
        }
        customers = {
            (r.channel, r.day, r.prev_day): (r.n, r.first_n)
            for r in (await conn.execute(select(StatsCustomerCount.__table__))).all()
        }
        monthly = {
            (r.metric, r.month, r.channel, r.user_id, r.key): (r.n, round(r.total, 6))
            for r in (await conn.execute(select(StatsMonthly.__table__))).all()
        }
        hourly = {
            (r.metric, r.day, r.hour): r.n
            for r in (await conn.execute(select(StatsHourly.__table__))).all()
        }
    return {
        "responses": responses,
        "waits": waits,
        "customers": customers,
        "monthly": monthly,
        "hourly": hourly,
    }


async def recomputed(db: Database) -> dict[str, dict[Any, Any]]:
    """The same, recomputed from the raw rollup rows."""
    async with db.read() as conn:
        r = StatsResponse
        per: dict[Any, dict[str, tuple[list[float], list[float]]]] = defaultdict(dict)
        for day, kind, user, channel, seconds, work in await conn.execute(
            select(r.day, r.kind, r.user_id, r.channel, r.seconds, r.work_seconds)
        ):
            lists = per[(day, kind, user)].setdefault(channel, ([], []))
            lists[0].append(seconds)
            lists[1].append(work)
        responses = {
            key: {c: (sorted(s), sorted(w)) for c, (s, w) in channels.items()}
            for key, channels in per.items()
        }
        w = StatsQueueWait
        waits: dict[Any, list[float]] = defaultdict(list)
        for day, outcome, channel, seconds in await conn.execute(
            select(w.day, w.outcome, w.channel, w.seconds)
        ):
            waits[(day, outcome, channel)].append(seconds)
        d = StatsCustomerDay
        customers: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
        for channel, day, prev, first in await conn.execute(
            select(d.channel, d.day, d.prev_day, d.first_day)
        ):
            cell = customers[(channel, day, prev if prev is not None else day)]
            cell[0] += 1
            cell[1] += prev is not None and prev == first
        monthly: dict[Any, list[float]] = defaultdict(lambda: [0, 0.0])
        for metric, day, channel, user, key, n, total in await conn.execute(
            select(StatsDaily.__table__)
        ):
            sums = monthly[(metric, day.replace(day=1), channel, user, key)]
            sums[0] += n
            sums[1] += total
        hourly: Counter[Any] = Counter()
        c = StatsCount
        for metric, day, hour, n in await conn.execute(select(c.metric, c.day, c.hour, c.n)):
            hourly[(metric, day, hour)] += n
    return {
        "responses": responses,
        "waits": {k: sorted(v) for k, v in waits.items()},
        "customers": {k: tuple(v) for k, v in customers.items()},
        "monthly": {k: (int(n), round(t, 6)) for k, (n, t) in monthly.items()},
        "hourly": dict(hourly),
    }


def _shifted(events: list[Event], days: int, offset: int) -> list[Event]:
    """A copy of a history ``days`` later, with conversations, messages and links of
    its own (the same customers and operators)."""
    out = []
    for e in events:
        data = dict(e.data)
        for key in ("conversation_id", "message_id"):
            if isinstance(data.get(key), int):
                data[key] += offset
        if "token" in data:
            data["token"] = f"{data['token']}o{offset}"
        assert e.occurred_at is not None
        out.append(Event(e.type, data, occurred_at=e.occurred_at + timedelta(days=days)))
    return out


def _across_months(seed: int) -> list[Event]:
    """Three-day histories from the end of October to the start of December: periods
    over them hold whole months and days at their edges."""
    base = history(seed, conversations=60)
    events: list[Event] = []
    for i, shift in enumerate((-11, -6, 3, 12, 20)):  # from Oct 29, Nov 3, 12, 21, 29
        events += _shifted(base, shift, i * 100_000)
    return sorted(events, key=lambda e: e.occurred_at or START)


async def test_summaries_equal_the_raw_rows_counted_live_twice_rebuilt_and_migrated(
    db: Database,
) -> None:
    events = _across_months(seed=41)
    await _write(db, events)
    settings = _settings(db)
    consumer = StatsConsumer(TZ, settings.company.working_hours)
    runner = eventlog.EventConsumers(db, LocalBus(), [consumer], batch=9)
    await runner.catch_up()
    live = await summaries(db)
    assert live == await recomputed(db)
    assert len(live["responses"]) > 50 and len(live["waits"]) > 20
    months = {key[1] for key in live["monthly"]}
    assert months == {date(2026, 10, 1), date(2026, 11, 1), date(2026, 12, 1)}
    assert any(n > 1 for n, _first in live["customers"].values())
    assert any(first for _n, first in live["customers"].values())

    # Rebuilt in one go, and from a day in the middle of a month on: the same rows.
    await rebuild(db, settings)
    assert await summaries(db) == live
    await rebuild(db, settings, since=date(2026, 11, 13))
    assert await summaries(db) == live

    # The migration fills them from the rollups an installation already has.
    async with db.engine.begin() as conn:
        await conn.run_sync(_one_revision_down)
    await upgrade(db.engine)
    assert await summaries(db) == live

    # A batch applied twice (a consumer that crashed after its work, before its cursor
    # moved, is the case the log's transaction rules out; the summaries hold anyway).
    async with db.read() as conn:
        stored = await eventlog.read_after(conn, 0, 0, 100_000)
    again = [e for e in stored if START + timedelta(days=1) <= e.occurred_at][:400]
    async with db.write() as conn:
        await consumer.apply(conn, again)
    twice = await summaries(db)
    assert twice == await recomputed(db)
    assert twice["responses"] != live["responses"]  # the replies were counted again


def _one_revision_down(conn: Connection) -> None:
    command.downgrade(alembic_config(conn), "-1")


async def test_reports_from_the_summaries_give_the_raw_rows_figures(db: Database) -> None:
    """Percentiles per operator and channel, queue waits, unique and returning customers
    and every counter: as the raw rows give them, for periods with whole months."""
    await _write(db, _across_months(seed=43))
    settings = _settings(db)
    await eventlog.EventConsumers(
        db, LocalBus(), [StatsConsumer(TZ, settings.company.working_hours)]
    ).catch_up()
    stats = Stats(db, TZ, CHANNEL_TYPES)
    periods = [
        stats.period(date(2026, 10, 29), date(2026, 12, 3)),  # Nov whole, edges around it
        stats.period(date(2026, 11, 1), date(2026, 11, 30)),  # November alone
        stats.period(date(2026, 10, 31), date(2026, 11, 14)),
    ]
    for period in periods:
        for scope in (Scope(), Scope(channels=frozenset({"tg"})), Scope(users=frozenset({102}))):
            report = await stats.report(period, scope)
            await _check_against_raw(db, period.start, period.end, scope, report)
    # Every counter of the long period is the sum of its days' (read by day only).
    whole = await stats.summary(periods[0])
    days = [await stats.summary(stats.period(d, d)) for d in periods[0].days]
    assert whole["conversations"]["total"] == sum(p["conversations"]["total"] for p in days) > 0
    for key in ("free_text", "recognised", "fallback"):
        assert whole["bot"][key] == sum(p["bot"][key] for p in days)
    assert whole["queue"]["queued"] == sum(p["queue"]["queued"] for p in days) > 0
    assert whole["csat"]["answered"] == sum(p["csat"]["answered"] for p in days)
    for login, row in whole["operators"].items():
        for key in ("conversations", "replies", "transfers"):
            assert row[key] == sum(p["operators"].get(login, {}).get(key, 0) for p in days)
    hourly = await stats.series(periods[0], hourly=True)
    daily = await stats.series(periods[0])
    assert sum(r["customer_messages"] for r in hourly) == sum(r["customer_messages"] for r in daily)
    assert sum(r["links_sent"] for r in hourly) == whole["links"]["sent"] > 0


async def _check_against_raw(
    db: Database, start: date, end: date, scope: Scope, report: dict[str, Any]
) -> None:
    r, w, d = StatsResponse, StatsQueueWait, StatsCustomerDay
    responses = [r.day >= start, r.day <= end]
    waits = [w.day >= start, w.day <= end, w.outcome == "assigned"]
    if scope.channels is not None:
        responses.append(r.channel.in_(scope.channels))
        waits.append(w.channel.in_(scope.channels))
    if scope.users is not None:
        responses.append(r.user_id.in_(scope.users))
    async with db.read() as conn:
        rows = (await conn.execute(select(r.user_id, r.kind, r.seconds).where(*responses))).all()
        queued = list((await conn.execute(select(w.seconds).where(*waits))).scalars())
        channel = next(iter(scope.channels)) if scope.channels is not None else ALL_CHANNELS
        in_period = [d.channel == channel, d.day >= start, d.day <= end]
        unique = await conn.scalar(select(func.count(distinct(d.contact_id))).where(*in_period))
        returning = await conn.scalar(
            select(func.count(distinct(d.contact_id))).where(*in_period, d.prev_day.is_not(None))
        )
    operators = report["operators"]
    for kind, column in (("first", "first_response_s"), ("next", "response_s")):
        assert operators["totals"][column] == percentiles([s for _u, k, s in rows if k == kind])
        for row in operators["operators"]:
            mine = [s for u, k, s in rows if k == kind and u == row["user_id"]]
            assert row[column] == percentiles(mine)
    slowest = sorted((s for _u, _k, s in rows), reverse=True)[:20]
    assert [row["seconds"] for row in operators["slowest"]] == [round(s, 1) for s in slowest]
    delays = operators["delays"]
    assert sum(b["first"] + b["next"] for b in delays) == len(rows)
    assert report["queue"]["wait_s"] == percentiles(queued)
    customers = report["traffic"]["customers"]
    assert (customers["unique"], customers["returning"]) == (unique, returning)
    assert rows and queued and unique
