"""The pipeline: dedupe, one answer per message, recovery after a crash, a failing bot."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from abonent import clock
from abonent.core.bus import LocalBus
from abonent.core.contacts import ContactDirectory
from abonent.core.events import Event
from abonent.core.inbox import start_webchat
from abonent.core.pipeline import Pipeline, StrandedSweeper, Turn, TurnOutcome
from abonent.core.types import InboundMessage, Reply
from abonent.db.models import (
    Appeal,
    Contact,
    ContactAccount,
    Conversation,
    EventRecord,
    Message,
    OutboxItem,
)
from abonent.db.session import Database
from conftest import require_postgres
from support import Clock


class Echo:
    def __init__(self) -> None:
        self.turns: list[Turn] = []

    async def handle(self, turn: Turn) -> TurnOutcome:
        self.turns.append(turn)
        count = int(turn.state.get("count", 0)) + 1
        reply = Reply(f"эхо {count}: {turn.text}")
        return TurnOutcome(replies=[reply], state={"count": count})


class Broken:
    async def handle(self, turn: Turn) -> TurnOutcome:
        raise RuntimeError("a bug in a dialog")


def _msg(text: str, external_id: str | None = None, user: str = "u1") -> InboundMessage:
    return InboundMessage(
        channel_id="tg", external_user_id=user, text=text, external_id=external_id
    )


async def _rows(db: Database, model: type) -> list:  # type: ignore[type-arg]
    async with db.session() as session:
        return list(await session.scalars(select(model).order_by(model.id)))


async def test_messages_are_answered_in_order_with_state_kept(db: Database) -> None:
    bus = LocalBus()
    seen: list[Event] = []
    bus.subscribe(seen.append)
    pipeline = Pipeline(db, bus, Echo())
    for i in range(5):
        await pipeline.accept(_msg(f"m{i}", f"ext{i}"))
    await pipeline.drain_all()
    messages = await _rows(db, Message)
    bot = [m.text for m in messages if m.author == "bot"]
    assert bot == [f"эхо {i + 1}: m{i}" for i in range(5)]
    assert all(m.handled for m in messages)
    assert len(await _rows(db, OutboxItem)) == 5
    assert len(await _rows(db, Contact)) == 1 and len(await _rows(db, Conversation)) == 1
    types = [e.type for e in seen]
    assert types.count("message.received") == 5 and types.count("message.sent") == 5
    assert "outbox.enqueued" in types
    # The same facts are in the durable log, written with the messages themselves.
    logged = [(e.type, e.data.get("message_id")) for e in await _rows(db, EventRecord)]
    received = [m.id for m in messages if m.author == "customer"]
    replies = [m.id for m in messages if m.author == "bot"]
    assert [t for t, _ in logged if t.startswith("conversation.")] == ["conversation.started"]
    assert [i for t, i in logged if t == "message.received"] == received
    assert [i for t, i in logged if t == "message.sent"] == replies


async def test_a_redelivered_webhook_creates_nothing_and_gets_no_second_answer(
    db: Database,
) -> None:
    bot = Echo()
    pipeline = Pipeline(db, LocalBus(), bot)
    first, again, third = await asyncio.gather(
        pipeline.accept(_msg("привет", "update-1")),
        pipeline.accept(_msg("привет", "update-1")),
        pipeline.accept(_msg("привет", "update-1")),
    )
    await pipeline.drain_all()
    assert first.message_id == again.message_id == third.message_id
    assert sorted([first.duplicate, again.duplicate, third.duplicate]).count(True) == 2
    assert len(bot.turns) == 1
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Message)) == 2


async def test_unhandled_messages_are_finished_after_a_restart(db: Database) -> None:
    class Crashing(Pipeline):
        def _enqueue(self, conversation_id: int, item: int) -> None:  # the process dies here
            return None

    await Crashing(db, LocalBus(), Echo()).accept(_msg("до сбоя", "e1"))
    assert [m.author for m in await _rows(db, Message)] == ["customer"]

    restarted = Pipeline(db, LocalBus(), Echo())
    assert await restarted.recover() == 1
    await restarted.drain_all()
    assert [m.text for m in await _rows(db, Message)] == ["до сбоя", "эхо 1: до сбоя"]


async def test_a_failing_bot_apologises_and_hands_over(db: Database) -> None:
    pipeline = Pipeline(db, LocalBus(), Broken())
    await pipeline.accept(_msg("что-то", "e1"))
    await pipeline.drain_all()
    messages = await _rows(db, Message)
    assert "техническая ошибка" in messages[-1].text
    assert all(m.handled for m in messages)
    conv = (await _rows(db, Conversation))[0]
    assert conv.status == "queued" and conv.waiting_since is not None


async def test_the_webchat_start_is_greeted(db: Database) -> None:
    bot = Echo()
    pipeline = Pipeline(db, LocalBus(), bot)
    conv_id, token = await pipeline.open_webchat("webchat", "Анна")
    await pipeline.drain_all()
    assert bot.turns[0].is_start and bot.turns[0].conversation_id == conv_id
    assert len(token) > 30
    contact = (await _rows(db, Contact))[0]
    assert contact.name == "Анна"


async def test_a_closed_conversation_is_followed_by_a_new_one(db: Database) -> None:
    pipeline = Pipeline(db, LocalBus(), Echo())
    conv_id, _, _ = await start_webchat(db, "webchat")
    async with db.session() as session:
        identity_id = (await session.get(Conversation, conv_id)).identity_id  # type: ignore[union-attr]
    first = await pipeline.accept(
        InboundMessage(channel_id="webchat", external_user_id="", identity_id=identity_id, text="a")
    )
    assert first.conversation_id == conv_id
    async with db.transaction() as session:
        conv = await session.get(Conversation, conv_id)
        assert conv is not None
        conv.status = "closed"
    second = await pipeline.accept(
        InboundMessage(channel_id="webchat", external_user_id="", identity_id=identity_id, text="b")
    )
    await pipeline.drain_all()
    assert second.conversation_id != conv_id
    convs = await _rows(db, Conversation)
    assert [c.status for c in convs] == ["closed", "bot"]
    assert convs[1].identity_id == identity_id and convs[1].contact_id == convs[0].contact_id


class SlowEcho(Echo):
    """A turn that takes long enough for another process's turn to overlap it."""

    async def handle(self, turn: Turn) -> TurnOutcome:
        await asyncio.sleep(0.3)
        return await super().handle(turn)


