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
import re
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, false, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.clock import utcnow
from abonent.core import attachments, eventlog, events, identity, inbox
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.serialize import row_event_data
from abonent.core.text import clean_inbound
from abonent.core.types import InboundMessage, Reply
from abonent.core.worker import Worker
from abonent.db.models import Conversation, Message, OutboxItem
from abonent.db.session import Database, HotStatement, TurnBusy
from abonent.logs import mask_pii

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
    # bot | queued: a queued customer may still leave the queue («отмена», «меню»);
    # closed: the customer answers the satisfaction question after an operator closed it.
    status: str = "bot"
    # Kinds of what came with the message (photo, voice, contact …): the bot reads
    # text only and says so; operators see the attachments themselves.
    attachments: tuple[str, ...] = ()
    # The platform vouched for the sender's own phone with this message (it is linked).
    phone_vouched: bool = False


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


class _Numbered(Protocol):
    @property
    def number(self) -> str: ...


class AccountsOfPhone(Protocol):
    """Where the accounts of a phone are found: the billing (``Billing`` is one)."""

    async def find_accounts_by_phone(self, phone: str) -> Sequence[_Numbered]: ...


# Statements of the message path, built once (see core.inbox for why).
# The conversation with the message to answer, in one round trip (the message columns
# are NULL when there is none).
_UNHANDLED = and_(
    Message.conversation_id == Conversation.id,
    Message.author == "customer",
    Message.handled == false(),  # '=' (not IS): the index can seek on it
)
_CONVERSATION_WITH = select(
    Conversation.id,
    Conversation.contact_id,
    Conversation.identity_id,
    Conversation.channel_id,
    Conversation.status,
    Conversation.bot_state,
    Message.id,
    Message.text,
    Message.payload,
    Message.meta,
).where(Conversation.id == bindparam("conv_id"))
_WITH_UNHANDLED = HotStatement(
    _CONVERSATION_WITH.outerjoin(Message, and_(_UNHANDLED, Message.id == bindparam("msg_id")))
)
_WITH_OLDEST_UNHANDLED = HotStatement(
    _CONVERSATION_WITH.outerjoin(
        Message,
        and_(
            _UNHANDLED,
            Message.id
            == select(func.min(Message.id))
            .where(
                Message.conversation_id == bindparam("conv_id"),
                Message.author == "customer",
                Message.handled == false(),  # '=' (not IS): the index can seek on it
            )
            .scalar_subquery(),
        ),
    )
)
_CLAIM = HotStatement(
    update(Message)
    .where(Message.id == bindparam("msg_id"), Message.handled.is_(False))
    .values(handled=True, meta=bindparam("meta"))
)
_SAVE_STATE = HotStatement(
    update(Conversation)
    .where(Conversation.id == bindparam("conv_id"))
    .values(
        bot_state=bindparam("state"),
        last_message_at=func.coalesce(bindparam("last"), Conversation.last_message_at),
        updated_at=bindparam("now"),
    )
)
_TOUCH = (
    update(Conversation)
    .where(Conversation.id == bindparam("conv_id"))
    .values(last_message_at=bindparam("now"), updated_at=bindparam("now"))
)
_SURVEY_ANSWERED = (
    update(Conversation).where(Conversation.id == bindparam("conv_id")).values(survey_until=None)
)
_LEAVE_QUEUE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conv_id"), Conversation.status == "queued")
    .values(status="bot", queued_at=None, waiting_since=None, updated_at=bindparam("now"))
)
_TO_QUEUE = (
    update(Conversation)
    .where(Conversation.id == bindparam("conv_id"), Conversation.status == "bot")
    .values(
        status="queued",
        queued_at=bindparam("now"),
        waiting_since=bindparam("now"),
        updated_at=bindparam("now"),
    )
)
_INSERT_MESSAGE = HotStatement(insert(Message).returning(Message.id))
_INSERT_OUTBOX = insert(OutboxItem)
# The last thing said to the customer, for reading «2» as a choice from a numbered menu.
_LAST_REPLY = (
    select(Message.buttons, Message.meta)
    .where(
        Message.conversation_id == bindparam("conv_id"),
        Message.author.in_(("bot", "operator", "system")),
    )
    .order_by(Message.id.desc())
    .limit(1)
)
_CHOICE = re.compile(r"\d{1,2}")
# Conversations with a customer message waiting since ``before`` (the partial index on
# unhandled messages holds only those being answered).
_STRANDED = (
    select(Message.conversation_id)
    .where(
        Message.handled == false(),
        Message.author == "customer",
        Message.created_at < bindparam("before"),
    )
    .distinct()
)

