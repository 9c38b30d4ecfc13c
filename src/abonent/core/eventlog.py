"""The durable event log: writing events with their facts, and consumers that read it.

``record`` inserts events on the connection of the transaction that makes the fact,
so a crash either keeps both or neither. Consumers (statistics now; hooks, webhooks
and reminders later) read the table by cursor: each keeps its position in
``event_cursors`` and applies a batch in the same transaction that moves the cursor,
so a consumer whose effects live in this database counts every event exactly once,
however processes crash. Several processes share a consumer: the one that locks its
cursor row (``FOR UPDATE SKIP LOCKED``) works, the others find it busy and wait.

Why a (transaction id, id) cursor on PostgreSQL: ids are taken when a row is
inserted, not when its transaction commits, so a reader by id alone can pass id 11
(committed) while id 10 (a slower transaction) is still invisible, and never come
back for it. Each event carries its writer's transaction id; a reader only takes
events of transactions older than the oldest one still running
(``pg_snapshot_xmin``), which can no longer change, in that order. SQLite has a single
writer at a time, so ids are already in commit order there. (A transaction left open
anywhere on the PostgreSQL server therefore delays what consumers see — never loses
it; ``abonent_events_unprocessed`` on /metrics shows such a stall.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, func, insert, literal, select, text, tuple_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from abonent.clock import utcnow
from abonent.core import events as ev
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.worker import Worker
from abonent.db.models import EventCursor, EventRecord
from abonent.db.session import Database, HotStatement

log = logging.getLogger(__name__)

_INSERT = HotStatement(insert(EventRecord))
# Transactions below this id have all ended: their events can no longer appear.
_VISIBLE_HORIZON = text("pg_snapshot_xmin(pg_current_snapshot())::text::bigint")


async def record(
    conn: AsyncConnection | AsyncSession, events: Sequence[Event], now: datetime | None = None
) -> list[Event]:
    """Write ``events`` in the caller's transaction; returns them stamped with the time,
    to be published on the bus once the transaction has committed."""
    durable = [e for e in events if e.durable]
    if not durable:
        return list(events)
    moment = now or utcnow()
    stamped = [e if e.occurred_at is not None else replace(e, occurred_at=moment) for e in events]
    rows = [
        {
            "type": e.type,
            "occurred_at": e.occurred_at,
            "conversation_id": _int_or_none(e.data.get("conversation_id")),
            "data": e.data,
        }
        for e in stamped
        if e.durable
    ]
    if isinstance(conn, AsyncSession):
        await conn.execute(_INSERT.statement, rows)
    else:
        await _INSERT.run_many(conn, rows)
    return stamped


async def record_now(db: Database, bus: LocalBus, events: Sequence[Event]) -> None:
    """A fact that is nothing but its event (a sign-in): its own transaction, then the bus."""
    async with db.write() as conn:
        stamped = await record(conn, events)
    await bus.publish_many(stamped)


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(frozen=True)
class StoredEvent:
    id: int
    tx: int
    type: str
    occurred_at: datetime
    conversation_id: int | None
    data: dict[str, Any]


class Consumer(Protocol):
    """A durable listener: ``apply`` runs in the transaction that moves its cursor.

    A consumer may have an ``every`` attribute: the background loop then gives it a
    batch at most that often (seconds), so that its batches are larger; ``catch_up``
    with a ``wait`` (tools, tests) still takes it at once."""

    name: str

    async def apply(self, conn: AsyncConnection, events: list[StoredEvent]) -> None: ...


# The columns of a ``StoredEvent``, in its order.
STORED_COLUMNS = (
    EventRecord.id,
    EventRecord.tx,
    EventRecord.type,
    EventRecord.occurred_at,
    EventRecord.conversation_id,
    EventRecord.data,
)


def after(dialect: str, tx: int, last_id: int) -> Any:
    """Events past the cursor, as one range of an index: on PostgreSQL a row comparison
    on (tx, id) (spelt with OR it scanned the log from its start on every batch); on
    SQLite, where tx is always 0, the id alone (the row comparison scanned there)."""
    if dialect != "postgresql":
        return EventRecord.id > last_id
    return tuple_(EventRecord.tx, EventRecord.id) > tuple_(literal(tx), literal(last_id))


def log_order(dialect: str) -> tuple[Any, ...]:
    return (EventRecord.tx, EventRecord.id) if dialect == "postgresql" else (EventRecord.id,)


async def read_after(
    conn: AsyncConnection,
    tx: int,
    last_id: int,
    limit: int,
    *,
    since: datetime | None = None,
) -> list[StoredEvent]:
    """The next committed events after (tx, last_id), in log order (``since``: only
    those that happened then or later)."""
    dialect = conn.dialect.name
    query = select(*STORED_COLUMNS).where(after(dialect, tx, last_id))
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if dialect == "postgresql":
        query = query.where(EventRecord.tx < _VISIBLE_HORIZON)
    query = query.order_by(*log_order(dialect)).limit(limit)
    return [StoredEvent(*row) for row in (await conn.execute(query)).all()]


async def lock_cursor(
    conn: AsyncConnection, name: str, *, wait: bool = False
) -> tuple[int, int] | None:
    """(tx, last id) of the consumer, locked for this transaction; None when another
    process holds it (it is processing a batch right now) or a rebuild has paused it.
    ``wait``: wait for the lock instead (the rebuild taking over).

    On SQLite the cursor row is written first, which takes the database's write lock
    at once: a transaction that read first and wrote later could find another
    process's write in between and fail. On PostgreSQL the row is only created when
    it is missing, so an idle poll writes nothing."""
    query = select(EventCursor.tx, EventCursor.last_id, EventCursor.paused_at).where(
        EventCursor.consumer == name
    )
    if conn.dialect.name == "postgresql":
        row = (await conn.execute(query.with_for_update(skip_locked=not wait))).first()
        if row is None:
            if (await conn.execute(query)).first() is not None:
                return None  # it exists: another process holds it
            await conn.execute(
                postgresql.insert(EventCursor).values(_new_cursor(name)).on_conflict_do_nothing()
            )
            row = (await conn.execute(query.with_for_update(skip_locked=not wait))).first()
    else:
        await conn.execute(
            sqlite.insert(EventCursor).values(_new_cursor(name)).on_conflict_do_nothing()
        )
        row = (await conn.execute(query)).first()
    if row is None or (row[2] is not None and not wait):
        return None
    return int(row[0]), int(row[1])


def _new_cursor(name: str) -> dict[str, Any]:
    return {
        "consumer": name,
        "tx": 0,
        "last_id": 0,
        "processed": 0,
        "updated_at": utcnow(),
        "paused_at": None,
    }


async def move_cursor(
    conn: AsyncConnection, name: str, tx: int, last_id: int, processed: int
) -> None:
    await conn.execute(
        update(EventCursor)
        .where(EventCursor.consumer == name)
        .values(
            tx=tx,
            last_id=last_id,
            processed=EventCursor.processed + processed,
            updated_at=utcnow(),
        )
    )


class EventConsumers(Worker):
    """Runs the durable consumers: woken by new events on the bus, and polling, since
    another process's events may arrive without a bus (no Redis) or while it was busy."""

    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        consumers: Sequence[Consumer],
        *,
        batch: int = 1000,
        poll: float = 2.0,
        gather: float = 1.0,
        retention: timedelta | None = None,
    ) -> None:
        # A short pause after a wake-up (``gather``) lets a burst of events go in one batch.
        super().__init__(
            bus,
            None,
            name="event-consumers",
            poll=poll,
            gather=gather,
            logger=log,
            failure="event consumers' pass failed; retrying",
        )
        self.db = db
        self.consumers = list(consumers)
        self.batch = batch
        self.retention = retention
        self._lock = asyncio.Lock()
        self._last_prune = 0.0
        # Loop time of each consumer's last batch in the background (see ``every``).
        self._last_pass: dict[str, float] = {}

    def _on_event(self, event: Event) -> None:
        if event.durable:
            self.wake()

    async def _step(self) -> bool:
        await self.catch_up(wait=0)
        now = asyncio.get_running_loop().time()
        if self.retention is not None and now - self._last_prune > 3600:
            self._last_prune = now
            await self.prune(utcnow() - self.retention)
        return False

    async def run_once(self, consumer: Consumer) -> int:
        """One batch for ``consumer``: how many events it applied (0: none, or busy)."""
        async with self.db.write() as conn:
            cursor = await lock_cursor(conn, consumer.name)
            if cursor is None:
                return 0
            batch = await read_after(conn, *cursor, self.batch)
            if not batch:
                return 0
            await consumer.apply(conn, batch)
            await move_cursor(conn, consumer.name, batch[-1].tx, batch[-1].id, len(batch))
        return len(batch)

    async def catch_up(self, *, wait: float = 5.0) -> int:
        """Apply everything committed before the call, for every consumer; returns how
        many. On PostgreSQL an event committed just now may still be behind the horizon
        of an older transaction elsewhere on the server: up to ``wait`` seconds are given
        for it to come into view.

        The background loop passes 0 and stops at the first batch that is not full:
        under steady traffic there is always a new event, and chasing each one at once
        would apply them a few at a time (a batch costs the same whatever its size: on
        PostgreSQL that was a quarter of the server's CPU). What comes meanwhile waits
        for the next pass, a ``gather`` later."""
        total = 0
        loop = asyncio.get_running_loop()
        newest = None
        if wait > 0:
            async with self.db.read() as conn:
                newest = await conn.scalar(select(func.max(EventRecord.id)))
        deadline = loop.time() + wait
        async with self._lock:
            for consumer in self.consumers:
                if wait <= 0:
                    every = float(getattr(consumer, "every", 0.0))
                    started = loop.time()
                    if started - self._last_pass.get(consumer.name, -every) < every:
                        continue  # its turn comes a poll or a wake-up later
                    self._last_pass[consumer.name] = started
                while True:
                    done = await self.run_once(consumer)
                    total += done
                    if done >= self.batch:
                        continue  # a full batch: there is more
                    if wait <= 0 or newest is None or await self._reached(consumer, newest):
                        break
                    if loop.time() > deadline:
                        break
                    await asyncio.sleep(0.05)
        return total

    async def _reached(self, consumer: Consumer, newest: int) -> bool:
        """Has the consumer applied (or been paused past) every event up to ``newest``?"""
        async with self.db.read() as conn:
            row = (
                await conn.execute(
                    select(EventCursor.tx, EventCursor.last_id, EventCursor.paused_at).where(
                        EventCursor.consumer == consumer.name
                    )
                )
            ).first()
            if row is None or row[2] is not None:
                return True  # paused by a rebuild: it will have them
            pending = await conn.scalar(
                select(func.count())
                .select_from(EventRecord)
                .where(after(conn.dialect.name, int(row[0]), int(row[1])), EventRecord.id <= newest)
            )
        return not pending

    async def prune(self, before: datetime) -> int:
        """Delete raw events older than ``before`` that every consumer has passed; the
        rollups made from them stay."""
        names = [c.name for c in self.consumers]
        async with self.db.session() as session:
            cursors = (
                await session.execute(
                    select(EventCursor.tx, EventCursor.last_id)
                    .where(EventCursor.consumer.in_(names))
                    .order_by(EventCursor.tx, EventCursor.last_id)
                )
            ).all()
        if not names or len(cursors) < len(names):
            return 0  # a consumer has not started yet: it still needs everything
        tx, last_id = int(cursors[0][0]), int(cursors[0][1])
        removed = 0
        while True:
            async with self.db.write() as conn:
                ids = (
                    (
                        await conn.execute(
                            select(EventRecord.id)
                            .where(
                                EventRecord.occurred_at < before,
                                ~after(conn.dialect.name, tx, last_id),
                                EventRecord.type != ev.LOG_STARTED,
                            )
                            .limit(5000)
                        )
                    )
                    .scalars()
                    .all()
                )
                if not ids:
                    break
                await conn.execute(delete(EventRecord).where(EventRecord.id.in_(ids)))
            removed += len(ids)
        if removed:
            log.info("pruned %d events older than %s", removed, before.date())
        return removed
