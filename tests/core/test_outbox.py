"""The persisted outbox: retries with backoff and hints, order, permanent failures, leases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from abonent import clock
from abonent.channels.base import Channel, OutgoingMessage, SendError, SendResult, send_parts
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.inbox import start_webchat
from abonent.core.outbox import OutboxSender
from abonent.core.pipeline import Pipeline, Turn, TurnOutcome
from abonent.core.types import Reply
from abonent.db.models import Message, OutboxItem
from abonent.db.session import Database
from conftest import require_postgres


class Scripted(Channel):
    """A channel whose sends fail as scripted, recording what it was asked to send."""

    def __init__(self, failures: list[SendError | None]) -> None:
        super().__init__("webchat")
        self.failures = failures
        self.sent: list[str] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise failure
        self.sent.append(message.text)
        return SendResult(external_id=f"p{message.message_id}")


class Silent:
    async def handle(self, turn: Turn) -> TurnOutcome:
        return TurnOutcome()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def _setup(db: Database, channel: Channel) -> tuple[Pipeline, OutboxSender, list[Event], int]:
    bus = LocalBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    pipeline = Pipeline(db, bus, Silent())
    sender = OutboxSender(db, bus, {"webchat": channel})
    conv_id, _, _ = await start_webchat(db, "webchat")
    return pipeline, sender, seen, conv_id


async def _items(db: Database) -> list[OutboxItem]:
    async with db.session() as session:
        return list(await session.scalars(select(OutboxItem).order_by(OutboxItem.id)))


async def test_a_failed_send_is_retried_after_the_platforms_hint(db: Database) -> None:
    now = Clock()
    clock.set_clock(now)
    channel = Scripted([SendError("429 Too Many Requests", retry_after=7)])
    pipeline, sender, seen, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("Первое"), Reply("Второе")])

    assert await sender.run_once()
    items = await _items(db)
    assert [i.status for i in items] == ["pending", "pending"]
    assert items[0].last_error == "429 Too Many Requests"
    assert items[0].next_attempt_at == now.now + timedelta(seconds=7)
    assert channel.sent == []

    # a later message of the same conversation waits for the earlier ones
    await pipeline.post(conv_id, [Reply("Третье")])
    now.now += timedelta(seconds=6)
    assert not await sender.run_once()  # nothing due yet
    now.now += timedelta(seconds=60)
    assert await sender.run_once()
    assert channel.sent == ["Первое", "Второе", "Третье"]  # order kept
    items = await _items(db)
    assert [i.status for i in items] == ["sent", "sent", "sent"]
    assert [i.attempts for i in items] == [2, 1, 1]
    async with db.session() as session:
        messages = list(await session.scalars(select(Message).order_by(Message.id)))
    assert [m.delivery for m in messages] == ["sent", "sent", "sent"]
    assert messages[0].meta == {"platform_id": f"p{messages[0].id}"}
    assert [e.type for e in seen].count("message.delivered") == 3


async def test_network_errors_back_off_exponentially_then_give_up(db: Database) -> None:
    now = Clock()
    clock.set_clock(now)
    channel = Scripted([SendError("connection refused")] * 50)
    pipeline, sender, seen, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("Текст")])
    delays = []
    for _ in range(12):
        before = now.now
        assert await sender.run_once()
        item = (await _items(db))[0]
        if item.status == "failed":
            break
        delays.append((item.next_attempt_at - before).total_seconds())
        now.now = item.next_attempt_at
    assert delays[:5] == [1, 2, 4, 8, 16]
    item = (await _items(db))[0]
    assert item.status == "failed" and item.attempts == 12
    async with db.session() as session:
        message = await session.scalar(select(Message))
    assert message is not None and message.delivery == "failed"
    assert message.delivery_error == "connection refused"
    assert "message.failed" in [e.type for e in seen]


async def test_a_permanent_error_is_recorded_and_not_retried(db: Database) -> None:
    channel = Scripted([SendError("bot was blocked by the user", permanent=True)])
    pipeline, sender, _, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("Текст")])
    assert await sender.run_once()
    assert not await sender.run_once()
    item = (await _items(db))[0]
    assert item.status == "failed" and item.attempts == 1
    async with db.session() as session:
        message = await session.scalar(select(Message))
    assert message is not None and message.delivery_error == "bot was blocked by the user"


async def test_a_send_left_half_done_by_a_crash_is_taken_over(db: Database) -> None:
    now = Clock()
    clock.set_clock(now)
    channel = Scripted([])
    pipeline, sender, _, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("Текст")])
    async with db.transaction() as session:  # as a process that died mid-send leaves it
        await session.execute(
            update(OutboxItem).values(status="sending", locked_until=now.now + timedelta(minutes=2))
        )
    assert not await sender.run_once()
    now.now += timedelta(minutes=3)
    assert await sender.run_once()
    assert channel.sent == ["Текст"]


@pytest.mark.services
async def test_a_reply_waits_while_another_process_claims_the_one_before_it(
    db: Database,
) -> None:
    """Another process is claiming the conversation's first reply (its row is locked and
    still pending): this process must not send the second one meanwhile, or the
    platform could show them the wrong way round."""
    require_postgres()
    channel = Scripted([])
    pipeline, sender, _, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("Первый")])
    await pipeline.post(conv_id, [Reply("Второй")])
    first = (await _items(db))[0].id
    other = Database(db.url)  # the other process's connection
    try:
        async with other.engine.connect() as conn:
            tx = await conn.begin()
            await conn.execute(
                text("SELECT id FROM outbox WHERE id = :id FOR UPDATE"), {"id": first}
            )
            await sender.run_once()
            assert channel.sent == []  # the second waits for the first
            await tx.rollback()  # the other process gave up its claim
        assert await sender.run_once()
        assert channel.sent == ["Первый", "Второй"]
    finally:
        await other.dispose()


async def test_the_outbox_survives_a_restart(db: Database) -> None:
    """Rows written before a crash are sent by the next process."""
    pipeline, _, _, conv_id = await _setup(db, Scripted([]))
    await pipeline.post(conv_id, [Reply("Не потеряется")])
    channel = Scripted([])
    fresh = OutboxSender(db, LocalBus(), {"webchat": channel})
    assert await fresh.run_once()
    assert channel.sent == ["Не потеряется"]


class InParts(Channel):
    """A platform that takes a text in three parts and refuses the second one once."""

    def __init__(self) -> None:
        super().__init__("webchat")
        self.delivered: list[str] = []
        self.refused = False

    async def send(self, message: OutgoingMessage) -> SendResult:
        parts = message.text.split("|")

        async def one(index: int) -> str:
            if index == 1 and not self.refused:
                self.refused = True
                raise SendError("429 Too Many Requests", retry_after=3)
            self.delivered.append(parts[index])
            return f"m{index}"

        return SendResult(external_id=await send_parts(len(parts), message.skip_parts, one))


async def test_a_split_text_retried_after_a_failure_does_not_repeat_delivered_parts(
    db: Database,
) -> None:
    now = Clock()
    clock.set_clock(now)
    channel = InParts()
    pipeline, sender, _, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("начало|середина|конец")])

    assert await sender.run_once()
    [item] = await _items(db)
    assert item.status == "pending" and item.parts_sent == 1
    assert channel.delivered == ["начало"]

    now.now += timedelta(seconds=3)
    assert await sender.run_once()
    [item] = await _items(db)
    assert item.status == "sent"
    # the customer got each part exactly once
    assert channel.delivered == ["начало", "середина", "конец"]