_START = -1  # queue marker: greet, no customer message
_LOOK_UP = 0  # queue marker: find the unhandled messages in the database


class Pipeline:
    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        handler: ConversationHandler,
        *,
        store_delivered: frozenset[str] = frozenset(),
        accounts: AccountsOfPhone | None = None,
        accounts_timeout: float = 3.0,
    ) -> None:
        self.db = db
        self.bus = bus
        self.handler = handler
        # Asked for the accounts of a phone a platform newly vouched for (None: nobody).
        self.accounts = accounts
        self.accounts_timeout = accounts_timeout
        # Channels whose clients read the store (web chat): their replies are delivered
        # the moment they are written, so they skip the outbox.
        self.store_delivered = store_delivered
        self._queues: dict[int, deque[int]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ inbound
    async def accept(self, msg: InboundMessage) -> inbox.Received:
        """Store a customer message and schedule its handling; a redelivery does nothing.

        Whatever a platform sent is made storable first (``core.text``): a webhook must
        be acknowledged, or the platform delivers the same unstorable text forever."""
        received = await inbox.receive(self.db, clean_inbound(msg))
        if received.duplicate:
            log.info("duplicate delivery on %s ignored", msg.channel_id)
            await self.bus.publish(
                Event(
                    events.MESSAGE_DUPLICATE,
                    {"id": received.message_id, "channel_id": msg.channel_id},
                )
            )
            return received
        await self.bus.publish_many(list(received.events))
        if received.phone_contact is not None and msg.phone:
            await self._link_accounts_of_phone(received.phone_contact, msg.phone)
        self._enqueue(received.conversation_id, received.message_id)
        return received

    async def _link_accounts_of_phone(self, contact_id: int, phone: str) -> None:
        """Accounts whose billing record carries the phone the platform just vouched for
        become the contact's, normally before the bot's turn, so that it can offer them.

        The billing is asked after the message is stored, not in the inbox's transaction:
        with some backends it is another system, and a slow one must neither hold the write
        transaction nor lose the message. Linking is a convenience: a billing that fails
        or takes longer than ``accounts_timeout`` leaves the contact as it was (the
        customer names the number), and nothing of it reaches the platform's webhook."""
        if self.accounts is None:
            return
        try:
            async with asyncio.timeout(self.accounts_timeout):
                found = await self.accounts.find_accounts_by_phone(phone)
            numbers = [account.number for account in found]
            if numbers:
                async with self.db.write() as conn:
                    await identity.link_accounts(conn, contact_id, numbers)
        except TimeoutError:
            log.warning("accounts of a vouched phone not linked: billing took too long")
        except Exception as exc:
            log.warning("accounts of a vouched phone not linked: %s", mask_pii(repr(exc)))

    async def open_webchat(self, channel_id: str, name: str | None = None) -> tuple[int, str]:
        """A customer opens the chat (the widget): a new conversation the bot greets first.
        Returns its id and the customer's bearer token."""
        conv_id, token, recorded = await inbox.start_webchat(self.db, channel_id, name)
        await self.bus.publish_many(recorded)
        self.start(conv_id)
        return conv_id, token

    def start(self, conversation_id: int) -> None:
        """The bot greets first in a conversation the customer has opened."""
        self._enqueue(conversation_id, _START)

    def schedule(self, conversation_id: int) -> None:
        """Handle whatever the conversation has unhandled (after a restart, say)."""
        self._enqueue(conversation_id, _LOOK_UP)

    def _enqueue(self, conversation_id: int, item: int) -> None:
        """Turns of one conversation run one after another, in arrival order, in one task."""
        queue = self._queues.get(conversation_id)
        if queue is not None:
            queue.append(item)
            return
        self._queues[conversation_id] = deque([item])
        task = asyncio.create_task(self._drain(conversation_id))
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

    async def _drain(self, conversation_id: int) -> None:
        queue = self._queues[conversation_id]
        try:
            while queue:
                item = queue.popleft()
                if item == _START:
                    try:
                        await self._greet(conversation_id)
                    except Exception:
                        log.exception("greeting failed in conversation %s", conversation_id)
                # Whatever message woke us, the oldest unhandled one goes first: another
                # process may hold the conversation's earlier message (a load balancer
                # spreads one chat's webhooks), and answering ours meanwhile would answer
                # out of order from a stale state. And whoever holds the turn answers
                # what came meanwhile: a process that found the turn taken has left its
                # message to it (``_handle``).
                while True:
                    try:
                        if not await self._handle(conversation_id, None):
                            break
                    except Exception:
                        log.exception("turn failed in conversation %s", conversation_id)
                        if not await self._fail_safe(conversation_id):
                            break
        finally:
            del self._queues[conversation_id]

    async def _load(
        self, conversation_id: int, message_id: int | None
    ) -> tuple[_Conv | None, _Msg | None]:
        """The conversation's state and the message to answer (by id, or the oldest unhandled)."""
        if message_id is None:
            query, params = _WITH_OLDEST_UNHANDLED, {"conv_id": conversation_id}
        else:
            query, params = _WITH_UNHANDLED, {"conv_id": conversation_id, "msg_id": message_id}
        async with self.db.read() as conn:
            row = (await query.run(conn, params)).first()
        if row is None:
            return None, None
        conv = _Conv(*row[:6])
        return conv, _Msg(*row[6:]) if row[6] is not None else None

    async def _greet(self, conversation_id: int) -> None:
        async with self.db.turn(conversation_id, wait=True) as scope:
            conv, _ = await self._load(conversation_id, -1)
            if conv is None or conv.status != "bot":
                return
            outcome = await self.handler.handle(
                Turn(conv.id, conv.contact_id, conv.channel_id, dict(conv.bot_state), is_start=True)
            )
            written, recorded = await self._write_turn(
                await scope.connection(), conv, None, outcome
            )
        await self._publish(written, recorded)

    async def _handle(self, conversation_id: int, message_id: int | None) -> bool:
        """One turn; False when there was nothing (left) to handle.

        The turn is one transaction from reading the state to writing the answer, with
        whatever the dialog wrote on the way (``Database.turn``): on PostgreSQL a
        second process with a message of the same conversation leaves it to this one,
        whose drain answers it next, from the state this turn left. A turn that fails
        leaves nothing behind."""
        if not self.db.is_sqlite:
            # A look without the lock first: the turn's transaction and lock cost three
            # round trips that a conversation with nothing (left) to answer need not pay.
            _, waiting = await self._load(conversation_id, message_id)
            if waiting is None:
                return False
        try:
            async with self.db.turn(conversation_id, wait=False) as scope:
                conv, message = await self._load(conversation_id, message_id)
                if conv is None or message is None:
                    return False
                outcome = await self._decide(conv, message)
                written, recorded = await self._write_turn(
                    await scope.connection(), conv, message, outcome
                )
        except TurnBusy:
            # Another process is in this conversation's turn; when it is done it looks
            # for what came meanwhile (its drain loops) and answers this message too.
            return False
        except _AlreadyHandled:
            log.info("message %s was answered by another worker", message and message.id)
            return True
        await self._publish(written, recorded)
        return True

    async def _decide(self, conv: _Conv, message: _Msg) -> TurnOutcome:
        if conv.status not in ("bot", "queued", "closed"):
            # An operator has it: the message waits for them; nothing to answer.
            return TurnOutcome(state=dict(conv.bot_state))
        text, payload = message.text, message.payload
        if payload is None and _CHOICE.fullmatch(text.strip()):
            text, payload = await self._numbered_choice(conv.id, text.strip())
        return await self.handler.handle(
            Turn(
                conversation_id=conv.id,
                contact_id=conv.contact_id,
                channel_id=conv.channel_id,
                state=dict(conv.bot_state),
                text=text,
                payload=payload,
                message_id=message.id,
                status=conv.status,
                attachments=tuple(
                    str(a.get("kind", "other")) for a in (message.meta or {}).get("attachments", [])
                ),
                phone_vouched=bool((message.meta or {}).get("phone_vouched")),
            )
        )

    async def _numbered_choice(self, conversation_id: int, text: str) -> tuple[str, str | None]:
        """«2» after buttons that went out as a numbered menu (the platform could not show
        them) is a press of the second one; anywhere else it stays the text «2»."""
        async with self.db.read() as conn:
            last = (await conn.execute(_LAST_REPLY, {"conv_id": conversation_id})).first()
        if last is None or not (last.meta or {}).get("numbered") or not last.buttons:
            return text, None
        index = int(text) - 1
        if not 0 <= index < len(last.buttons):
            return text, None
        button = last.buttons[index]
        return str(button["title"]), str(button["payload"])

    async def _fail_safe(self, conversation_id: int) -> bool:
        """A bug in a dialog must not leave the customer unanswered nor loop forever.
        What the failed turn wrote has been rolled back with it. True when the message
        is done with (the next one may be answered), False when nothing could be done."""
        sorry = Reply("Извините, произошла техническая ошибка. Я передаю ваш вопрос оператору.")
        outcome = TurnOutcome(replies=[sorry], state={}, handoff=True, meta={"error": True})
        failed: int | None = None
        try:
            async with self.db.turn(conversation_id, wait=True) as scope:
                conv, message = await self._load(conversation_id, None)
                if conv is None or message is None:
                    return False
                failed = message.id
                written, recorded = await self._write_turn(
                    await scope.connection(), conv, message, outcome
                )
        except _AlreadyHandled:
            return True
        except Exception:
            log.exception("could not even hand conversation %s over", conversation_id)
            if failed is None:
                return False
            try:
                async with self.db.transaction() as session:
                    await session.execute(
                        update(Message).where(Message.id == failed).values(handled=True)
                    )
            except Exception:
                log.exception("message %s stays unanswered", failed)
                return False
            return True
        await self._publish(written, recorded)
        return True

    async def _publish(self, written: list[dict[str, Any]], recorded: list[Event]) -> None:
        await self.bus.publish_many(recorded + self._outbox_signal(written))

    async def _write_turn(
        self, conn: AsyncConnection, conv: _Conv, message: _Msg | None, outcome: TurnOutcome
    ) -> tuple[list[dict[str, Any]], list[Event]]:
        """Replies, new state, status change, ``handled`` and the events of all of it, on
        the turn's connection (committed with the turn)."""
        now = utcnow()
        facts: list[Event] = []
        if message is not None:
            claim = await _CLAIM.run(
                conn, {"msg_id": message.id, "meta": _merge(message.meta, outcome.meta)}
            )
            if claim.rowcount == 0:
                raise _AlreadyHandled  # rolls the turn back: our replies are dropped
        written = await self._write_replies(conn, conv, outcome.replies, now)
        facts += self._reply_facts(written, message.id if message else None)
        facts += outcome.events
        if conv.status == "closed":
            # The rating question has had its answer: later messages open a new one.
            await conn.execute(_SURVEY_ANSWERED, {"conv_id": conv.id})
        await _SAVE_STATE.run(
            conn,
            {
                "conv_id": conv.id,
                "state": outcome.state,
                "last": now if written else None,
                "now": now,
            },
        )
        if outcome.leave_queue and conv.status == "queued":
            left = await conn.execute(_LEAVE_QUEUE, {"conv_id": conv.id, "now": now})
            if left.rowcount:
                facts.append(
                    Event(
                        events.CONVERSATION_LEFT_QUEUE,
                        {"conversation_id": conv.id, "channel_id": conv.channel_id},
                    )
                )
        if outcome.handoff:
            queued = await conn.execute(_TO_QUEUE, {"conv_id": conv.id, "now": now})
            if queued.rowcount:
                facts.append(
                    Event(
                        events.CONVERSATION_QUEUED,
                        {
                            "conversation_id": conv.id,
                            "channel_id": conv.channel_id,
                            "reason": "handoff",
                        },
                    )
                )
        recorded = await eventlog.record(conn, facts, now)
        return written, recorded

    def _reply_facts(self, written: list[dict[str, Any]], reply_to: int | None) -> list[Event]:
        """``message.sent`` for each reply. Where the client reads the store (web chat)
        the reply is there for it at once: ``delivered`` says so, and no separate
        ``message.delivered`` follows."""
        facts: list[Event] = []
        for row in written:
            data = {
                "message_id": row["id"],
                "conversation_id": row["conversation_id"],
                "channel_id": row["channel_id"],
                "author": row["author"],
                "author_id": row["author_id"],
            }
            if reply_to is not None:
                data["reply_to"] = reply_to
            if row["channel_id"] in self.store_delivered:
                data["delivered"] = True
            files = (row["meta"] or {}).get("files")
            if files:
                data["attachments"] = attachments.event_data(files)
            facts.append(Event(events.MESSAGE_SENT, data, live=row_event_data(row)))
        return facts

    def _outbox_signal(self, written: list[dict[str, Any]]) -> list[Event]:
        queued = sum(1 for r in written if r["channel_id"] not in self.store_delivered)
        return [Event(events.OUTBOX_ENQUEUED, {"count": queued})] if queued else []

    async def _write_replies(
        self, conn: AsyncConnection, conv: _Conv, replies: Iterable[Reply], now: datetime
    ) -> list[dict[str, Any]]:
        direct = conv.channel_id in self.store_delivered
        replies = list(replies)
        rows: list[dict[str, Any]] = [
            {
                "conversation_id": conv.id,
                "identity_id": conv.identity_id,
                "channel_id": conv.channel_id,
                "author": reply.author,
                "author_id": reply.author_id,
                "text": reply.text,
                "payload": None,
                "buttons": [b.as_dict() for b in reply.buttons] or None,
                "external_id": None,
                "meta": reply.meta or None,
                "handled": True,
                "delivery": "sent" if direct else "pending",
                "delivery_error": None,
                "created_at": now,
            }
            for reply in replies
        ]
        for row, reply in zip(rows, replies, strict=True):
            # One by one: RETURNING with executemany is not on every driver.
            row["id"] = int((await _INSERT_MESSAGE.run(conn, row)).scalar_one())
            if reply.attachments:
                files = await attachments.link(
                    conn,
                    reply.attachments,
                    message_id=row["id"],
                    conversation_id=conv.id,
                    identity_id=conv.identity_id,
                )
                if files:
                    row["meta"] = {**(row["meta"] or {}), "files": files}
                    await conn.execute(
                        update(Message).where(Message.id == row["id"]).values(meta=row["meta"])
                    )
        if rows and not direct:
            await conn.execute(
                _INSERT_OUTBOX,
                [
                    {
                        "message_id": row["id"],
                        "conversation_id": conv.id,
                        "channel_id": conv.channel_id,
                        "status": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "locked_until": None,
                        "last_error": None,
                        "created_at": now,
                        "sent_at": None,
                    }
                    for row in rows
                ],
            )
        return rows

    async def post(
        self,
        conversation_id: int,
        replies: list[Reply],
        *,
        also: Callable[[AsyncConnection, datetime], Awaitable[list[Event]]] | None = None,
    ) -> list[dict[str, Any]]:
        """Write replies outside a bot turn (operators, system notices, reminders).
        ``also`` runs in the same transaction (what the reply changes besides, and its
        events): the reply and its consequences are committed together or not at all."""
        conv, _ = await self._load(conversation_id, -1)
        if conv is None:
            raise LookupError(f"conversation {conversation_id} does not exist")
        now = utcnow()
        async with self.db.write() as conn:
            written = await self._write_replies(conn, conv, replies, now)
            await conn.execute(_TOUCH, {"conv_id": conversation_id, "now": now})
            facts = self._reply_facts(written, None)
            if also is not None:
                facts += await also(conn, now)
            recorded = await eventlog.record(conn, facts, now)
        await self.bus.publish_many(recorded + self._outbox_signal(written))
        return written


class StrandedSweeper(Worker):
    """Finds customer messages nobody is answering and has the pipeline answer them.

    A process that dies mid-turn leaves its messages unhandled (the turn's transaction is
    gone with it, and so is its lock); the other processes, or this one after a restart,
    must not wait for a customer to write again. A message is stranded when it has waited
    ``grace`` seconds: a live turn takes milliseconds, and scheduling a conversation that
    is in fact being answered costs one look-up, since its turn waits for the other."""

    def __init__(self, pipeline: Pipeline, *, every: float = 5.0, grace: float = 5.0) -> None:
        super().__init__(
            pipeline.bus,
            set(),
            name="stranded-sweeper",
            poll=every,
            logger=log,
            failure="sweep for unanswered messages failed",
        )
        self.pipeline = pipeline
        self.grace = timedelta(seconds=grace)

    async def _step(self) -> bool:
        await self.sweep()
        return False

    async def sweep(self) -> int:
        """Schedule the conversations with a stranded message; returns how many."""
        async with self.pipeline.db.read() as conn:
            ids = list((await conn.execute(_STRANDED, {"before": utcnow() - self.grace})).scalars())
        ids = [i for i in ids if i not in self.pipeline._queues]
        for conv_id in ids:
            self.pipeline.schedule(conv_id)
        if ids:
            log.info("answering %d conversations left unanswered", len(ids))
        return len(ids)


class _AlreadyHandled(Exception):
    """Another worker claimed the message first."""


@dataclass(frozen=True)
class _Conv:
    id: int
    contact_id: int
    identity_id: int
    channel_id: str
    status: str
    bot_state: dict[str, Any]


@dataclass(frozen=True)
class _Msg:
    id: int
    text: str
    payload: str | None
    meta: dict[str, Any] | None


def _merge(old: dict[str, Any] | None, new: dict[str, Any] | None) -> dict[str, Any] | None:
    if not new:
        return old
    return {**(old or {}), **new}
