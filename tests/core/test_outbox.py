"""The persisted outbox: retries with backoff and hints, order, permanent failures, leases."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update

from abonent import clock
from abonent.channels.base import Channel, OutgoingMessage, SendError, SendResult, send_parts
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.inbox import start_webchat
from abonent.core.outbox import IN_FLIGHT, LEASE, OutboxSender
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


class Gated(Channel):
    """A channel whose sends to the ``slow`` conversations (all, when None) wait until the
    test opens the gate: a big upload, or a send a killed process never finished."""

    def __init__(self, slow: set[int] | None = None) -> None:
        super().__init__("webchat")
        self.slow = slow
        self.gate = asyncio.Event()
        self.entered = asyncio.Event()
        self.sent: list[str] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        if self.slow is None or message.conversation_id in self.slow:
            self.entered.set()
            await self.gate.wait()
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


async def _leased_until(db: Database, until: datetime) -> OutboxItem:
    """The row once its lease reads ``until`` (the sender's heartbeat wrote it); fails if
    that never happens."""
    for _ in range(1000):
        [item] = await _items(db)
        if item.locked_until == until:
            return item
        await asyncio.sleep(0.01)
    raise AssertionError(f"the lease was not renewed to {until}: {item.locked_until}")


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


async def test_a_killed_processs_row_is_taken_over_once_its_short_lease_runs_out(
    db: Database,
) -> None:
    now = Clock()
    clock.set_clock(now)
    pipeline, _, _, conv_id = await _setup(db, Scripted([]))
    await pipeline.post(conv_id, [Reply("Текст")])
    stuck = Gated()
    dead = OutboxSender(db, LocalBus(), {"webchat": stuck})
    killed = asyncio.create_task(dead.run_once())
    await asyncio.wait_for(stuck.entered.wait(), 10)
    killed.cancel()  # killed mid-send: it neither renews its lease nor records anything
    with contextlib.suppress(asyncio.CancelledError):
        await killed
    [item] = await _items(db)
    assert item.status == "sending" and item.locked_until == now.now + LEASE

    channel = Scripted([])
    survivor = OutboxSender(db, LocalBus(), {"webchat": channel})
    killed_at = now.now
    now.now = killed_at + LEASE - timedelta(seconds=1)
    assert not await survivor.run_once()  # the lease still holds
    assert channel.sent == []
    now.now = killed_at + timedelta(seconds=15)  # the customer waits seconds, not minutes
    assert await survivor.run_once()
    assert not await survivor.run_once()
    assert channel.sent == ["Текст"]  # once
    assert stuck.sent == []
    [item] = await _items(db)
    assert item.status == "sent" and item.attempts == 2 and item.locked_until is None


async def test_a_slow_send_keeps_its_lease_while_its_process_lives(db: Database) -> None:
    now = Clock()
    clock.set_clock(now)
    pipeline, _, _, conv_id = await _setup(db, Scripted([]))
    await pipeline.post(conv_id, [Reply("Большой файл")])
    slow = Gated()
    sender = OutboxSender(db, LocalBus(), {"webchat": slow}, renew_every=0.01)
    sending = asyncio.create_task(sender.run_once())
    await asyncio.wait_for(slow.entered.wait(), 10)
    [item] = await _items(db)
    assert item.status == "sending" and item.locked_until == now.now + LEASE

    other_channel = Scripted([])
    other = OutboxSender(db, LocalBus(), {"webchat": other_channel})  # another process
    for _ in range(3):  # well past the first lease, each step inside the renewed one
        now.now += LEASE - timedelta(seconds=2)
        item = await _leased_until(db, now.now + LEASE)
        assert item.status == "sending"
        assert not await other.run_once()
    assert other_channel.sent == []

    slow.gate.set()
    assert await sending
    assert slow.sent == ["Большой файл"]
    [item] = await _items(db)
    assert item.status == "sent" and item.attempts == 1 and item.locked_until is None
    assert not await other.run_once()
    assert other_channel.sent == []


async def test_each_send_is_recorded_when_it_returns_not_at_the_end_of_the_pass(
    db: Database,
) -> None:
    """A kill while one conversation's send hangs must not repeat what other
    conversations already got: their outcomes are committed as they return."""
    slow: set[int] = set()
    channel = Gated(slow)
    pipeline, sender, seen, quick = await _setup(db, channel)
    hanging, _, _ = await start_webchat(db, "webchat")
    slow.add(hanging)
    await pipeline.post(quick, [Reply("Быстро"), Reply("Следом")])
    await pipeline.post(hanging, [Reply("Медленно")])
    quick_delivered: list[Event] = []
    both = asyncio.Event()

    def note(event: Event) -> None:
        if event.data["conversation_id"] == quick:
            quick_delivered.append(event)
            if len(quick_delivered) == 2:
                both.set()

    sender.bus.subscribe(note, {"message.delivered"})

    sending = asyncio.create_task(sender.run_once())
    await asyncio.wait_for(channel.entered.wait(), 10)
    # Published after each commit; at the end of the pass instead, this never comes.
    await asyncio.wait_for(both.wait(), 10)
    items = await _items(db)
    by_text: dict[str, Message] = {}
    async with db.session() as session:
        for m in await session.scalars(select(Message).order_by(Message.id)):
            by_text[m.text] = m
    status = {i.message_id: (i.status, i.locked_until is None) for i in items}
    assert status[by_text["Быстро"].id] == ("sent", True)
    assert status[by_text["Следом"].id] == ("sent", True)
    assert status[by_text["Медленно"].id] == ("sending", False)
    assert [by_text[t].delivery for t in ("Быстро", "Следом")] == ["sent", "sent"]
    assert by_text["Быстро"].meta == {"platform_id": f"p{by_text['Быстро'].id}"}
    assert channel.sent == ["Быстро", "Следом"]

    channel.gate.set()
    assert await sending
    assert [i.status for i in await _items(db)] == ["sent", "sent", "sent"]
    assert channel.sent == ["Быстро", "Следом", "Медленно"]
    assert [e.type for e in seen].count("message.delivered") == 3


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


async def test_a_failure_mid_conversation_holds_the_rest_after_the_sent_ones_are_recorded(
    db: Database,
) -> None:
    now = Clock()
    clock.set_clock(now)
    channel = Scripted([None, SendError("429 Too Many Requests", retry_after=5)])
    pipeline, sender, seen, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("Первое"), Reply("Второе"), Reply("Третье")])

    assert await sender.run_once()
    items = await _items(db)
    assert [i.status for i in items] == ["sent", "pending", "pending"]
    assert [i.attempts for i in items] == [1, 1, 0]  # the third was not tried
    retry_at = now.now + timedelta(seconds=5)
    assert [i.next_attempt_at for i in items[1:]] == [retry_at, retry_at]
    assert [i.locked_until for i in items] == [None, None, None]
    assert channel.sent == ["Первое"]
    assert [e.type for e in seen].count("message.delivered") == 1

    now.now = retry_at
    assert await sender.run_once()
    assert channel.sent == ["Первое", "Второе", "Третье"]
    assert [i.status for i in await _items(db)] == ["sent", "sent", "sent"]


async def test_a_graceful_stop_finishes_the_send_under_way_and_starts_no_other(
    db: Database,
) -> None:
    """A rolling restart: the reply on the wire is recorded as sent before the process
    goes, rather than left leased for the next process to wait out and send again."""
    channel = Gated()
    pipeline, sender, _, conv_id = await _setup(db, channel)
    await pipeline.post(conv_id, [Reply("На проводе")])
    await sender.start()
    await asyncio.wait_for(channel.entered.wait(), 5)
    stopping = asyncio.create_task(sender.stop())
    await asyncio.sleep(0.1)
    await pipeline.post(conv_id, [Reply("После остановки")])
    sender.wake()
    channel.gate.set()
    await stopping
    items = await _items(db)
    assert [(i.status, i.locked_until) for i in items] == [("sent", None), ("pending", None)]
    assert channel.sent == ["На проводе"]


class Counting(Channel):
    """Records how many sends are on the wire at once."""

    def __init__(self) -> None:
        super().__init__("webchat")
        self.now = 0
        self.most = 0
        self.sent: list[str] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.now += 1
        self.most = max(self.most, self.now)
        await asyncio.sleep(0.02)
        self.now -= 1
        self.sent.append(message.text)
        return SendResult(external_id=f"p{message.message_id}")


async def test_at_most_a_handful_of_sends_are_on_the_wire_at_once(db: Database) -> None:
    """What a SIGKILL can make the platform receive twice is what was on the wire: the
    sender keeps that to ``IN_FLIGHT`` per channel, however many chats are due."""
    channel = Counting()
    pipeline, sender, _, first = await _setup(db, channel)
    conversations = [first] + [(await start_webchat(db, "webchat"))[0] for _ in range(11)]
    for i, conv_id in enumerate(conversations):
        await pipeline.post(conv_id, [Reply(f"Ответ {i}")])
    assert await sender.run_once()
    assert sorted(channel.sent) == sorted(f"Ответ {i}" for i in range(12))
    assert channel.most == IN_FLIGHT
    assert [i.status for i in await _items(db)] == ["sent"] * 12
