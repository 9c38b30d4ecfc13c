"""The reports: figures over a period, read from the rollups only (never raw messages).

One ``Stats`` object answers every report of the page, the JSON API, the exports and
``abonent stats summary``, so they can only ever show the same numbers. A period is a
range of local days in the company's time zone, both ends included. Filters narrow
by channel (ids) and by operator (ids; a group is turned into its operators).

Percentiles are exact (computed from every stored delay, not from buckets): a
supervisor who checks one slow reply by hand finds the same seconds here. The delays
are read from their daily summaries (``analytics.summaries``: each day's values,
sorted and packed), so a quarter is a few thousand rows rather than every reply.
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import (
    BigInteger,
    and_,
    case,
    cast,
    distinct,
    extract,
    func,
    literal,
    or_,
    select,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.analytics.rollup import ALL_CHANNELS, METRICS
from abonent.analytics.summaries import VALUE_SIZE, Values, unpack
from abonent.clock import utcnow
from abonent.db.models import (
    StatsConversation,
    StatsCount,
    StatsCustomerCount,
    StatsCustomerDay,
    StatsDaily,
    StatsHourly,
    StatsMonthly,
    StatsOperatorEvent,
    StatsQueueWaitValues,
    StatsResponse,
    StatsResponseValues,
    StatsStatusInterval,
    StatsTopic,
    User,
)
from abonent.db.session import Database

T = TypeVar("T")
CHANNEL_TYPES = ("webchat", "telegram", "whatsapp", "viber", "vk", "max")
AUTHORS = ("customer", "bot", "operator", "system")
SLOWEST = 20
TOP_LINKS = 10
# Response-delay histogram buckets (upper bounds, seconds) for the page's chart.
DELAY_BUCKETS: tuple[tuple[str, float], ...] = (
    ("< 30 с", 30),
    ("30 с – 1 мин", 60),
    ("1–3 мин", 180),
    ("3–5 мин", 300),
    ("5–15 мин", 900),
    ("15–60 мин", 3600),
    ("1–4 ч", 14400),
    ("> 4 ч", math.inf),
)


class PeriodError(ValueError):
    """A period or filter that cannot be reported on; the message says why."""


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # included
    tz: ZoneInfo

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise PeriodError("the period ends before it starts")
        if (self.end - self.start).days > 3660:
            raise PeriodError("a period may be at most ten years long")

    @property
    def since(self) -> datetime:
        return datetime.combine(self.start, time(), self.tz)

    @property
    def until(self) -> datetime:
        return datetime.combine(self.end + timedelta(days=1), time(), self.tz)

    @property
    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    def spans(self) -> list[tuple[bool, date, date, int]]:
        """The period as few rollup rows as possible: (by month?, first, last, sign).
        A calendar month it covers whole is one month; one it covers in part is its
        days, or, when it covers most of it, the month less the days it leaves out
        (first and last are days, or the first days of months; both included)."""
        out: list[tuple[bool, date, date, int]] = []
        month = self.start.replace(day=1)
        while month <= self.end:
            after = _next_month(month)
            first, last = max(self.start, month), min(self.end, after - timedelta(days=1))
            covered, length = (last - first).days + 1, (after - month).days
            # A month's rows are about two days' worth: worth it when they save more.
            if covered == length or covered - (length - covered) > 2:
                out.append((True, month, month, 1))
                if first > month:
                    out.append((False, month, first - timedelta(days=1), -1))
                if last < after - timedelta(days=1):
                    out.append((False, last + timedelta(days=1), after - timedelta(days=1), -1))
            else:
                out.append((False, first, last, 1))
            month = after
        return out

    @property
    def hourly(self) -> bool:
        """Short periods are drawn by the hour, longer ones by the day."""
        return (self.end - self.start).days < 2

    def as_dict(self) -> dict[str, str]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "timezone": str(self.tz),
        }


def _next_month(day: date) -> date:
    """The first day of the month after ``day``'s."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def named_period(name: str, today: date, tz: ZoneInfo) -> Period:
    """today | yesterday | 7d | 30d | 90d, ending today (yesterday: that day alone)."""
    spans = {"today": 0, "7d": 6, "30d": 29, "90d": 89}
    if name == "yesterday":
        day = today - timedelta(days=1)
        return Period(day, day, tz)
    if name not in spans:
        raise PeriodError(f"unknown period {name!r}: today, yesterday, 7d, 30d or 90d")
    return Period(today - timedelta(days=spans[name]), today, tz)


@dataclass(frozen=True)
class Scope:
    """Filters: channel ids and operator ids; None means all."""

    channels: frozenset[str] | None = None
    users: frozenset[int] | None = None


def percentiles(values: Sequence[float]) -> dict[str, float | None]:
    """Median, 90th percentile (linear interpolation) and maximum; None when empty."""
    return _spread_of(sorted(values))


def _spread_of(ordered: Sequence[float] | Values) -> dict[str, float | None]:
    """``percentiles`` of values already in order."""
    if len(ordered) == 0:
        return {"median": None, "p90": None, "max": None, "count": 0}
    return {
        "median": _round(_quantile(ordered, 0.5)),
        "p90": _round(_quantile(ordered, 0.9)),
        "max": _round(float(ordered[-1])),
        "count": len(ordered),
    }


def _quantile(ordered: Sequence[float] | Values, q: float) -> float:
    position = (len(ordered) - 1) * q
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    below, above = float(ordered[low]), float(ordered[high])
    return below + (above - below) * (position - low)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def _share(part: float, whole: float) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass
class _Counts:
    """A period's counters summed over its days: per metric, rows of (channel, user,
    key, n, total)."""

    rows: dict[str, list[tuple[str, int, str, int, float]]] = field(default_factory=dict)

    def of(self, metric: str) -> list[tuple[str, int, str, int, float]]:
        return self.rows.get(metric, [])

    def total(self, metric: str, *, user: int | None = None, key: str | None = None) -> int:
        return sum(
            r[3]
            for r in self.of(metric)
            if (user is None or r[1] == user) and (key is None or r[2] == key)
        )

    def sum_total(self, metric: str, *, user: int | None = None) -> float:
        return sum(r[4] for r in self.of(metric) if user is None or r[1] == user)

    def by(self, metric: str, index: int) -> dict[Any, int]:
        """Counts per channel (0), operator (1) or key (2)."""
        out: dict[Any, int] = defaultdict(int)
        for r in self.of(metric):
            out[r[index]] += r[3]
        return dict(out)

    def users(self) -> set[int]:
        return {r[1] for rows in self.rows.values() for r in rows if r[1]}


