"""``abonent stats rebuild [--from DAY]``: recompute the rollups from the event log.

The running servers' statistics consumer is paused first (its cursor row is marked),
so nothing is counted twice while the rollups are rewritten; the rebuild replays the
log in batches of its own, then takes the cursor over in one last transaction —
applying whatever arrived meanwhile — and un-pauses it. A rebuild that fails leaves
the consumer paused and says so: the figures are not trustworthy until it is run
again, and a silent half-rebuilt state would be worse.

A full rebuild also backfills the history an installation had before the log
began (the ``log.started`` event marks where, table by table): conversations,
messages, what the bot recognised, readings, appeals and links are read from their
own tables and fed to the same consumer, merged in time order with the operators'
log and link clicks the migration carried over. What those tables never kept (flow
starts, every hand-off but the last one, statuses before the log) stays unknown.

``--from DAY`` keeps the rollups before DAY and rebuilds DAY onwards: conversations
still going on at DAY's start are replayed from their beginning (their state is
needed), but only what falls on DAY or later is written.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import Any

from sqlalchemy import Date, delete, func, insert, literal, select, update

from abonent.analytics.rollup import CONSUMER, Replay, StatsConsumer
from abonent.clock import utcnow
from abonent.config import Settings
from abonent.core import events as ev
from abonent.core.eventlog import (
    STORED_COLUMNS,
    StoredEvent,
    after,
    lock_cursor,
    move_cursor,
    read_after,
)
from abonent.db.models import (
    Appeal,
    Conversation,
    EventCursor,
    EventRecord,
    Message,
    ReadingsRecord,
    StatsConversation,
    StatsCount,
    StatsCustomerCount,
    StatsCustomerDay,
    StatsDaily,
    StatsHourly,
    StatsLink,
    StatsMonthly,
    StatsOperatorEvent,
    StatsQueueWait,
    StatsQueueWaitValues,
    StatsResponse,
    StatsResponseValues,
    StatsStatusInterval,
    StatsTopic,
    TrackedLink,
)
from abonent.db.session import Database

log = logging.getLogger(__name__)

BATCH = 2000
_CHUNK = 5000
_FLOW_BUTTONS = {"readings": "readings", "balance": "balance", "appeal": "appeal"}


class RebuildError(RuntimeError):
    """The rebuild could not finish; the message says what to do."""


@dataclass
class Rebuilt:
    events: int = 0
    backfilled: int = 0
    since: date | None = None
    seconds: float = 0.0


Progress = Callable[[str], None]


async def rebuild(
    db: Database, settings: Settings, *, since: date | None = None, progress: Progress = log.info
) -> Rebuilt:
    started = utcnow()
    tz = settings.company.tz
    await _pause(db)
    result = Rebuilt()
    marker = await _log_started(db)
    since_at = datetime.combine(since, time(), tz) if since is not None else None
    if since_at is not None and marker is not None and since_at <= marker.occurred_at:
        progress(f"{since} is before the log began ({marker.occurred_at:%Y-%m-%d}): rebuilding all")
        since, since_at = None, None
    result.since = since
    consumer: StatsConsumer
    if since is None or since_at is None:
        progress("removing all statistics")
        await _clear_all(db)
        consumer = StatsConsumer(tz, settings.company.working_hours)
        start = (0, 0)
        if marker is not None:
            result.backfilled = await _backfill(db, consumer, marker, progress)
            start = (marker.tx, marker.id)
        replay_since = None
    else:
        scope, replay_since = await _scope(db, since_at)
        progress(
            f"rebuilding from {since}: {len(scope)} conversations replayed from "
            f"{replay_since:%Y-%m-%d %H:%M}"
        )
        await _clear_from(db, since, since_at, scope)
        consumer = StatsConsumer(
            tz, settings.company.working_hours, replay=Replay(since, since_at, frozenset(scope))
        )
        start = (0, 0)
    position = start
    while True:
        async with db.write() as conn:
            batch = await read_after(conn, *position, BATCH, since=replay_since)
            if not batch:
                break
            await consumer.apply(conn, batch)
        position = (batch[-1].tx, batch[-1].id)
        result.events += len(batch)
        if result.events % (BATCH * 50) == 0:
            progress(f"{result.events} events replayed")
    result.events += await _hand_over(db, consumer, position)
    result.seconds = (utcnow() - started).total_seconds()
    progress(
        f"done: {result.events} events replayed, {result.backfilled} facts backfilled "
        f"in {result.seconds:.1f} s"
    )
    return result


async def _pause(db: Database) -> None:
    async with db.write() as conn:
        await lock_cursor(conn, CONSUMER, wait=True)
        await conn.execute(
            update(EventCursor).where(EventCursor.consumer == CONSUMER).values(paused_at=utcnow())
        )


async def _hand_over(db: Database, consumer: StatsConsumer, position: tuple[int, int]) -> int:
    """Apply what arrived during the rebuild and give the cursor back to the servers."""
    done = 0
    async with db.write() as conn:
        await lock_cursor(conn, CONSUMER, wait=True)
        while True:
            batch = await read_after(conn, *position, BATCH)
            if not batch:
                break
            await consumer.apply(conn, batch)
            position = (batch[-1].tx, batch[-1].id)
            done += len(batch)
        await move_cursor(conn, CONSUMER, *position, done)
        await conn.execute(
            update(EventCursor).where(EventCursor.consumer == CONSUMER).values(paused_at=None)
        )
    return done


async def _log_started(db: Database) -> StoredEvent | None:
    async with db.read() as conn:
        row = (
            await conn.execute(
                select(*STORED_COLUMNS)
                .where(EventRecord.type == ev.LOG_STARTED)
                .order_by(EventRecord.id)
                .limit(1)
            )
        ).first()
    return StoredEvent(*row) if row is not None else None


_ROLLUPS = (
    StatsCount,
    StatsHourly,
    StatsDaily,
    StatsMonthly,
    StatsConversation,
    StatsResponse,
    StatsResponseValues,
    StatsQueueWait,
    StatsQueueWaitValues,
    StatsStatusInterval,
    StatsOperatorEvent,
    StatsCustomerDay,
    StatsCustomerCount,
    StatsTopic,
    StatsLink,
)


async def _clear_all(db: Database) -> None:
    async with db.write() as conn:
        for table in _ROLLUPS:
            await conn.execute(delete(table))


async def _scope(db: Database, since_at: datetime) -> tuple[set[int], datetime]:
    """Conversations with anything at or after ``since_at``, and when the earliest of
    them began (the replay starts there): one pass over the log each."""
    later = (
        select(EventRecord.conversation_id)
        .where(EventRecord.occurred_at >= since_at, EventRecord.conversation_id.is_not(None))
        .distinct()
    )
    async with db.read() as conn:
        ids = set((await conn.execute(later)).scalars())
        first = await conn.scalar(
            select(func.min(EventRecord.occurred_at)).where(
                EventRecord.conversation_id.in_(later.scalar_subquery())
            )
        )
    earliest = min(first, since_at) if first is not None else since_at
    return {int(i) for i in ids if i is not None}, earliest


async def _clear_from(db: Database, day: date, since_at: datetime, scope: set[int]) -> None:
    async with db.write() as conn:
        for table in (
            StatsCount,
            StatsHourly,
            StatsDaily,
            StatsResponse,
            StatsResponseValues,
            StatsQueueWait,
            StatsQueueWaitValues,
            StatsCustomerDay,
            StatsCustomerCount,
            StatsTopic,
            StatsLink,
        ):
            await conn.execute(delete(table).where(table.day >= day))
        # The floor's month keeps its days before the floor: summed again from them.
        month = day.replace(day=1)
        await conn.execute(delete(StatsMonthly).where(StatsMonthly.month >= month))
        d = StatsDaily
        await conn.execute(
            insert(StatsMonthly).from_select(
                ["metric", "month", "channel", "user_id", "key", "n", "total"],
                select(
                    d.metric,
                    literal(month, Date()),
                    d.channel,
                    d.user_id,
                    d.key,
                    func.sum(d.n),
                    func.sum(d.total),
                )
                .where(d.day >= month, d.day < day)
                .group_by(d.metric, d.channel, d.user_id, d.key),
            )
        )
        await conn.execute(
            update(StatsLink)
            .where(StatsLink.first_clicked_at >= since_at)
            .values(first_clicked_at=None)
        )
        await conn.execute(
            delete(StatsOperatorEvent).where(StatsOperatorEvent.occurred_at >= since_at)
        )
        await conn.execute(
            delete(StatsStatusInterval).where(StatsStatusInterval.started_at >= since_at)
        )
        await conn.execute(
            update(StatsStatusInterval)
            .where(StatsStatusInterval.ended_at >= since_at)
            .values(ended_at=None)
        )
        await conn.execute(delete(StatsConversation).where(StatsConversation.day >= day))
        found = sorted(scope)
        for i in range(0, len(found), 500):
            await conn.execute(
                delete(StatsConversation).where(
                    StatsConversation.conversation_id.in_(found[i : i + 500])
                )
            )


# --------------------------------------------------------------------------- backfill
async def _backfill(
    db: Database, consumer: StatsConsumer, marker: StoredEvent, progress: Progress
) -> int:
    bounds = marker.data
    tables = ("messages", "conversations", "readings", "appeals", "links_until")
    if not any(bounds.get(k) for k in tables) and not await _has_old_events(db, marker.id):
        return 0
    progress("backfilling the history from before the log")
    streams = [
        _old_events(db, marker.id),
        _conversations(db, int(bounds.get("conversations") or 0)),
        _handoffs(db, int(bounds.get("conversations") or 0)),
        _messages(db, int(bounds.get("messages") or 0)),
        _readings(db, int(bounds.get("readings") or 0)),
        _appeals(db, int(bounds.get("appeals") or 0)),
        _links(db, bounds.get("links_until")),
    ]
    done = 0
    batch: list[StoredEvent] = []
    async for event in _merge(streams):
        batch.append(event)
        if len(batch) >= BATCH:
            await _apply(db, consumer, batch)
            done += len(batch)
            batch = []
    if batch:
        await _apply(db, consumer, batch)
        done += len(batch)
    return done


async def _apply(db: Database, consumer: StatsConsumer, batch: list[StoredEvent]) -> None:
    async with db.write() as conn:
        await consumer.apply(conn, batch)


async def _has_old_events(db: Database, before_id: int) -> bool:
    async with db.read() as conn:
        return (
            await conn.scalar(select(EventRecord.id).where(EventRecord.id < before_id).limit(1))
        ) is not None


async def _merge(streams: list[AsyncIterator[StoredEvent]]) -> AsyncIterator[StoredEvent]:
    """The streams' events in time order (each stream is in time order already)."""
    heap: list[tuple[datetime, int, int, StoredEvent]] = []
    seq = 0
    for index, stream in enumerate(streams):
        first = await anext(stream, None)
        if first is not None:
            heap.append((first.occurred_at, index, seq, first))
            seq += 1
    heapq.heapify(heap)
    while heap:
        _, index, _, event = heapq.heappop(heap)
        yield event
        following = await anext(streams[index], None)
        if following is not None:
            heapq.heappush(heap, (following.occurred_at, index, seq, following))
            seq += 1