async def test_two_processes_answer_one_chat_in_order_from_the_latest_state(
    db: Database,
) -> None:
    """A load balancer gives a chat's first message to one process and its second to
    another while the first is still being answered: the second process answers the
    first message's successor only after it, from the state the first turn left (two
    pipelines on one database are two processes: their queues are their own)."""
    one, two = Pipeline(db, LocalBus(), SlowEcho()), Pipeline(db, LocalBus(), SlowEcho())
    await one.accept(_msg("первое", "u-1"))
    await asyncio.sleep(0.05)  # the first turn is under way in process one
    await two.accept(_msg("второе", "u-2"))
    await asyncio.gather(one.drain_all(), two.drain_all())
    messages = await _rows(db, Message)
    bot = [m.text for m in messages if m.author == "bot"]
    assert bot == ["эхо 1: первое", "эхо 2: второе"]
    async with db.session() as session:
        conv = await session.scalar(select(Conversation))
    assert conv is not None and conv.bot_state == {"count": 2}


class Registrar(Echo):
    """A dialog with side effects, as the appeal and account flows have: an appeal row
    and the account on the contact's list, written through the product's own
    services while the turn runs; ``fail`` makes the turn fail after writing them."""

    def __init__(self, db: Database, *, fail: bool = False, pause: asyncio.Event | None = None):
        super().__init__()
        self.db = db
        self.fail = fail
        self.pause = pause
        self.seen_accounts: list[list[str]] = []

    async def handle(self, turn: Turn) -> TurnOutcome:
        contacts = ContactDirectory(self.db)
        await contacts.link_account(turn.contact_id, "1234567890")
        async with self.db.transaction() as session:
            session.add(Appeal(name="Анна", contact="a@example.ru", text=turn.text))
        # The turn reads what it has just written (the flows rely on it).
        self.seen_accounts.append(await contacts.known_accounts(turn.contact_id))
        if self.pause is not None:
            await self.pause.wait()  # the process dies here, or works slowly
        if self.fail:
            raise RuntimeError("a bug after the side effects")
        return await super().handle(turn)


