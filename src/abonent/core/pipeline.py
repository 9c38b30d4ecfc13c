"""The message pipeline of DESIGN.md, in one place.

inbound → dedupe → store (one transaction) → bot or operator queue → persisted outbox
→ channel send. Each step publishes its event on the bus. The bot is plugged in as a
``ConversationHandler`` so that this module knows no dialog and no platform.

A customer message is stored with ``handled = false`` first and acknowledged; the
bot's turn runs next, serialised per conversation, and its replies, the new dialog
state and ``handled = true`` are written together. A crash in between leaves the
message unhandled and ``recover()`` finishes it at the next start; the conditional
``handled`` update makes sure only one worker ever answers a message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from weakref import WeakValueDictionary

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.clock import utcnow
from abonent.core import events, inbox, outbox
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.serialize import message_event_data
from abonent.core.types import InboundMessage, Reply
from abonent.db.models import Conversation, Message
from abonent.db.session import Database

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Turn:
    """What the bot is asked to handle: one customer message, or the start of a chat."""

    conversation_id: int
    contact_id: int
    channel_id: str
    state: dict[str, Any]
    text: str = ""
    payload: str | None = None
    message_id: int | None = None
    is_start: bool = False
    # bot | queued: a queued customer may still leave the queue («отмена», «меню»).
    status: str = "bot"


@dataclass
class TurnOutcome:
    replies: list[Reply] = field(default_factory=list)
    state: dict[str, Any] = field(default_factory=dict)
    # Hand the conversation to the operators' queue after these replies.
    handoff: bool = False
    # Take a queued conversation back from the operators' queue.
    leave_queue: bool = False
    # What the bot made of the message (intent, confidence, step), kept on the message.
    meta: dict[str, Any] | None = None
    events: list[Event] = field(default_factory=list)


class ConversationHandler(Protocol):
    async def handle(self, turn: Turn) -> TurnOutcome: ...


class Pipeline:
    def __init__(self, db: Database, bus: LocalBus, handler: ConversationHandler) -> None:
        self.db = db
        self.bus = bus
        self.handler = handler
        self._locks: WeakValueDictionary[int, asyncio.Lock] = WeakValueDictionary()
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ inbound
    async def accept(self, msg: InboundMessage) -> inbox.Received:
        """Store a customer message and schedule its handling; a redelivery does nothing."""
        received = await inbox.receive(self.db, msg)
        if received.duplicate:
            log.info("duplicate delivery %s on %s ignored", msg.external_id, msg.channel_id)
            await self.bus.publish(
                Event(
                    events.MESSAGE_DUPLICATE,
                    {"id": received.message.id, "channel_id": msg.channel_id},
                )
            )
            return received
        await self.bus.publish(Event(events.MESSAGE_CREATED, message_event_data(received.message)))
        self.schedule(received.conversation.id)
        return received

    async def start(self, conversation_id: int) -> None:
        """A conversation opened by the customer (the widget): the bot greets first."""
        await self.bus.publish(
            Event(events.CONVERSATION_STARTED, {"conversation_id": conversation_id})
        )
        self._spawn(self._run_start(conversation_id))

    def schedule(self, conversation_id: int) -> None:
        self._spawn(self._drain(conversation_id))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain_all(self) -> None:
        """Wait for scheduled turns (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def recover(self) -> int:
        """Finish customer messages a crash left unhandled; returns how many conversations."""
        async with self.db.session() as session:
            ids = list(
                await session.scalars(
                    select(Message.conversation_id)
                    .where(Message.author == "customer", Message.handled.is_(False))
                    .distinct()
                )
            )
        for conv_id in ids:
            self.schedule(conv_id)
        return len(ids)

    def _lock(self, conversation_id: int) -> asyncio.Lock:
        lock = self._locks.get(conversation_id)
        if lock is None:
            lock = asyncio.Lock()
            self._locks[conversation_id] = lock
        return lock

    async def _run_start(self, conversation_id: int) -> None:
        async with self._lock(conversation_id):
            try:
                conv = await self._load(conversation_id)
                if conv is None or conv.status != "bot":
                    return
                outcome = await self.handler.handle(
                    Turn(
                        conv.id,
                        conv.contact_id,
                        conv.channel_id,
                        dict(conv.bot_state),
                        is_start=True,
                    )
                )
                await self._commit_turn(conv, None, outcome)
            except Exception:
                log.exception("greeting failed in conversation %s", conversation_id)

    async def _drain(self, conversation_id: int) -> None:
        async with self._lock(conversation_id):
            while True:
                try:
                    if not await self._handle_next(conversation_id):
                        return
                except Exception:
                    log.exception("turn failed in conversation %s", conversation_id)
                    await self._fail_safe(conversation_id)

    async def _load(self, conversation_id: int) -> Conversation | None:
        async with self.db.session() as session:
            return await session.get(Conversation, conversation_id)

    async def _handle_next(self, conversation_id: int) -> bool:
        async with self.db.session() as session:
            conv = await session.get(Conversation, conversation_id)
            message = await session.scalar(
                select(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.author == "customer",
                    Message.handled.is_(False),
                )
                .order_by(Message.id)
                .limit(1)
            )
        if conv is None or message is None:
            return False
        if conv.status not in ("bot", "queued"):
            # An operator has it: the message waits for them; nothing to answer.
            await self._commit_turn(conv, message, TurnOutcome(state=dict(conv.bot_state)))
            return True
        outcome = await self.handler.handle(
            Turn(
                conversation_id=conv.id,
                contact_id=conv.contact_id,
                channel_id=conv.channel_id,
                state=dict(conv.bot_state),
                text=message.text,
                payload=message.payload,
                message_id=message.id,
                status=conv.status,
            )
        )
        await self._commit_turn(conv, message, outcome)
        return True

    async def _fail_safe(self, conversation_id: int) -> None:
        """A bug in a dialog must not leave the customer unanswered nor loop forever."""
        async with self.db.session() as session:
            conv = await session.get(Conversation, conversation_id)
            message = await session.scalar(
                select(Message)
                .where(
                    Message.conversation_id == conversation_id,
                    Message.author == "customer",
                    Message.handled.is_(False),
                )
                .order_by(Message.id)
                .limit(1)
            )
        if conv is None or message is None:
            return
        sorry = Reply(
            "Извините, произошла техническая ошибка. Я передаю ваш вопрос оператору.",
        )
        try:
            await self._commit_turn(
                conv,
                message,
                TurnOutcome(replies=[sorry], state={}, handoff=True, meta={"error": True}),
            )
        except Exception:
            log.exception("could not even hand conversation %s over", conversation_id)
            async with self.db.transaction() as session:
                await session.execute(
                    update(Message).where(Message.id == message.id).values(handled=True)
                )

    async def _commit_turn(
        self, conv: Conversation, message: Message | None, outcome: TurnOutcome
    ) -> None:
        now = utcnow()
        published: list[Event] = []
        async with self.db.transaction() as session:
            if message is not None:
                claim = await session.execute(
                    update(Message)
                    .where(Message.id == message.id, Message.handled.is_(False))
                    .values(handled=True, meta=_merge(message.meta, outcome.meta))
                )
                if claim.rowcount == 0:  # type: ignore[attr-defined]
                    # Another worker answered this message first; drop our replies.
                    return
            current = await session.get(Conversation, conv.id)
            if current is None:
                return
            written = await self._write_replies(session, current, outcome.replies, now)
            current.bot_state = outcome.state
            if written:
                current.last_message_at = now
            if outcome.leave_queue and current.status == "queued":
                current.status = "bot"
                current.queued_at = None
                current.waiting_since = None
                published.append(
                    Event(
                        events.CONVERSATION_RETURNED_TO_BOT,
                        {"conversation_id": current.id, "by": "customer"},
                    )
                )
            if outcome.handoff and current.status == "bot":
                current.status = "queued"
                current.queued_at = now
                current.waiting_since = now
                published.append(
                    Event(
                        events.CONVERSATION_QUEUED,
                        {"conversation_id": current.id, "channel_id": current.channel_id},
                    )
                )
        published = (
            [Event(events.MESSAGE_CREATED, message_event_data(m)) for m in written]
            + published
            + outcome.events
        )
        if written:
            published.append(Event(events.OUTBOX_ENQUEUED, {"count": len(written)}))
        await self.bus.publish_many(published)

    async def _write_replies(
        self, session: AsyncSession, conv: Conversation, replies: Iterable[Reply], now: Any
    ) -> list[Message]:
        written: list[Message] = []
        for reply in replies:
            msg = Message(
                conversation_id=conv.id,
                identity_id=conv.identity_id,
                channel_id=conv.channel_id,
                author=reply.author,
                text=reply.text,
                buttons=[b.as_dict() for b in reply.buttons] or None,
                meta=reply.meta or None,
                handled=True,
                delivery="pending",
                created_at=now,
            )
            session.add(msg)
            written.append(msg)
        if written:
            await session.flush()
            for msg in written:
                outbox.enqueue(session, msg)
        return written

    async def post(self, conversation_id: int, replies: list[Reply]) -> list[Message]:
        """Write replies outside a bot turn (operators, system notices, reminders)."""
        now = utcnow()
        async with self.db.transaction() as session:
            conv = await session.get(Conversation, conversation_id)
            if conv is None:
                raise LookupError(f"conversation {conversation_id} does not exist")
            written = await self._write_replies(session, conv, replies, now)
            conv.last_message_at = now
        await self.bus.publish_many(
            [Event(events.MESSAGE_CREATED, message_event_data(m)) for m in written]
            + [Event(events.OUTBOX_ENQUEUED, {"count": len(written)})]
        )
        return written


def _merge(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    if not new:
        return old
    return {**(old or {}), **new}