def _fact(kind: str, at: datetime, data: dict[str, Any]) -> StoredEvent:
    conv = data.get("conversation_id")
    return StoredEvent(0, 0, kind, at, conv if isinstance(conv, int) else None, data)


async def _chunks(
    db: Database, build: Callable[[Any], Any], key: Callable[[Any], Any]
) -> AsyncIterator[Any]:
    """Rows of ``build(after)`` page by page; ``key(row)`` gives the next page's start."""
    after: Any = None
    while True:
        async with db.read() as conn:
            rows = (await conn.execute(build(after))).all()
        for row in rows:
            yield row
        if len(rows) < _CHUNK:
            return
        after = key(rows[-1])


async def _old_events(db: Database, before_id: int) -> AsyncIterator[StoredEvent]:
    """What the migration carried over (the operators' log, link clicks), by time."""

    def page(after: Any) -> Any:
        query = select(*STORED_COLUMNS).where(EventRecord.id < before_id)
        if after is not None:
            query = query.where(
                (EventRecord.occurred_at > after[0])
                | ((EventRecord.occurred_at == after[0]) & (EventRecord.id > after[1]))
            )
        return query.order_by(EventRecord.occurred_at, EventRecord.id).limit(_CHUNK)

    async for row in _chunks(db, page, lambda r: (r[3], r[0])):
        yield StoredEvent(*row)


