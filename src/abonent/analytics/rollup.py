"""The statistics consumer: turns the event log into the rollups the reports read.

It runs as a durable consumer (core.eventlog): each batch of events is applied in the
transaction that moves its cursor, so a fact is counted exactly once whatever crashes
and however many processes run. Per batch it loads the state it needs (the
conversations' rows, open status intervals, sent links), applies the events in log
order in memory, and writes the result in a few statements — counters as upserts
that add, so two batches touching one hour add up instead of overwriting.

What is counted where (the README's definitions say the same in words):
- hourly counters (``stats_counts``) in the company's time zone, by channel, operator
  and a key (intent, link, flow); the same by day (``stats_daily``), by month
  (``stats_monthly``) and by hour over everything (``stats_hourly``), for long periods;
- a conversation counts from the customer's first message, on that day; whether it
  reached the operators is credited to that same day, so "bot only" and "handed to
  operators" of a period always add up to its conversations;
- a response delay runs from the hand-off (first response) or from the customer's
  first unanswered message (later responses) to the next operator message; bot time
  never counts, and a conversation nobody answered gives no delay at all;
- queue waits run from a hand-off to the moment an operator got the conversation or
  the customer left the queue, and are credited to the day of the hand-off;
- each day's delays and waits, and its customer days, are also kept summarised
  (``analytics.summaries``), so a quarter's report reads a few rows a day.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.analytics import summaries
from abonent.config import WorkingHours
from abonent.core import events as ev
from abonent.core.eventlog import StoredEvent
from abonent.db.models import (
    StatsConversation,
    StatsCount,
    StatsCustomerDay,
    StatsDaily,
    StatsHourly,
    StatsLink,
    StatsMonthly,
    StatsOperatorEvent,
    StatsQueueWait,
    StatsResponse,
    StatsStatusInterval,
    StatsTopic,
)

CONSUMER = "statistics"
ALL_CHANNELS = "*"  # the customer-days chain of a customer across every channel
# Every counter the consumer keeps (reports read them by name).
METRICS = frozenset(
    {
        "msg.customer",
        "msg.bot",
        "msg.operator",
        "msg.system",
        "msg.failed",
        "conv.started",
        "conv.to_operator",
        "conv.unanswered",
        "queue.queued",
        "queue.abandoned",
        "op.assigned",
        "op.transfers",
        "op.closed",
        "bot.recognised",
        "bot.fallback",
        "topic",
        "flow.started",
        "readings.submitted",
        "balance.asked",
        "appeal.created",
        "profanity",
        "link.sent",
        "link.clicks",
        "link.clicked",
        "csat.asked",
        "csat.rated",
    }
)
_CHUNK = 500
_CONV_COLUMNS = [c.name for c in StatsConversation.__table__.columns]
_CONV_DEFAULTS: dict[str, Any] = {
    "status": "bot",
    "customer_messages": 0,
    "bot_messages": 0,
    "operator_messages": 0,
    "handed_over": False,
    "transfers": 0,
    "abandoned": 0,
    "topics": "",
    "fallbacks": 0,
    "readings": 0,
    "profanity": 0,
    "links_sent": 0,
}
# Operator events kept for the filterable log (and the data worth showing with them).
_OPERATOR_LOG = {
    ev.OPERATOR_SIGNED_IN,
    ev.OPERATOR_SIGNED_OUT,
    ev.OPERATOR_STATUS,
    ev.CONVERSATION_ASSIGNED,
    ev.CONVERSATION_TRANSFERRED,
    ev.CONVERSATION_RETURNED_TO_BOT,
    ev.CONVERSATION_CLOSED,
}
TOPICS_LIMIT = 600


def working_seconds(start: datetime, end: datetime, hours: WorkingHours, tz: ZoneInfo) -> float:
    """The part of [start, end) inside the operators' working hours."""
    if end <= start or not hours.days:
        return 0.0
    total = 0.0
    day = start.astimezone(tz).date() - timedelta(days=1)
    last = end.astimezone(tz).date()
    while day <= last:
        span = hours.days.get(day.weekday())
        if span is not None:
            opens = datetime.combine(day, span[0], tz)
            closes = datetime.combine(day, span[1], tz)
            lo, hi = max(opens, start), min(closes, end)
            if hi > lo:
                total += (hi - lo).total_seconds()
        day += timedelta(days=1)
    return total