Spread = dict[str, float | None]  # median, p90, max, count


_HOUR_US = 3_600_000_000
_MICROSECOND = timedelta(microseconds=1)


def _sqlite_micros(moment: Any) -> Any:
    """A time SQLite keeps as text, in whole microseconds since 1970 (UTC). The
    fraction is cut off before strftime, which would round it to milliseconds."""
    seconds = cast(func.strftime("%s", func.substr(moment, 1, 19)), BigInteger)
    return seconds * 1_000_000 + cast(func.substr(moment, 21, 6), BigInteger)


def _spread(
    found: dict[tuple[Any, ...], list[Spread]], user: int | None, kind: str, which: int
) -> Spread:
    spreads = found.get((user, kind))
    return spreads[which] if spreads is not None else percentiles([])


def _ordered(parts: Sequence[bytes]) -> Values:
    """The values of several summary rows (or parts of them) in one sorted array."""
    return np.sort(unpack(b"".join(parts)), kind="stable")


def _segments(
    row_channels: list[Any], blobs: Sequence[bytes], wanted: frozenset[str]
) -> list[bytes]:
    """The parts of a summary row's ``blobs`` that belong to the ``wanted`` channels
    (``row_channels`` lists each channel's count, in the order of its values)."""
    out = [bytearray() for _ in blobs]
    start = 0
    for channel, count in row_channels:
        end = start + int(count) * VALUE_SIZE
        if channel in wanted:
            for part, blob in zip(out, blobs, strict=True):
                part += blob[start:end]
        start = end
    return [bytes(part) for part in out]