async def _conversations(db: Database, bound: int) -> AsyncIterator[StoredEvent]:
    def page(after: Any) -> Any:
        query = select(
            Conversation.id,
            Conversation.channel_id,
            Conversation.contact_id,
            Conversation.created_at,
        ).where(Conversation.id <= bound)
        if after is not None:
            query = query.where(Conversation.id > after)
        return query.order_by(Conversation.id).limit(_CHUNK)

    async for conv_id, channel, contact, at in _chunks(db, page, lambda r: r[0]):
        yield _fact(
            ev.CONVERSATION_STARTED,
            at,
            {"conversation_id": conv_id, "channel_id": channel, "contact_id": contact},
        )


async def _handoffs(db: Database, bound: int) -> AsyncIterator[StoredEvent]:
    """The last hand-off of each conversation (the only one its row remembers)."""

    def page(after: Any) -> Any:
        query = select(Conversation.id, Conversation.channel_id, Conversation.queued_at).where(
            Conversation.id <= bound, Conversation.queued_at.is_not(None)
        )
        if after is not None:
            query = query.where(
                (Conversation.queued_at > after[0])
                | ((Conversation.queued_at == after[0]) & (Conversation.id > after[1]))
            )
        return query.order_by(Conversation.queued_at, Conversation.id).limit(_CHUNK)

    async for conv_id, channel, at in _chunks(db, page, lambda r: (r[2], r[0])):
        yield _fact(
            ev.CONVERSATION_QUEUED,
            at,
            {"conversation_id": conv_id, "channel_id": channel, "reason": "handoff"},
        )