@dataclass(frozen=True)
class Replay:
    """How ``abonent stats rebuild --from DAY`` replays the log over kept rollups.

    Buckets before ``floor`` are kept as they are, so nothing is written to them.
    Before ``since`` (the floor's first moment) only the events of ``scope`` — the
    conversations still going on at ``since``, whose rows were dropped — are applied,
    to rebuild their state; from ``since`` on, everything is.
    """

    floor: date
    since: datetime
    scope: frozenset[int] = frozenset()


class StatsConsumer:
    name = CONSUMER
    # A batch's writes cost about the same whatever its size (the same hour's counters,
    # the same conversations): measured on SQLite, 209 µs an event in batches of 150 and
    # 53 µs in batches of 1,200. So the background loop gives the rollups a batch every
    # few seconds (reports are that far behind at most), while hooks and webhooks, which
    # customers and the company's systems wait for, go with every wake-up.
    every = 5.0

    def __init__(self, tz: ZoneInfo, hours: WorkingHours, *, replay: Replay | None = None) -> None:
        self.tz = tz
        self.hours = hours
        self.replay = replay

    async def apply(self, conn: AsyncConnection, events: list[StoredEvent]) -> None:
        batch = _Batch(self.tz, self.hours, self.replay)
        if self.replay is not None:
            events = [e for e in events if batch.in_scope(e)]
        await batch.load(conn, events)
        for event in events:
            batch.apply(event)
        await batch.write(conn)


def _conv_id(event: StoredEvent) -> int | None:
    if event.conversation_id is not None:
        return event.conversation_id
    value = event.data.get("conversation_id")
    return value if isinstance(value, int) else None