class Stats:
    """Reports over the rollups. ``channel_types`` maps channel ids to their platform
    (``telegram``…): rollups keep ids, reports speak of platforms."""

    def __init__(
        self,
        db: Database,
        tz: ZoneInfo,
        channel_types: dict[str, str],
        *,
        night_hours: frozenset[int] = frozenset({23, 0, 1, 2, 3, 4, 5, 6}),
        titles: Callable[[str], str] | None = None,
    ) -> None:
        self.db = db
        self.tz = tz
        self.channel_types = channel_types
        self.night_hours = night_hours
        # Intent id → its title in the knowledge base, for the topics table.
        self.title = titles or (lambda intent: intent)

    # ------------------------------------------------------------------ helpers
    def channel_type(self, channel_id: str) -> str:
        known = self.channel_types.get(channel_id)
        if known:
            return known
        return channel_id if channel_id in CHANNEL_TYPES else "other"

    def period(self, start: date, end: date) -> Period:
        return Period(start, end, self.tz)

    async def users(self) -> dict[int, dict[str, Any]]:
        async with self.db.read() as conn:
            rows = await conn.execute(
                select(User.id, User.login, User.name, User.role, User.groups, User.active)
            )
            return {
                int(r.id): {
                    "id": int(r.id),
                    "login": r.login,
                    "name": r.name,
                    "role": r.role,
                    "groups": list(r.groups or []),
                    "active": bool(r.active),
                }
                for r in rows
            }

    async def scope(
        self,
        *,
        channel_type: str | None = None,
        channel_id: str | None = None,
        user_id: int | None = None,
        group: str | None = None,
    ) -> Scope:
        """Filters as the page and the API give them: a platform or a channel id, an
        operator or a group of operators."""
        channels: frozenset[str] | None = None
        if channel_id:
            channels = frozenset({channel_id})
        elif channel_type:
            if channel_type not in CHANNEL_TYPES:
                raise PeriodError(f"unknown channel type {channel_type!r}")
            # The configured channels of that platform, and an id equal to its name (the
            # web chat's, or a channel that was named after its platform and removed).
            channels = frozenset(
                {c for c, kind in self.channel_types.items() if kind == channel_type}
                | {channel_type}
            )
        users: frozenset[int] | None = None
        if user_id is not None:
            users = frozenset({user_id})
        if group:
            members = {u for u, info in (await self.users()).items() if group in info["groups"]}
            users = frozenset(members if users is None else users & members)
        return Scope(channels, users)

    async def _counts(self, conn: AsyncConnection, period: Period, scope: Scope) -> _Counts:
        """The period's totals from the daily and monthly rollups (``Period.spans``):
        a quarter is a few months' rows and a few days', not ninety days'."""
        parts: list[Any] = []
        for monthly, first, last, sign in period.spans():
            table: Any = StatsMonthly if monthly else StatsDaily
            at = table.month if monthly else table.day
            part = select(
                table.metric,
                table.channel,
                table.user_id,
                table.key,
                (table.n * sign).label("n"),
                (table.total * sign).label("total"),
            ).where(table.metric.in_(sorted(METRICS)), at >= first, at <= last)
            parts.append(self._narrow(part, table.channel, None, scope))
        rows_of = union_all(*parts).subquery() if len(parts) > 1 else parts[0].subquery()
        c = rows_of.c
        query = (
            select(c.metric, c.channel, c.user_id, c.key, func.sum(c.n), func.sum(c.total))
            .group_by(c.metric, c.channel, c.user_id, c.key)
            # Whatever a month holds only on the days left out nets to nothing.
            .having(func.sum(c.n) != 0)
        )
        rows: dict[str, list[tuple[str, int, str, int, float]]] = defaultdict(list)
        for metric, channel, user, key, n, total in (await conn.execute(query)).all():
            # Operator figures narrow to the chosen operators; the rest stays whole.
            if user and scope.users is not None and user not in scope.users:
                continue
            rows[metric].append((channel, int(user), key, int(n or 0), float(total or 0)))
        return _Counts(dict(rows))

    async def _per_slot(
        self,
        conn: AsyncConnection,
        period: Period,
        scope: Scope,
        metrics: Iterable[str],
        *,
        hourly: bool,
        by_channel: bool = True,
    ) -> list[tuple[str, str, date, int, int]]:
        """(metric, channel, day, hour, n) of a few metrics, by day or by hour (hour 0);
        without ``by_channel`` the channels are summed (channel "")."""
        table: Any = StatsCount if hourly else StatsDaily
        hour = [table.hour] if hourly else []
        channel: Any = table.channel if by_channel else literal("")
        query = (
            select(table.metric, channel, table.day, *hour, func.sum(table.n))
            .where(
                table.metric.in_(sorted(metrics)),
                table.day >= period.start,
                table.day <= period.end,
            )
            .group_by(table.metric, *([table.channel] if by_channel else []), table.day, *hour)
        )
        if scope.channels is not None:
            query = query.where(table.channel.in_(sorted(scope.channels)))
        if scope.users is not None:
            query = query.where(or_(table.user_id == 0, table.user_id.in_(sorted(scope.users))))
        out = []
        for row in (await conn.execute(query)).all():
            slot = int(row[3]) if hourly else 0
            out.append((str(row[0]), str(row[1]), row[2], slot, int(row[-1] or 0)))
        return out

    async def _hour_profile(
        self, conn: AsyncConnection, period: Period, scope: Scope
    ) -> dict[int, int]:
        # Every channel's: the hourly totals, a row an hour; some: the hourly counters.
        table: Any = StatsHourly if scope.channels is None else StatsCount
        query = (
            select(table.hour, func.sum(table.n))
            .where(
                table.metric == "msg.customer",
                table.day >= period.start,
                table.day <= period.end,
            )
            .group_by(table.hour)
        )
        if scope.channels is not None:
            query = query.where(StatsCount.channel.in_(sorted(scope.channels)))
        return {int(h): int(n or 0) for h, n in (await conn.execute(query)).all()}

    async def _on_own_connection(self, part: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        async with self.db.read() as conn:
            return await part(conn)

    # ------------------------------------------------------------------ the whole page
    async def report(self, period: Period, scope: Scope | None = None) -> dict[str, Any]:
        """Every section of the reports page for one period and filter."""
        scope = scope or Scope()
        users = await self.users()
        on_own = self._on_own_connection
        # Each part on a connection of its own, all at once: PostgreSQL answers them in
        # parallel (SQLite, in this process, one after another as before).
        first = asyncio.gather(
            on_own(lambda c: self._counts(c, period, scope)),
            on_own(
                lambda c: self._per_slot(c, period, scope, ("msg.customer",), hourly=period.hourly)
            ),
            on_own(lambda c: self._hour_profile(c, period, scope)),
            on_own(lambda c: self._customers(c, period, scope)),
        )

        async def delays_and_slowest(conn: AsyncConnection) -> Any:
            delays, histogram, threshold = await self._responses(conn, period, scope)
            slowest = await self._slowest(conn, period, scope, users, at_least=threshold)
            return delays, histogram, slowest

        second = asyncio.gather(
            on_own(delays_and_slowest),
            on_own(lambda c: self._waits(c, period, scope)),
            on_own(lambda c: self._presence(c, period, scope)),
        )
        parts, more = await asyncio.gather(first, second)
        counts, slots, profile, customers = parts
        (delays, histogram, slowest), waits, presence = more
        return {
            "period": period.as_dict(),
            "traffic": self._traffic(period, counts, slots, profile, customers),
            "bot": self._bot(counts),
            "operators": self._operators(
                counts, delays, histogram, presence, users, scope, slowest
            ),
            "queue": self._queue(counts, waits),
            "csat": self._csat(counts, users),
        }

    # ------------------------------------------------------------------ traffic
    def _traffic(
        self,
        period: Period,
        counts: _Counts,
        slots: list[tuple[str, str, date, int, int]],
        profile: dict[int, int],
        customers: dict[str, int],
    ) -> dict[str, Any]:
        messages: dict[str, dict[str, int]] = {}
        for author in AUTHORS:
            for channel, n in counts.by(f"msg.{author}", 0).items():
                row = messages.setdefault(self.channel_type(channel), dict.fromkeys(AUTHORS, 0))
                row[author] += n
        series: dict[tuple[date, int], dict[str, int]] = defaultdict(lambda: defaultdict(int))
        per_day: dict[date, int] = defaultdict(int)
        for _metric, channel, day, hour, n in slots:
            series[(day, hour)][self.channel_type(channel)] += n
            per_day[day] += n
        started_by_channel: dict[str, int] = defaultdict(int)
        for channel, n in counts.by("conv.started", 0).items():
            started_by_channel[self.channel_type(channel)] += n
        busiest_day = max(per_day.items(), key=lambda kv: (kv[1], kv[0]), default=None)
        busiest_hour = max(profile.items(), key=lambda kv: (kv[1], -kv[0]), default=None)
        customer_total = sum(profile.values())
        night = sum(n for h, n in profile.items() if h in self.night_hours)
        points = []
        hours = range(24) if period.hourly else [0]
        for day, hour in [(d, h) for d in period.days for h in hours]:
            label = f"{day.isoformat()} {hour:02d}:00" if period.hourly else day.isoformat()
            values = series.get((day, hour), {})
            points.append({"at": label, **{k: values.get(k, 0) for k in sorted(messages)}})
        return {
            "messages": messages,
            "customer_messages": customer_total,
            "conversations": {
                "total": sum(started_by_channel.values()),
                "by_channel": dict(started_by_channel),
            },
            "customers": {
                **customers,
                "returning_share": _share(customers["returning"], customers["unique"]),
            },
            "busiest_day": (
                {"day": busiest_day[0].isoformat(), "messages": busiest_day[1]}
                if busiest_day and busiest_day[1]
                else None
            ),
            "busiest_hour": (
                {"hour": busiest_hour[0], "messages": busiest_hour[1]}
                if busiest_hour and busiest_hour[1]
                else None
            ),
            "night": {"messages": night, "share": _share(night, customer_total)},
            "by_hour_of_day": [profile.get(h, 0) for h in range(24)],
            "series": {"granularity": "hour" if period.hourly else "day", "points": points},
        }

    async def _customers(
        self, conn: AsyncConnection, period: Period, scope: Scope
    ) -> dict[str, int]:
        """Unique and returning customers as plain counts over the customer days: each
        row knows the customer's previous and first day on its channel, so a customer
        is counted on their first day within the period (previous day before it), and
        is returning if that previous day exists, or if their first day ever is in the
        period and they wrote again in it (the row whose previous day is the first)."""
        channels = sorted(scope.channels) if scope.channels is not None else [ALL_CHANNELS]
        days = (StatsCustomerDay.day >= period.start, StatsCustomerDay.day <= period.end)
        if len(channels) > 1:
            # Several channel ids (two numbers of one messenger): distinct customers.
            where = (StatsCustomerDay.channel.in_(channels), *days)
            unique = await conn.scalar(
                select(func.count(distinct(StatsCustomerDay.contact_id))).where(*where)
            )
            returning = await conn.scalar(
                select(func.count(distinct(StatsCustomerDay.contact_id))).where(
                    *where, StatsCustomerDay.prev_day.is_not(None)
                )
            )
            return {"unique": int(unique or 0), "returning": int(returning or 0)}
        # The same counts from the customer days counted by previous day (a few rows a
        # day); no previous day is kept as prev_day = day.
        c, start = StatsCustomerCount, period.start
        none = c.prev_day == c.day
        row = (
            await conn.execute(
                select(
                    func.sum(case((or_(none, c.prev_day < start), c.n), else_=0)),
                    func.sum(case((c.prev_day < start, c.n), else_=0)),
                    func.sum(
                        case((and_(c.prev_day >= start, ~none), c.first_n), else_=0),
                    ),
                ).where(c.channel == channels[0], c.day >= period.start, c.day <= period.end)
            )
        ).one()
        returning = int(row[1] or 0) + int(row[2] or 0)
        return {"unique": int(row[0] or 0), "returning": returning}

    # ------------------------------------------------------------------ the bot
    def _bot(self, counts: _Counts) -> dict[str, Any]:
        started = counts.total("conv.started")
        to_operator = counts.total("conv.to_operator")
        recognised = counts.total("bot.recognised")
        fallback = counts.total("bot.fallback")
        free_text = recognised + fallback
        topics = sorted(counts.by("topic", 2).items(), key=lambda kv: (-kv[1], kv[0]))
        flows_started = counts.by("flow.started", 2)
        readings = counts.total("readings.submitted")
        readings_by = self._by_type(counts, "readings.submitted")
        in_messengers = sum(n for kind, n in readings_by.items() if kind != "webchat")
        sent = counts.total("link.sent")
        clicked = counts.total("link.clicked")
        profanity = counts.total("profanity")
        links_sent = counts.by("link.sent", 2)
        links_clicked = counts.by("link.clicked", 2)
        link_clicks = counts.by("link.clicks", 2)
        top = sorted(
            set(links_sent) | set(link_clicks),
            key=lambda url: (-links_clicked.get(url, 0), -link_clicks.get(url, 0), url),
        )[:TOP_LINKS]
        return {
            "conversations": {
                "total": started,
                "bot_only": max(started - to_operator, 0),
                "to_operator": to_operator,
                "bot_only_share": _share(max(started - to_operator, 0), started),
            },
            "free_text": free_text,
            "recognised": recognised,
            "fallback": fallback,
            "recognition_rate": _share(recognised, free_text),
            "topics": [
                {
                    "intent": intent,
                    "title": self.title(intent),
                    "count": n,
                    "share": _share(n, recognised),
                }
                for intent, n in topics
            ],
            "flows": {
                "readings": {"started": flows_started.get("readings", 0), "completed": readings},
                "balance": {
                    "started": flows_started.get("balance", 0),
                    "completed": counts.total("balance.asked"),
                },
                "appeal": {
                    "started": flows_started.get("appeal", 0),
                    "completed": counts.total("appeal.created"),
                },
                "operator": {"started": flows_started.get("operator", 0)},
            },
            "readings": {
                "submitted": readings,
                "by_channel": readings_by,
                "messengers_share": _share(in_messengers, readings),
            },
            "links": {
                "sent": sent,
                "clicked": clicked,
                "clicks": counts.total("link.clicks"),
                "click_through": _share(clicked, sent),
                "top": [
                    {
                        "url": url,
                        "sent": links_sent.get(url, 0),
                        "clicked": links_clicked.get(url, 0),
                        "clicks": link_clicks.get(url, 0),
                        "click_through": _share(links_clicked.get(url, 0), links_sent.get(url, 0)),
                    }
                    for url in top
                ],
            },
            "profanity": {"count": profanity, "share": _share(profanity, free_text)},
        }

    def _by_type(self, counts: _Counts, metric: str) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for channel, n in counts.by(metric, 0).items():
            out[self.channel_type(channel)] += n
        return dict(out)

    # ------------------------------------------------------------------ operators
    async def _responses(
        self, conn: AsyncConnection, period: Period, scope: Scope
    ) -> tuple[dict[tuple[Any, ...], list[Spread]], list[dict[str, Any]], float | None]:
        """Response delays per (operator, kind) and per kind for everyone (the operators
        chosen), in all and inside working hours; the delays' histogram; and the delay
        of the ``SLOWEST``-th slowest reply (None when there are fewer)."""
        v = StatsResponseValues
        wanted = scope.channels
        columns: list[Any] = [v.kind, v.user_id, v.seconds, v.work_seconds]
        if wanted is not None:
            columns.append(v.channels)  # which part of the values is whose
        query = select(*columns).where(v.day >= period.start, v.day <= period.end)
        if scope.users is not None:
            query = query.where(v.user_id.in_(sorted(scope.users)))
        found: dict[tuple[int, str], tuple[list[bytes], list[bytes]]] = {}
        for row in (await conn.execute(query)).all():
            seconds, work = row[2], row[3]
            if wanted is not None:
                seconds, work = _segments(row[4], (seconds, work), wanted)
                if not seconds:
                    continue  # none of this operator's replies that day in those channels
            key = (int(row[1]), str(row[0]))
            blobs = found.get(key)
            if blobs is None:
                blobs = found[key] = ([], [])
            blobs[0].append(seconds)
            blobs[1].append(work)
        out: dict[tuple[Any, ...], list[Spread]] = {}
        everyone: dict[str, tuple[list[Values], list[Values]]] = {}
        for (user, kind), (seconds, work) in found.items():
            ordered = (_ordered(seconds), _ordered(work))
            out[(user, kind)] = [_spread_of(ordered[0]), _spread_of(ordered[1])]
            parts = everyone.setdefault(kind, ([], []))
            parts[0].append(ordered[0])
            parts[1].append(ordered[1])
        by_kind: dict[str, Values] = {}
        for kind, (seconds_parts, work_parts) in everyone.items():
            # Each operator's values are in order: a stable sort merges those runs.
            all_seconds = np.sort(np.concatenate(seconds_parts), kind="stable")
            out[(None, kind)] = [
                _spread_of(all_seconds),
                _spread_of(np.sort(np.concatenate(work_parts), kind="stable")),
            ]
            by_kind[kind] = all_seconds
        slow = np.sort(np.concatenate([v[-SLOWEST:] for v in by_kind.values()] or [np.empty(0)]))
        threshold = float(slow[-SLOWEST]) if len(slow) >= SLOWEST else None
        return out, self._histogram(by_kind), threshold

    @staticmethod
    def _histogram(by_kind: dict[str, Values]) -> list[dict[str, Any]]:
        """How many delays of each kind fall in each of ``DELAY_BUCKETS`` (a bucket holds
        its lower bound, not its upper one)."""
        uppers = [upper for _label, upper in DELAY_BUCKETS]
        counts: dict[str, list[int]] = {}
        for kind in ("first", "next"):
            ordered = by_kind.get(kind, np.empty(0))
            under = [int(n) for n in np.searchsorted(ordered, uppers[:-1], side="left")]
            under.append(len(ordered))
            counts[kind] = [n - m for n, m in zip(under, [0, *under[:-1]], strict=True)]
        return [
            {"bucket": label, "first": counts["first"][i], "next": counts["next"][i]}
            for i, (label, _upper) in enumerate(DELAY_BUCKETS)
        ]

    def _response_filter(self, period: Period, scope: Scope) -> list[Any]:
        where: list[Any] = [StatsResponse.day >= period.start, StatsResponse.day <= period.end]
        if scope.channels is not None:
            where.append(StatsResponse.channel.in_(sorted(scope.channels)))
        if scope.users is not None:
            where.append(StatsResponse.user_id.in_(sorted(scope.users)))
        return where

    def _narrow(self, query: Any, channel: Any, user: Any, scope: Scope) -> Any:
        if scope.channels is not None and channel is not None:
            query = query.where(channel.in_(sorted(scope.channels)))
        if scope.users is not None and user is not None:
            query = query.where(user.in_(sorted(scope.users)))
        return query

    async def _slowest(
        self,
        conn: AsyncConnection,
        period: Period,
        scope: Scope,
        users: dict[int, dict[str, Any]],
        *,
        at_least: float | None = None,
    ) -> list[dict[str, Any]]:
        """The ``SLOWEST`` slowest replies. Given the delay of the last of them
        (``_responses`` knows it), only the rows that slow are read and sorted."""
        where = self._response_filter(period, scope)
        if at_least is not None:
            where.append(StatsResponse.seconds >= at_least)
        query = (
            select(StatsResponse.__table__)
            .where(*where)
            .order_by(StatsResponse.seconds.desc(), StatsResponse.id)
            .limit(SLOWEST)
        )
        found = {int(r["id"]): r for r in (await conn.execute(query)).mappings()}
        ids = list(found)
        out = []
        for row_id in ids:
            r = found[row_id]
            user = users.get(int(r["user_id"]), {})
            out.append(
                {
                    "conversation_id": int(r["conversation_id"]),
                    "user_id": int(r["user_id"]),
                    "login": user.get("login"),
                    "name": user.get("name"),
                    "channel": self.channel_type(r["channel"]),
                    "kind": r["kind"],
                    "asked_at": r["asked_at"].astimezone(self.tz).isoformat(),
                    "answered_at": r["answered_at"].astimezone(self.tz).isoformat(),
                    "seconds": _round(float(r["seconds"])),
                    "work_seconds": _round(float(r["work_seconds"])),
                }
            )
        return out

    async def _presence(
        self, conn: AsyncConnection, period: Period, scope: Scope
    ) -> dict[int, dict[str, float]]:
        """Seconds online and on break per operator inside the period: the intervals
        clipped to it (an open one runs until now) and summed by the database, in
        whole microseconds (exact, and a quarter's intervals never cross the wire)."""
        i = StatsStatusInterval
        at = i.started_at.type
        since, until = literal(period.since, at), literal(period.until, at)
        ended = func.coalesce(i.ended_at, literal(utcnow(), at))
        if conn.dialect.name == "postgresql":
            lo, hi = func.greatest(i.started_at, since), func.least(ended, until)
            micros = func.sum(cast(extract("epoch", hi - lo) * 1_000_000, BigInteger))
        else:
            # SQLite keeps UTC times as "YYYY-MM-DD HH:MM:SS.ffffff": they compare as
            # text, and make whole seconds (strftime) and microseconds (the digits).
            lo, hi = func.max(i.started_at, since), func.min(ended, until)
            micros = func.sum(_sqlite_micros(hi) - _sqlite_micros(lo))
        query = (
            select(i.user_id, i.status, micros)
            .where(*self._interval_filter(period, scope), hi > lo)
            .group_by(i.user_id, i.status)
        )
        out: dict[int, dict[str, float]] = defaultdict(lambda: {"online": 0.0, "break": 0.0})
        for user_id, status, total in (await conn.execute(query)).all():
            out[int(user_id)][str(status)] += int(total) / 1e6
        return dict(out)

    @staticmethod
    def _interval_filter(period: Period, scope: Scope) -> list[Any]:
        i = StatsStatusInterval
        where = [i.started_at < period.until, or_(i.ended_at.is_(None), i.ended_at > period.since)]
        if scope.users is not None:
            where.append(i.user_id.in_(sorted(scope.users)))
        return where

    async def _intervals(
        self, conn: AsyncConnection, period: Period, scope: Scope
    ) -> list[tuple[int, str, datetime, datetime]]:
        """Status intervals overlapping the period, clipped to it (an open one runs until
        now, or the period's end)."""
        since, until = period.since, period.until
        now = utcnow()
        query = select(
            StatsStatusInterval.user_id,
            StatsStatusInterval.status,
            StatsStatusInterval.started_at,
            StatsStatusInterval.ended_at,
        ).where(*self._interval_filter(period, scope))
        out = []
        for user_id, status, start, end in (
            await conn.execute(query.order_by(StatsStatusInterval.started_at))
        ).all():
            lo = max(start, since)
            hi = min(end if end is not None else now, until)
            if hi > lo:
                out.append((int(user_id), str(status), lo, hi))
        return out

    def _operators(
        self,
        counts: _Counts,
        delays: dict[tuple[Any, ...], list[Spread]],
        histogram: list[dict[str, Any]],
        presence: dict[int, dict[str, float]],
        users: dict[int, dict[str, Any]],
        scope: Scope,
        slowest: list[dict[str, Any]],
    ) -> dict[str, Any]:
        ids = counts.users() | {user for user, _kind in delays if user} | set(presence)
        if scope.users is not None:
            ids &= set(scope.users)
        rows = [
            self._operator_row(user_id, users, counts, delays, presence)
            for user_id in sorted(ids, key=lambda u: users.get(u, {}).get("login") or str(u))
        ]
        return {
            "operators": rows,
            "totals": {
                "conversations": sum(r["conversations"] for r in rows),
                "replies": sum(r["replies"] for r in rows),
                "transfers": sum(r["transfers"] for r in rows),
                "first_response_s": _spread(delays, None, "first", 0),
                "first_response_work_s": _spread(delays, None, "first", 1),
                "response_s": _spread(delays, None, "next", 0),
                "response_work_s": _spread(delays, None, "next", 1),
                "unanswered": counts.total("conv.unanswered"),
            },
            "delays": histogram,
            "slowest": slowest,
        }

    def _operator_row(
        self,
        user_id: int,
        users: dict[int, dict[str, Any]],
        counts: _Counts,
        delays: dict[tuple[Any, ...], list[Spread]],
        presence: dict[int, dict[str, float]],
    ) -> dict[str, Any]:
        info = users.get(user_id, {})
        closed = counts.total("op.closed", user=user_id)
        asked = counts.total("csat.asked", user=user_id)
        rated = counts.total("csat.rated", user=user_id)
        here = presence.get(user_id, {"online": 0.0, "break": 0.0})
        return {
            "user_id": user_id,
            "login": info.get("login") or f"#{user_id}",
            "name": info.get("name") or f"#{user_id}",
            "conversations": counts.total("op.assigned", user=user_id),
            "replies": counts.total("msg.operator", user=user_id),
            "transfers": counts.total("op.transfers", user=user_id),
            "closed": closed,
            "handle_s": _round(counts.sum_total("op.closed", user=user_id) / closed)
            if closed
            else None,
            "first_response_s": _spread(delays, user_id, "first", 0),
            "first_response_work_s": _spread(delays, user_id, "first", 1),
            "response_s": _spread(delays, user_id, "next", 0),
            "response_work_s": _spread(delays, user_id, "next", 1),
            "online_s": int(here["online"]),
            "break_s": int(here["break"]),
            "csat": {
                "asked": asked,
                "answered": rated,
                "average": round(counts.sum_total("csat.rated", user=user_id) / rated, 2)
                if rated
                else None,
            },
        }

    # ------------------------------------------------------------------ queue, csat
    async def _waits(
        self, conn: AsyncConnection, period: Period, scope: Scope
    ) -> dict[tuple[Any, ...], list[Spread]]:
        v = StatsQueueWaitValues
        query = select(v.outcome, v.seconds).where(v.day >= period.start, v.day <= period.end)
        query = self._narrow(query, v.channel, None, scope)
        found: dict[str, list[bytes]] = defaultdict(list)
        for outcome, seconds in (await conn.execute(query)).all():
            found[str(outcome)].append(seconds)
        return {(outcome,): [_spread_of(_ordered(b))] for outcome, b in found.items()}

    def _queue(self, counts: _Counts, waits: dict[tuple[Any, ...], list[Spread]]) -> dict[str, Any]:
        queued = counts.total("queue.queued")
        abandoned = counts.total("queue.abandoned")
        nothing = [percentiles([])]
        return {
            "queued": queued,
            "abandoned": abandoned,
            "abandoned_share": _share(abandoned, queued),
            "wait_s": waits.get(("assigned",), nothing)[0],
            "left_after_s": waits.get(("left",), nothing)[0],
        }

    def _csat(self, counts: _Counts, users: dict[int, dict[str, Any]]) -> dict[str, Any]:
        asked = counts.total("csat.asked")
        answered = counts.total("csat.rated")
        distribution = {
            str(score): counts.total("csat.rated", key=str(score)) for score in range(1, 6)
        }
        return {
            "asked": asked,
            "answered": answered,
            "answered_share": _share(answered, asked),
            "average": round(counts.sum_total("csat.rated") / answered, 2) if answered else None,
            "distribution": distribution,
        }

    # ------------------------------------------------------------ summary (stats summary --json)
    async def summary(self, period: Period) -> dict[str, Any]:
        """``abonent stats summary --json``: the contract's keys, from the same report."""
        full = await self.report(period)
        traffic, bot, ops, queue, csat = (
            full["traffic"],
            full["bot"],
            full["operators"],
            full["queue"],
            full["csat"],
        )
        operators = {}
        for row in ops["operators"]:
            first = row["first_response_s"]
            operators[row["login"]] = {
                "conversations": row["conversations"],
                "replies": row["replies"],
                "transfers": row["transfers"],
                "first_response_s": {k: first[k] for k in ("median", "p90", "max")},
                "online_s": row["online_s"],
                "break_s": row["break_s"],
            }
        return {
            "period": full["period"],
            "messages": {
                kind: {a: counts.get(a, 0) for a in ("customer", "bot", "operator")}
                for kind, counts in sorted(traffic["messages"].items())
            },
            "conversations": {
                "total": bot["conversations"]["total"],
                "bot_only": bot["conversations"]["bot_only"],
                "to_operator": bot["conversations"]["to_operator"],
                "by_channel": dict(sorted(traffic["conversations"]["by_channel"].items())),
            },
            "customers": {
                "unique": traffic["customers"]["unique"],
                "returning": traffic["customers"]["returning"],
            },
            "bot": {
                "free_text": bot["free_text"],
                "recognised": bot["recognised"],
                "fallback": bot["fallback"],
                "topics": {t["intent"]: t["count"] for t in bot["topics"]},
            },
            "links": {"sent": bot["links"]["sent"], "clicked": bot["links"]["clicked"]},
            "readings": {
                "submitted": bot["readings"]["submitted"],
                "by_channel": dict(sorted(bot["readings"]["by_channel"].items())),
            },
            "profanity": bot["profanity"]["count"],
            "queue": {
                "queued": queue["queued"],
                "abandoned": queue["abandoned"],
                "wait_s": {k: queue["wait_s"][k] for k in ("median", "p90")},
            },
            "operators": operators,
            "csat": {
                "asked": csat["asked"],
                "answered": csat["answered"],
                "average": csat["average"],
            },
        }

    # ------------------------------------------------------------------ timeline, log
    async def timeline(self, period: Period, scope: Scope | None = None) -> dict[str, Any]:
        """Per operator and day: online and break intervals (local times), and totals."""
        scope = scope or Scope()
        users = await self.users()
        async with self.db.read() as conn:
            intervals = await self._intervals(conn, period, scope)
        days: dict[int, dict[date, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
        local = [
            (user_id, status, start.astimezone(self.tz), end.astimezone(self.tz))
            for user_id, status, start, end in intervals
        ]
        staffed: dict[tuple[str, int], float] = defaultdict(float)
        epoch = datetime(2000, 1, 1, tzinfo=self.tz)  # a local midnight
        for _user, status, cursor, stop in local:
            # Hour by hour in whole microseconds of the local clock (times of one zone
            # subtract as the clock reads): the pieces of stepping datetimes, faster.
            at, stop_at = (cursor - epoch) // _MICROSECOND, (stop - epoch) // _MICROSECOND
            while at < stop_at:
                next_at = min(stop_at, (at // _HOUR_US + 1) * _HOUR_US)
                staffed[(status, at // _HOUR_US % 24)] += (next_at - at) / 1e6
                at = next_at
        span = len(period.days) * 3600.0
        staffing = [
            {
                "hour": hour,
                "online": round(staffed[("online", hour)] / span, 2),
                "break": round(staffed[("break", hour)] / span, 2),
            }
            for hour in range(24)
        ]
        # A day → the midnight that ends it and how it reads.
        midnights: dict[date, tuple[datetime, str]] = {}
        for user_id, status, cursor, stop in local:
            start_iso = cursor.isoformat()
            while cursor < stop:
                day = cursor.date()
                ends = midnights.get(day)
                if ends is None:
                    midnight = datetime.combine(day + timedelta(days=1), time(), self.tz)
                    ends = midnights[day] = (midnight, midnight.isoformat())
                if stop < ends[0]:
                    piece_end, end_iso = stop, stop.isoformat()
                    to_h = round(stop.hour + stop.minute / 60 + stop.second / 3600, 3)
                else:
                    piece_end, end_iso, to_h = ends[0], ends[1], 24.0
                days[user_id][day].append(
                    {
                        "status": status,
                        "start": start_iso,
                        "end": end_iso,
                        "from_h": round(cursor.hour + cursor.minute / 60 + cursor.second / 3600, 3),
                        "to_h": to_h,
                        "seconds": int((piece_end - cursor).total_seconds()),
                    }
                )
                cursor, start_iso = piece_end, end_iso
        ids = set(days)
        if scope.users is not None:
            ids |= {u for u in scope.users if u in users}
        out = []
        for user_id in sorted(ids, key=lambda u: users.get(u, {}).get("login") or str(u)):
            info = users.get(user_id, {})
            per_day = []
            for day in period.days:
                pieces = days.get(user_id, {}).get(day, [])
                per_day.append(
                    {
                        "day": day.isoformat(),
                        "intervals": pieces,
                        "online_s": sum(p["seconds"] for p in pieces if p["status"] == "online"),
                        "break_s": sum(p["seconds"] for p in pieces if p["status"] == "break"),
                    }
                )
            out.append(
                {
                    "user_id": user_id,
                    "login": info.get("login") or f"#{user_id}",
                    "name": info.get("name") or f"#{user_id}",
                    "days": per_day,
                }
            )
        # How many operators were on the line (and on break) at each hour, on average.
        return {"period": period.as_dict(), "operators": out, "staffing": staffing}

    async def operator_log(
        self,
        period: Period,
        scope: Scope | None = None,
        *,
        types: Sequence[str] = (),
        limit: int = 200,
        offset: int = 0,
    ) -> dict[str, Any]:
        """The operators' events, newest first, filtered by operator and type."""
        scope = scope or Scope()
        users = await self.users()
        where = [
            StatsOperatorEvent.occurred_at >= period.since,
            StatsOperatorEvent.occurred_at < period.until,
        ]
        if scope.users is not None:
            where.append(StatsOperatorEvent.user_id.in_(sorted(scope.users)))
        if types:
            where.append(StatsOperatorEvent.type.in_(list(types)))
        async with self.db.read() as conn:
            total = await conn.scalar(
                select(func.count()).select_from(StatsOperatorEvent).where(and_(*where))
            )
            rows = (
                await conn.execute(
                    select(StatsOperatorEvent.__table__)
                    .where(and_(*where))
                    .order_by(StatsOperatorEvent.occurred_at.desc(), StatsOperatorEvent.id.desc())
                    .limit(limit)
                    .offset(offset)
                )
            ).mappings()
            events = [
                {
                    "at": r["occurred_at"].astimezone(self.tz).isoformat(),
                    "user_id": r["user_id"],
                    "login": users.get(r["user_id"] or 0, {}).get("login"),
                    "type": r["type"],
                    "conversation_id": r["conversation_id"],
                    "data": r["data"] or {},
                }
                for r in rows
            ]
        return {"period": period.as_dict(), "total": int(total or 0), "events": events}

    # ------------------------------------------------------------------ drill-down, export
    def _conversation_filter(
        self,
        period: Period,
        scope: Scope,
        topic: str | None,
        handed_over: bool | None,
    ) -> tuple[Any, list[Any]]:
        """The conversations started in the period, as (FROM, WHERE) with the filters;
        a topic is found through its own index, not by reading every conversation."""
        source: Any = StatsConversation.__table__
        where: list[Any] = [
            StatsConversation.day >= period.start,
            StatsConversation.day <= period.end,
        ]
        if topic:
            source = source.join(
                StatsTopic,
                and_(
                    StatsTopic.conversation_id == StatsConversation.conversation_id,
                    StatsTopic.day == StatsConversation.day,
                ),
            )
            where += [
                StatsTopic.topic == topic,
                StatsTopic.day >= period.start,
                StatsTopic.day <= period.end,
            ]
        if scope.channels is not None:
            where.append(StatsConversation.channel.in_(sorted(scope.channels)))
        if scope.users is not None:
            where.append(
                or_(
                    StatsConversation.first_operator_id.in_(sorted(scope.users)),
                    StatsConversation.assignee_id.in_(sorted(scope.users)),
                )
            )
        if handed_over is not None:
            where.append(StatsConversation.handed_over.is_(handed_over))
        return source, where

    _NEWEST_FIRST = (
        StatsConversation.day.desc(),
        StatsConversation.started_at.desc(),
        StatsConversation.conversation_id.desc(),
    )

    async def conversations(
        self,
        period: Period,
        scope: Scope | None = None,
        *,
        topic: str | None = None,
        handed_over: bool | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> dict[str, Any]:
        """Conversations started in the period, one row each (newest first)."""
        source, where = self._conversation_filter(period, scope or Scope(), topic, handed_over)
        users = await self.users()
        async with self.db.read() as conn:
            total = await conn.scalar(select(func.count()).select_from(source).where(*where))
            # The page's ids first, sorted by what an index holds (a topic's
            # conversations are sorted as keys, not as whole rows), then their rows.
            page = (
                select(StatsConversation.conversation_id)
                .select_from(source)
                .where(*where)
                .order_by(*self._NEWEST_FIRST)
                .limit(limit)
                .offset(offset)
            )
            rows = (
                (
                    await conn.execute(
                        select(StatsConversation.__table__)
                        .where(StatsConversation.conversation_id.in_(page.scalar_subquery()))
                        .order_by(*self._NEWEST_FIRST)
                    )
                )
                .mappings()
                .all()
            )
        return {
            "period": period.as_dict(),
            "total": int(total or 0),
            "conversations": [self._conversation_row(dict(r), users) for r in rows],
        }

    async def conversation_pages(
        self,
        period: Period,
        scope: Scope | None = None,
        *,
        topic: str | None = None,
        handed_over: bool | None = None,
        page: int = 5000,
    ) -> AsyncIterator[list[dict[str, Any]]]:
        """Every conversation of the period, page by page (newest first), for an export
        of any size: each page continues after the last row of the one before."""
        source, where = self._conversation_filter(period, scope or Scope(), topic, handed_over)
        users = await self.users()
        after: tuple[Any, Any, Any] | None = None
        while True:
            query = select(StatsConversation.__table__).select_from(source).where(*where)
            if after is not None:
                key = tuple_(
                    StatsConversation.day,
                    StatsConversation.started_at,
                    StatsConversation.conversation_id,
                )
                query = query.where(key < tuple_(*after))
            async with self.db.read() as conn:
                rows = (
                    (await conn.execute(query.order_by(*self._NEWEST_FIRST).limit(page)))
                    .mappings()
                    .all()
                )
            if not rows:
                return
            yield [self._conversation_row(dict(r), users) for r in rows]
            if len(rows) < page:
                return
            last = rows[-1]
            after = (last["day"], last["started_at"], last["conversation_id"])

    def _conversation_row(
        self, r: dict[str, Any], users: dict[int, dict[str, Any]]
    ) -> dict[str, Any]:
        def when(value: datetime | None) -> str | None:
            return value.astimezone(self.tz).isoformat() if value is not None else None

        operator = users.get(r["first_operator_id"] or 0, {})
        return {
            "conversation_id": int(r["conversation_id"]),
            "channel": self.channel_type(r["channel"]),
            "channel_id": r["channel"],
            "started_at": when(r["started_at"]),
            "closed_at": when(r["closed_at"]),
            "status": r["status"],
            "customer_messages": r["customer_messages"],
            "bot_messages": r["bot_messages"],
            "operator_messages": r["operator_messages"],
            "handed_over": bool(r["handed_over"]),
            "operator": operator.get("login"),
            "first_response_s": _round(r["first_response_s"]),
            "handle_s": _round(r["handle_s"]),
            "transfers": r["transfers"],
            "left_queue": r["abandoned"],
            "topics": [t for t in (r["topics"] or "").split(",") if t],
            "fallbacks": r["fallbacks"],
            "readings": r["readings"],
            "links_sent": r["links_sent"],
            "profanity": r["profanity"],
            "csat": r["csat_rating"],
        }

    async def _hourly_totals(
        self, conn: AsyncConnection, period: Period
    ) -> dict[tuple[date, int], dict[str, int]]:
        """The series' counters of each hour over every channel and operator, from the
        hourly totals: a row per hour with the metrics summed by the database (a
        quarter's 2,160 rows, not a row per metric, channel, operator and link)."""
        h = StatsHourly
        metrics = sorted(SERIES_METRICS)
        query = (
            select(h.day, h.hour, *(func.sum(case((h.metric == m, h.n), else_=0)) for m in metrics))
            .where(h.metric.in_(metrics), h.day >= period.start, h.day <= period.end)
            .group_by(h.day, h.hour)
        )
        return {
            (day, int(hour)): {
                SERIES_METRICS[m]: int(n or 0) for m, n in zip(metrics, counts, strict=True)
            }
            for day, hour, *counts in (await conn.execute(query)).all()
        }

    async def series(
        self, period: Period, scope: Scope | None = None, *, hourly: bool = False
    ) -> list[dict[str, Any]]:
        """One row per day (or hour) of the period with the main counters: the export's
        time series."""
        scope = scope or Scope()
        rows: dict[tuple[date, int], dict[str, int]] = {}
        slots = [(d, h) for d in period.days for h in (range(24) if hourly else [0])]
        for day, hour in slots:
            rows[(day, hour)] = dict.fromkeys(SERIES_COLUMNS, 0)
        async with self.db.read() as conn:
            if hourly and scope == Scope():
                for slot, values in (await self._hourly_totals(conn, period)).items():
                    if slot in rows:
                        for column, n in values.items():
                            rows[slot][column] += n
            else:
                found = await self._per_slot(
                    conn, period, scope, SERIES_METRICS, hourly=hourly, by_channel=False
                )
                for metric, _channel, day, hour, n in found:
                    if (day, hour) in rows:
                        rows[(day, hour)][SERIES_METRICS[metric]] += n
        out = []
        for (day, hour), values in rows.items():
            values["bot_only"] = max(values["conversations"] - values["to_operator"], 0)
            at = {"day": day.isoformat()}
            if hourly:
                at["hour"] = f"{hour:02d}:00"
            out.append({**at, **values})
        return out


SERIES_METRICS = {
    "msg.customer": "customer_messages",
    "msg.bot": "bot_messages",
    "msg.operator": "operator_messages",
    "conv.started": "conversations",
    "conv.to_operator": "to_operator",
    "bot.recognised": "recognised",
    "bot.fallback": "fallback",
    "readings.submitted": "readings",
    "balance.asked": "balance",
    "appeal.created": "appeals",
    "link.sent": "links_sent",
    "link.clicked": "links_clicked",
    "profanity": "profanity",
    "queue.queued": "queued",
    "queue.abandoned": "abandoned",
    "csat.asked": "csat_asked",
    "csat.rated": "csat_answered",
}
SERIES_COLUMNS = (*dict.fromkeys(SERIES_METRICS.values()), "bot_only")