async def _messages(db: Database, bound: int) -> AsyncIterator[StoredEvent]:
    """Messages, and what the bot noted on each customer message (intent, readings…)."""

    def page(after: Any) -> Any:
        query = (
            select(
                Message.id,
                Message.conversation_id,
                Message.channel_id,
                Message.author,
                Message.author_id,
                Message.payload,
                Message.meta,
                Message.delivery,
                Message.created_at,
                Conversation.contact_id,
            )
            .join(Conversation, Conversation.id == Message.conversation_id)
            .where(Message.id <= bound)
        )
        if after is not None:
            query = query.where(Message.id > after)
        return query.order_by(Message.id).limit(_CHUNK)

    async for row in _chunks(db, page, lambda r: r[0]):
        for fact in _message_facts(*row):
            yield fact


def _message_facts(
    message_id: int,
    conv_id: int,
    channel: str,
    author: str,
    author_id: int | None,
    payload: str | None,
    meta: dict[str, Any] | None,
    delivery: str | None,
    at: datetime,
    contact_id: int,
) -> list[StoredEvent]:
    base = {"message_id": message_id, "conversation_id": conv_id, "channel_id": channel}
    meta = meta or {}
    if author == "note":
        return []
    if author != "customer":
        facts = [_fact(ev.MESSAGE_SENT, at, {**base, "author": author, "author_id": author_id})]
        if delivery == "failed":
            facts.append(_fact(ev.MESSAGE_FAILED, at, base))
        return facts
    kind = "button" if payload else ("attachment" if meta.get("attachments") else "text")
    facts = [_fact(ev.MESSAGE_RECEIVED, at, {**base, "contact_id": contact_id, "kind": kind})]
    button = meta.get("button")
    if isinstance(button, str) and button in _FLOW_BUTTONS:
        facts.append(_fact(ev.FLOW_STARTED, at, {**base, "flow": _FLOW_BUTTONS[button]}))
    if "alternatives" in meta and isinstance(meta.get("intent"), str):
        intent = meta["intent"]
        confidence = meta.get("confidence")
        if intent == "fallback" or meta.get("fallback"):
            facts.append(
                _fact(ev.TEXT_FALLBACK, at, {**base, "intent": intent, "confidence": confidence})
            )
        else:
            facts.append(
                _fact(ev.TEXT_RECOGNISED, at, {**base, "intent": intent, "confidence": confidence})
            )
    if meta.get("profanity"):
        facts.append(_fact(ev.PROFANITY_DETECTED, at, base))
    if "balance" in meta:
        facts.append(_fact(ev.BALANCE_ASKED, at, base))
    return facts