async def test_a_failed_turn_leaves_none_of_its_side_effects(db: Database) -> None:
    bot = Registrar(db, fail=True)
    pipeline = Pipeline(db, LocalBus(), bot)
    await pipeline.accept(_msg("прошу перезвонить", "e1"))
    await pipeline.drain_all()
    assert bot.seen_accounts == [["1234567890"]]
    assert await _rows(db, Appeal) == []
    assert await _rows(db, ContactAccount) == []
    messages = await _rows(db, Message)
    assert "техническая ошибка" in messages[-1].text and all(m.handled for m in messages)


async def test_a_turn_cut_off_midway_is_redone_once_after_a_restart(db: Database) -> None:
    """The process dies after the dialog wrote its appeal but before the answer was
    committed: nothing of the turn remains, and the recovered turn writes it once."""
    stuck = asyncio.Event()
    dying = Pipeline(db, LocalBus(), Registrar(db, pause=stuck))
    await dying.accept(_msg("прошу перезвонить", "e1"))
    for _ in range(100):
        if dying._tasks:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)  # the turn is waiting after its side effects
    for task in list(dying._tasks):
        task.cancel()
    await asyncio.gather(*dying._tasks, return_exceptions=True)
    assert await _rows(db, Appeal) == []
    assert [m.handled for m in await _rows(db, Message)] == [False]

    restarted = Pipeline(db, LocalBus(), Registrar(db))
    assert await restarted.recover() == 1
    await restarted.drain_all()
    assert len(await _rows(db, Appeal)) == 1
    assert [a.account_number for a in await _rows(db, ContactAccount)] == ["1234567890"]
    assert [m.text for m in await _rows(db, Message)] == [
        "прошу перезвонить",
        "эхо 1: прошу перезвонить",
    ]


@pytest.mark.services
async def test_two_processes_never_run_the_dialog_twice_for_one_message(db: Database) -> None:
    """Two processes woken for one chat at once (a load balancer): the second waits for
    the first's turn instead of answering the same message from the same state, so the
    dialog runs once per message and its side effects happen once."""
    require_postgres()
    gate = asyncio.Event()
    first_bot, second_bot = Registrar(db, pause=gate), Registrar(db)
    one, two = Pipeline(db, LocalBus(), first_bot), Pipeline(db, LocalBus(), second_bot)
    await one.accept(_msg("первое", "u-1"))
    await asyncio.sleep(0.2)  # process one is inside the first turn, holding it
    await two.accept(_msg("второе", "u-2"))
    await asyncio.sleep(0.3)
    assert second_bot.turns == []  # waiting for the first turn, not answering «первое»
    gate.set()
    await asyncio.gather(one.drain_all(), two.drain_all())
    answered = [t.text for t in first_bot.turns + second_bot.turns]
    assert sorted(answered) == ["второе", "первое"]
    assert len(await _rows(db, Appeal)) == 2
    bot = [m.text for m in await _rows(db, Message) if m.author == "bot"]
    assert bot == ["эхо 1: первое", "эхо 2: второе"]


async def test_a_message_a_dead_process_left_is_answered_by_another_within_seconds(
    db: Database,
) -> None:
    class Dead(Pipeline):
        def _enqueue(self, conversation_id: int, item: int) -> None:  # died after the ack
            return None

    now = Clock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    clock.set_clock(now)
    await Dead(db, LocalBus(), Echo()).accept(_msg("ответьте", "e1"))
    other = Pipeline(db, LocalBus(), Echo())
    sweeper = StrandedSweeper(other, grace=5)
    now.advance(seconds=2)
    assert await sweeper.sweep() == 0  # it may still be on its way in the live process
    now.advance(seconds=4)
    assert await sweeper.sweep() == 1
    await other.drain_all()
    assert [m.text for m in await _rows(db, Message)] == ["ответьте", "эхо 1: ответьте"]
    assert await sweeper.sweep() == 0