def _user(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _adding(
    conn: AsyncConnection, table: Any, key: list[str], counters: tuple[str, ...] = ("n", "total")
) -> Any:
    """An upsert that adds to the counters of an existing row."""
    return _adding_to(conn.dialect.name, table, tuple(key), counters)


@functools.cache
def _adding_to(dialect: str, table: Any, key: tuple[str, ...], counters: tuple[str, ...]) -> Any:
    """``_adding``'s statement, made once: building an upsert costs more than running
    one of a few rows, and a batch on the message path runs several."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={c: getattr(table, c) + getattr(stmt.excluded, c) for c in counters},
    )


@functools.cache
def _ignoring(dialect: str, table: Any) -> Any:
    """An insert that leaves a row already there alone (made once, as ``_adding_to``)."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_nothing()


@functools.cache
def _new_customer_days(dialect: str) -> Any:
    """Customer days inserted, returning those that were not there (to be counted)."""
    days = StatsCustomerDay
    return _ignoring(dialect, days).returning(days.channel, days.day, days.prev_day, days.first_day)


@dataclass
class _Batch:
    tz: ZoneInfo
    hours: WorkingHours
    replay: Replay | None
    counts: dict[tuple[date, int, str, str, int, str], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0.0])
    )
    daily: dict[tuple[date, str, str, int, str], list[float]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0.0])
    )
    convs: dict[int, dict[str, Any]] = field(default_factory=dict)
    new_convs: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    responses: list[dict[str, Any]] = field(default_factory=list)
    waits: list[dict[str, Any]] = field(default_factory=list)
    oplog: list[dict[str, Any]] = field(default_factory=list)
    # (contact, channel) → (last day written, first day): the chains of customer days.
    chains: dict[tuple[int, str], tuple[date, date]] = field(default_factory=dict)
    customer_days: list[dict[str, Any]] = field(default_factory=list)
    topic_rows: set[tuple[str, date, int]] = field(default_factory=set)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    new_links: dict[str, dict[str, Any]] = field(default_factory=dict)
    clicked: dict[str, datetime] = field(default_factory=dict)
    # Operator → their open interval (id None until written), and the intervals closed.
    intervals: dict[int, dict[str, Any] | None] = field(default_factory=dict)
    new_intervals: list[dict[str, Any]] = field(default_factory=list)
    ended: dict[int, datetime] = field(default_factory=dict)

    # ------------------------------------------------------------------ scope
    def in_scope(self, event: StoredEvent) -> bool:
        assert self.replay is not None
        if event.occurred_at >= self.replay.since:
            return True
        return _conv_id(event) in self.replay.scope

    def _kept(self, day: date) -> bool:
        return self.replay is None or day >= self.replay.floor

    # ------------------------------------------------------------------ load
    async def load(self, conn: AsyncConnection, events: list[StoredEvent]) -> None:
        ids = sorted({c for c in map(_conv_id, events) if c is not None})
        for i in range(0, len(ids), _CHUNK):
            rows = await conn.execute(
                select(StatsConversation.__table__).where(
                    StatsConversation.conversation_id.in_(ids[i : i + _CHUNK])
                )
            )
            for row in rows.mappings():
                self.convs[int(row["conversation_id"])] = dict(row)
        tokens = sorted(
            {str(e.data.get("token")) for e in events if e.type == ev.LINK_CLICKED} - {"None"}
        )
        for i in range(0, len(tokens), _CHUNK):
            rows = await conn.execute(
                select(StatsLink.__table__).where(StatsLink.token.in_(tokens[i : i + _CHUNK]))
            )
            for row in rows.mappings():
                self.links[str(row["token"])] = dict(row)
        contacts = sorted(
            {
                int(e.data["contact_id"])
                for e in events
                if e.type == ev.MESSAGE_RECEIVED and isinstance(e.data.get("contact_id"), int)
            }
            | {
                int(c["contact_id"])
                for c in self.convs.values()
                if isinstance(c.get("contact_id"), int)
            }
        )
        for i in range(0, len(contacts), _CHUNK):
            rows = await conn.execute(
                select(
                    StatsCustomerDay.contact_id,
                    StatsCustomerDay.channel,
                    func.max(StatsCustomerDay.day),
                    func.min(StatsCustomerDay.first_day),
                )
                .where(StatsCustomerDay.contact_id.in_(contacts[i : i + _CHUNK]))
                .group_by(StatsCustomerDay.contact_id, StatsCustomerDay.channel)
            )
            for contact, channel, last, first in rows:
                self.chains[(int(contact), str(channel))] = (last, first)
        users = sorted(
            {_user(e.data.get("user_id")) for e in events if e.type == ev.OPERATOR_STATUS} - {0}
        )
        if users:
            rows = await conn.execute(
                select(StatsStatusInterval.__table__).where(
                    StatsStatusInterval.user_id.in_(users), StatsStatusInterval.ended_at.is_(None)
                )
            )
            for row in rows.mappings():
                self.intervals[int(row["user_id"])] = dict(row)

    # ------------------------------------------------------------------ helpers
    def _local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.tz)

    def count(
        self,
        moment: datetime,
        metric: str,
        channel: str = "",
        user_id: int = 0,
        key: str = "",
        n: int = 1,
        total: float = 0.0,
    ) -> None:
        local = self._local(moment)
        day = local.date()
        if not self._kept(day):
            return
        cell = self.counts[(day, local.hour, metric, channel, user_id, key[:200])]
        cell[0] += n
        cell[1] += total
        cell = self.daily[(day, metric, channel, user_id, key[:200])]
        cell[0] += n
        cell[1] += total

    def conv(self, conv_id: int, data: dict[str, Any]) -> dict[str, Any]:
        row = self.convs.get(conv_id)
        if row is None:
            row = {c: None for c in _CONV_COLUMNS}
            row.update(_CONV_DEFAULTS)
            row["conversation_id"] = conv_id
            row["channel"] = str(data.get("channel_id") or "")
            self.convs[conv_id] = row
            self.new_convs.add(conv_id)
        elif not row["channel"] and data.get("channel_id"):
            row["channel"] = str(data["channel_id"])
        if row["contact_id"] is None and isinstance(data.get("contact_id"), int):
            row["contact_id"] = data["contact_id"]
        self.dirty.add(conv_id)
        return row

    def _response(
        self, c: dict[str, Any], kind: str, asked: datetime, answered: datetime, user_id: int
    ) -> float:
        seconds = max((answered - asked).total_seconds(), 0.0)
        local = self._local(answered)
        if self._kept(local.date()):
            self.responses.append(
                {
                    "conversation_id": c["conversation_id"],
                    "user_id": user_id,
                    "channel": c["channel"],
                    "kind": kind,
                    "asked_at": asked,
                    "answered_at": answered,
                    "seconds": seconds,
                    "work_seconds": working_seconds(asked, answered, self.hours, self.tz),
                    "day": local.date(),
                    "hour": local.hour,
                }
            )
        return seconds

    def _wait(self, c: dict[str, Any], ended: datetime, outcome: str) -> None:
        queued: datetime = c["queued_at"]
        local = self._local(queued)
        c["queued_at"] = None
        if not self._kept(local.date()):
            return
        self.waits.append(
            {
                "conversation_id": c["conversation_id"],
                "channel": c["channel"],
                "queued_at": queued,
                "ended_at": ended,
                "outcome": outcome,
                "seconds": max((ended - queued).total_seconds(), 0.0),
                "day": local.date(),
                "hour": local.hour,
            }
        )

    def _customer_day(self, contact: int, channel: str, day: date) -> None:
        """The day joins the customer's chain on the channel (once a day). Events come in
        time order; one from an earlier day than the chain's last (which a log replayed
        in commit order may hold at midnight) joins as a day of its own."""
        chain = self.chains.get((contact, channel))
        if chain is not None and day == chain[0]:
            return
        if chain is None:
            prev, first = None, day
        elif day > chain[0]:
            prev, first = chain[0], chain[1]
        else:
            prev, first = (chain[1] if chain[1] < day else None), min(chain[1], day)
        if chain is None or day > chain[0]:
            self.chains[(contact, channel)] = (day, first)
        if self._kept(day):
            self.customer_days.append(
                {
                    "channel": channel,
                    "day": day,
                    "contact_id": contact,
                    "prev_day": prev,
                    "first_day": first,
                }
            )

    def _start_bucket(self, c: dict[str, Any], moment: datetime) -> datetime:
        """Where a conversation's outcome is credited: the day it started."""
        started: datetime | None = c["started_at"]
        return started if started is not None else moment

    # ------------------------------------------------------------------ apply
    def apply(self, e: StoredEvent) -> None:
        handler = _HANDLERS.get(e.type)
        if handler is not None:
            handler(self, e)
        if e.type in _OPERATOR_LOG:
            self._log(e)

    def _log(self, e: StoredEvent) -> None:
        d = e.data
        if e.type == ev.CONVERSATION_ASSIGNED:
            user = _user(d.get("by")) or _user(d.get("assignee_id"))
        elif e.type == ev.CONVERSATION_TRANSFERRED:
            user = _user(d.get("from"))
        elif e.type in (ev.CONVERSATION_RETURNED_TO_BOT, ev.CONVERSATION_CLOSED):
            user = _user(d.get("by"))
        else:
            user = _user(d.get("user_id"))
        if not user:
            return  # the desk or the bot did it (auto-assignment is kept under its operator)
        if self.replay is not None and e.occurred_at < self.replay.since:
            return
        extra = {k: v for k, v in d.items() if k not in ("conversation_id", "user_id")}
        self.oplog.append(
            {
                "occurred_at": e.occurred_at,
                "user_id": user,
                "type": e.type,
                "conversation_id": _conv_id(e),
                "data": extra or None,
            }
        )

    def on_received(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        t = e.occurred_at
        self.count(t, "msg.customer", c["channel"])
        if not c["customer_messages"]:
            c["started_at"] = t
            local = self._local(t)
            c["day"], c["hour"] = local.date(), local.hour
            self.count(t, "conv.started", c["channel"])
        c["customer_messages"] += 1
        contact = c["contact_id"]
        if isinstance(contact, int):
            day = self._local(t).date()
            self._customer_day(contact, c["channel"], day)
            self._customer_day(contact, ALL_CHANNELS, day)
        if (
            c["status"] in ("queued", "assigned")
            and c["awaiting_first_since"] is None
            and c["waiting_since"] is None
        ):
            c["waiting_since"] = t

    def on_sent(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        author = str(e.data.get("author") or "bot")
        user = _user(e.data.get("author_id")) if author == "operator" else 0
        t = e.occurred_at
        self.count(t, f"msg.{author}", c["channel"], user)
        if author == "bot":
            c["bot_messages"] += 1
        if author != "operator":
            return
        c["operator_messages"] += 1
        if c["awaiting_first_since"] is not None:
            seconds = self._response(c, "first", c["awaiting_first_since"], t, user)
            if c["first_response_s"] is None:
                c["first_response_s"] = seconds
            c["awaiting_first_since"] = None
        elif c["waiting_since"] is not None:
            self._response(c, "next", c["waiting_since"], t, user)
        c["waiting_since"] = None

    def on_failed(self, e: StoredEvent) -> None:
        self.count(e.occurred_at, "msg.failed", str(e.data.get("channel_id") or ""))

    def on_started(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is not None:
            self.conv(conv_id, e.data)["created_at"] = e.occurred_at

    def on_queued(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        t = e.occurred_at
        c["status"], c["assignee_id"] = "queued", None
        if e.data.get("reason", "handoff") != "handoff":
            return  # an operator left: the customer keeps waiting as they were
        self.count(t, "queue.queued", c["channel"])
        if not c["handed_over"]:
            c["handed_over"] = True
            self.count(self._start_bucket(c, t), "conv.to_operator", c["channel"])
        c["queued_at"] = t
        c["awaiting_first_since"] = t
        c["waiting_since"] = None

    def on_assigned(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        t = e.occurred_at
        user = _user(e.data.get("assignee_id"))
        c["status"], c["assignee_id"] = "assigned", user or None
        self.count(t, "op.assigned", c["channel"], user)
        if c["first_assigned_at"] is None:
            c["first_assigned_at"], c["first_operator_id"] = t, user or None
        if c["queued_at"] is not None:
            self._wait(c, t, "assigned")

    def on_transferred(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        t = e.occurred_at
        self.count(t, "op.transfers", c["channel"], _user(e.data.get("from")))
        c["transfers"] += 1
        to = _user(e.data.get("assignee_id"))
        if to:
            c["status"], c["assignee_id"] = "assigned", to
            self.count(t, "op.assigned", c["channel"], to)
        else:
            c["status"], c["assignee_id"] = "queued", None

    def on_returned(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        c["status"], c["assignee_id"] = "bot", None
        c["queued_at"] = c["awaiting_first_since"] = c["waiting_since"] = None

    def on_left_queue(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        t = e.occurred_at
        if c["queued_at"] is not None:
            self.count(c["queued_at"], "queue.abandoned", c["channel"])
            c["abandoned"] += 1
            self._wait(c, t, "left")
        c["status"], c["assignee_id"] = "bot", None
        c["awaiting_first_since"] = c["waiting_since"] = None

    def on_closed(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        t = e.occurred_at
        closer = _user(e.data.get("assignee_id")) or _user(e.data.get("by"))
        c["status"], c["closed_at"], c["closed_by"] = "closed", t, _user(e.data.get("by")) or None
        if c["first_assigned_at"] is not None:
            c["handle_s"] = max((t - c["first_assigned_at"]).total_seconds(), 0.0)
            self.count(t, "op.closed", c["channel"], closer, total=c["handle_s"])
        if c["handed_over"] and c["first_response_s"] is None:
            self.count(self._start_bucket(c, t), "conv.unanswered", c["channel"])
        c["queued_at"] = c["awaiting_first_since"] = c["waiting_since"] = None

    def on_status(self, e: StoredEvent) -> None:
        user = _user(e.data.get("user_id"))
        if not user:
            return
        t = e.occurred_at
        current = self.intervals.get(user)
        if current is not None:
            current["ended_at"] = t
            if current.get("id") is not None:
                self.ended[int(current["id"])] = t
            self.intervals[user] = None
        status = e.data.get("status")
        if status in ("online", "break"):
            interval = {"id": None, "user_id": user, "status": status, "started_at": t}
            interval["ended_at"] = None
            self.new_intervals.append(interval)
            self.intervals[user] = interval

    def on_recognised(self, e: StoredEvent) -> None:
        channel = str(e.data.get("channel_id") or "")
        intent = str(e.data.get("intent") or "")
        self.count(e.occurred_at, "bot.recognised", channel)
        self.count(e.occurred_at, "topic", channel, key=intent)
        conv_id = _conv_id(e)
        if conv_id is not None and intent:
            c = self.conv(conv_id, e.data)
            mark = f",{intent},"
            topics = c["topics"] or ","
            if mark not in topics:
                if len(topics) + len(intent) + 1 <= TOPICS_LIMIT:
                    c["topics"] = topics + intent + ","
                day = c["day"] or self._local(e.occurred_at).date()
                if self._kept(day):
                    self.topic_rows.add((intent[:64], day, conv_id))

    def on_fallback(self, e: StoredEvent) -> None:
        self.count(e.occurred_at, "bot.fallback", str(e.data.get("channel_id") or ""))
        conv_id = _conv_id(e)
        if conv_id is not None:
            self.conv(conv_id, e.data)["fallbacks"] += 1

    def on_flow(self, e: StoredEvent) -> None:
        channel = str(e.data.get("channel_id") or "")
        self.count(e.occurred_at, "flow.started", channel, key=str(e.data.get("flow") or ""))

    def on_readings(self, e: StoredEvent) -> None:
        self.count(e.occurred_at, "readings.submitted", str(e.data.get("channel_id") or ""))
        conv_id = _conv_id(e)
        if conv_id is not None:
            self.conv(conv_id, e.data)["readings"] += 1

    def on_balance(self, e: StoredEvent) -> None:
        self.count(e.occurred_at, "balance.asked", str(e.data.get("channel_id") or ""))

    def on_appeal(self, e: StoredEvent) -> None:
        self.count(e.occurred_at, "appeal.created", str(e.data.get("channel_id") or ""))

    def on_profanity(self, e: StoredEvent) -> None:
        self.count(e.occurred_at, "profanity", str(e.data.get("channel_id") or ""))
        conv_id = _conv_id(e)
        if conv_id is not None:
            self.conv(conv_id, e.data)["profanity"] += 1

    def on_link_sent(self, e: StoredEvent) -> None:
        channel = str(e.data.get("channel_id") or "")
        url = str(e.data.get("url") or "")[:200]
        token = str(e.data.get("token") or "")
        self.count(e.occurred_at, "link.sent", channel, key=url)
        local = self._local(e.occurred_at)
        if token and self._kept(local.date()):
            link = {
                "token": token,
                "day": local.date(),
                "hour": local.hour,
                "channel": channel,
                "url": url,
                "first_clicked_at": None,
            }
            self.new_links[token] = link
            self.links[token] = link
        conv_id = _conv_id(e)
        if conv_id is not None:
            self.conv(conv_id, e.data)["links_sent"] += 1

    def on_link_clicked(self, e: StoredEvent) -> None:
        token = str(e.data.get("token") or "")
        url = str(e.data.get("url") or "")[:200]
        channel = str(e.data.get("channel_id") or "")
        self.count(e.occurred_at, "link.clicks", channel, key=url)
        link = self.links.get(token)
        if link is None:
            return  # sent before the log began: its click-through is not known
        if link["first_clicked_at"] is None:
            link["first_clicked_at"] = e.occurred_at
            if token not in self.new_links:
                self.clicked[token] = e.occurred_at
            sent = datetime.combine(link["day"], time(hour=int(link["hour"])), self.tz)
            self.count(sent, "link.clicked", link["channel"], key=link["url"])

    def on_csat_asked(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        if conv_id is None:
            return
        c = self.conv(conv_id, e.data)
        user = _user(e.data.get("user_id")) or _user(c["assignee_id"])
        c["csat_asked_at"], c["csat_user_id"] = e.occurred_at, user or None
        self.count(e.occurred_at, "csat.asked", c["channel"], user)

    def on_csat_rated(self, e: StoredEvent) -> None:
        conv_id = _conv_id(e)
        rating = e.data.get("rating")
        if conv_id is None or not isinstance(rating, int) or not 1 <= rating <= 5:
            return
        c = self.conv(conv_id, e.data)
        if c["csat_rating"] is not None:
            return  # one rating per conversation
        c["csat_rating"] = rating
        asked = c["csat_asked_at"] or e.occurred_at
        user = _user(c["csat_user_id"])
        self.count(asked, "csat.rated", c["channel"], user, key=str(rating), total=float(rating))

    # ------------------------------------------------------------------ write
    async def write(self, conn: AsyncConnection) -> None:
        if self.counts:
            await conn.execute(
                _adding(conn, StatsCount, ["metric", "day", "hour", "channel", "user_id", "key"]),
                [
                    {
                        "day": k[0],
                        "hour": k[1],
                        "metric": k[2],
                        "channel": k[3],
                        "user_id": k[4],
                        "key": k[5],
                        "n": int(v[0]),
                        "total": float(v[1]),
                    }
                    for k, v in self.counts.items()
                ],
            )
            # Summed over channels, operators and keys: an unfiltered hourly series.
            hourly: dict[tuple[str, date, int], int] = defaultdict(int)
            for (day, hour, metric, *_rest), (n, _total) in self.counts.items():
                hourly[(metric, day, hour)] += int(n)
            await conn.execute(
                _adding(conn, StatsHourly, ["metric", "day", "hour"], ("n",)),
                [{"metric": m, "day": d, "hour": h, "n": n} for (m, d, h), n in hourly.items()],
            )
            await conn.execute(
                _adding(conn, StatsDaily, ["metric", "day", "channel", "user_id", "key"]),
                [
                    {
                        "day": k[0],
                        "metric": k[1],
                        "channel": k[2],
                        "user_id": k[3],
                        "key": k[4],
                        "n": int(v[0]),
                        "total": float(v[1]),
                    }
                    for k, v in self.daily.items()
                ],
            )
            # By calendar month: a long period's whole months.
            monthly: dict[tuple[date, str, str, int, str], list[float]] = defaultdict(
                lambda: [0, 0.0]
            )
            for (day, metric, channel, user, key), (n, total) in self.daily.items():
                cell = monthly[(day.replace(day=1), metric, channel, user, key)]
                cell[0] += n
                cell[1] += total
            await conn.execute(
                _adding(conn, StatsMonthly, ["metric", "month", "channel", "user_id", "key"]),
                [
                    {
                        "month": k[0],
                        "metric": k[1],
                        "channel": k[2],
                        "user_id": k[3],
                        "key": k[4],
                        "n": int(v[0]),
                        "total": float(v[1]),
                    }
                    for k, v in monthly.items()
                ],
            )
        new = [self.convs[c] for c in sorted(self.new_convs)]
        if new:
            await conn.execute(insert(StatsConversation), new)
        changed = [self.convs[c] for c in sorted(self.dirty - self.new_convs)]
        if changed:
            columns = [c for c in _CONV_COLUMNS if c != "conversation_id"]
            await conn.execute(
                update(StatsConversation)
                .where(StatsConversation.conversation_id == bindparam("b_conversation_id"))
                .values({c: bindparam(f"b_{c}") for c in columns}),
                [{f"b_{k}": v for k, v in row.items()} for row in changed],
            )
        for table, rows in (
            (StatsResponse, self.responses),
            (StatsQueueWait, self.waits),
            (StatsOperatorEvent, self.oplog),
        ):
            if rows:
                await conn.execute(insert(table), rows)
        if self.responses:
            await summaries.refresh_responses(
                conn, {(r["day"], r["kind"], r["user_id"]) for r in self.responses}
            )
        if self.waits:
            await summaries.refresh_waits(
                conn, {(w["day"], w["outcome"], w["channel"]) for w in self.waits}
            )
        if self.customer_days:
            inserted = await conn.execute(
                _new_customer_days(conn.dialect.name),
                self.customer_days,
            )
            await summaries.count_customer_days(conn, inserted.all())
        if self.topic_rows:
            await conn.execute(
                _ignoring(conn.dialect.name, StatsTopic),
                [
                    {"topic": t, "day": d, "conversation_id": c}
                    for t, d, c in sorted(self.topic_rows)
                ],
            )
        if self.new_links:
            await conn.execute(
                _ignoring(conn.dialect.name, StatsLink), list(self.new_links.values())
            )
        if self.clicked:
            await conn.execute(
                update(StatsLink)
                .where(StatsLink.token == bindparam("b_token"))
                .values(first_clicked_at=bindparam("b_at")),
                [{"b_token": k, "b_at": v} for k, v in self.clicked.items()],
            )
        if self.ended:
            await conn.execute(
                update(StatsStatusInterval)
                .where(StatsStatusInterval.id == bindparam("b_id"))
                .values(ended_at=bindparam("b_at")),
                [{"b_id": k, "b_at": v} for k, v in self.ended.items()],
            )
        if self.new_intervals:
            await conn.execute(
                insert(StatsStatusInterval),
                [{k: v for k, v in i.items() if k != "id"} for i in self.new_intervals],
            )


_HANDLERS = {
    ev.MESSAGE_RECEIVED: _Batch.on_received,
    ev.MESSAGE_SENT: _Batch.on_sent,
    ev.MESSAGE_FAILED: _Batch.on_failed,
    ev.CONVERSATION_STARTED: _Batch.on_started,
    ev.CONVERSATION_QUEUED: _Batch.on_queued,
    ev.CONVERSATION_ASSIGNED: _Batch.on_assigned,
    ev.CONVERSATION_TRANSFERRED: _Batch.on_transferred,
    ev.CONVERSATION_RETURNED_TO_BOT: _Batch.on_returned,
    ev.CONVERSATION_LEFT_QUEUE: _Batch.on_left_queue,
    ev.CONVERSATION_CLOSED: _Batch.on_closed,
    ev.OPERATOR_STATUS: _Batch.on_status,
    ev.TEXT_RECOGNISED: _Batch.on_recognised,
    ev.TEXT_FALLBACK: _Batch.on_fallback,
    ev.FLOW_STARTED: _Batch.on_flow,
    ev.READINGS_SUBMITTED: _Batch.on_readings,
    ev.BALANCE_ASKED: _Batch.on_balance,
    ev.APPEAL_CREATED: _Batch.on_appeal,
    ev.PROFANITY_DETECTED: _Batch.on_profanity,
    ev.LINK_SENT: _Batch.on_link_sent,
    ev.LINK_CLICKED: _Batch.on_link_clicked,
    ev.CSAT_ASKED: _Batch.on_csat_asked,
    ev.CSAT_RATED: _Batch.on_csat_rated,
}