async def _readings(db: Database, bound: int) -> AsyncIterator[StoredEvent]:
    def page(after: Any) -> Any:
        query = (
            select(
                ReadingsRecord.id,
                ReadingsRecord.conversation_id,
                Conversation.channel_id,
                ReadingsRecord.account_number,
                ReadingsRecord.created_at,
            )
            .join(Conversation, Conversation.id == ReadingsRecord.conversation_id)
            .where(ReadingsRecord.id <= bound, ReadingsRecord.source == "bot")
        )
        if after is not None:
            query = query.where(ReadingsRecord.id > after)
        return query.order_by(ReadingsRecord.id).limit(_CHUNK)

    async for _id, conv_id, channel, account, at in _chunks(db, page, lambda r: r[0]):
        yield _fact(
            ev.READINGS_SUBMITTED,
            at,
            {"conversation_id": conv_id, "channel_id": channel, "account": account},
        )


async def _appeals(db: Database, bound: int) -> AsyncIterator[StoredEvent]:
    def page(after: Any) -> Any:
        query = (
            select(Appeal.id, Appeal.conversation_id, Conversation.channel_id, Appeal.created_at)
            .join(Conversation, Conversation.id == Appeal.conversation_id)
            .where(Appeal.id <= bound)
        )
        if after is not None:
            query = query.where(Appeal.id > after)
        return query.order_by(Appeal.id).limit(_CHUNK)

    async for _id, conv_id, channel, at in _chunks(db, page, lambda r: r[0]):
        yield _fact(ev.APPEAL_CREATED, at, {"conversation_id": conv_id, "channel_id": channel})


async def _links(db: Database, until: Any) -> AsyncIterator[StoredEvent]:
    if not until:
        return
    limit = datetime.fromisoformat(str(until))

    def page(after: Any) -> Any:
        query = select(
            TrackedLink.token,
            TrackedLink.conversation_id,
            TrackedLink.channel_id,
            TrackedLink.url,
            TrackedLink.intent,
            TrackedLink.created_at,
        ).where(TrackedLink.created_at <= limit)
        if after is not None:
            query = query.where(
                (TrackedLink.created_at > after[0])
                | ((TrackedLink.created_at == after[0]) & (TrackedLink.token > after[1]))
            )
        return query.order_by(TrackedLink.created_at, TrackedLink.token).limit(_CHUNK)

    async for token, conv_id, channel, url, intent, at in _chunks(db, page, lambda r: (r[5], r[0])):
        yield _fact(
            ev.LINK_SENT,
            at,
            {
                "conversation_id": conv_id,
                "channel_id": channel or "",
                "token": token,
                "url": url,
                "intent": intent,
            },
        )


async def consumer_status(db: Database) -> dict[str, Any]:
    """Each durable consumer's position, backlog and pause (``abonent stats status``)."""
    async with db.read() as conn:
        cursors = (await conn.execute(select(EventCursor.__table__))).mappings().all()
        out = []
        for c in cursors:
            behind = await conn.scalar(
                select(func.count())
                .select_from(EventRecord)
                .where(after(conn.dialect.name, c["tx"], c["last_id"]))
            )
            out.append(
                {
                    "consumer": c["consumer"],
                    "processed": int(c["processed"]),
                    "behind": int(behind or 0),
                    "updated_at": c["updated_at"].isoformat() if c["updated_at"] else None,
                    "paused_at": c["paused_at"].isoformat() if c["paused_at"] else None,
                }
            )
        total = await conn.scalar(select(func.count()).select_from(EventRecord))
        oldest = await conn.scalar(select(func.min(EventRecord.occurred_at)))
    return {
        "consumers": out,
        "events": int(total or 0),
        "oldest_event": oldest.isoformat() if oldest is not None else None,
    }
