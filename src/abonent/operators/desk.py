"""The operators' desk: statuses, the queue, assignment, transfer, return and close.

Every change is one conditional UPDATE (``WHERE status = 'queued'`` …), so two
operators — or two server processes — racing for one conversation cannot both get
it; the loser is told it is gone. Automatic assignment gives each waiting
conversation to the eligible online operator with the fewest open conversations
(not round-robin: load decides), up to the operator's own limit, and runs whenever
something could change the answer: a conversation is queued, closed, transferred or
returned; an operator comes online. On PostgreSQL the pass runs under an advisory
lock, so processes take turns instead of over-assigning one operator, and going
offline takes it too, so nobody is handed a chat as they leave.
Every action records its event (core.events) in its own transaction, and the messages
an action sends (the operator joined, the chat is closed, the rating question) are
written in that same transaction: the log and what the customer sees always agree.

"К диалогу подключился оператор …" must be true when the customer reads it, so a
conversation goes to a named person only while they are «На линии»: taking one from the
queue needs you on the line, a transfer or a supervisor's reassignment to somebody on a
break or away is refused (a group transfer queues it instead: whoever of the group comes
on the line gets it), and an operator who is «Не в сети» cannot answer. The status is
read with a share lock in the action's transaction, so a colleague going offline at that
moment either lands first (and the transfer is refused) or after (and takes the chat back
to the queue with the rest of theirs).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from abonent.bot import texts as t
from abonent.clock import utcnow
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.conversations import close_idle
from abonent.core.events import Event
from abonent.core.pipeline import Pipeline
from abonent.core.serialize import row_event_data
from abonent.core.types import SURVEY_PREFIX, Button, Reply
from abonent.core.worker import Worker
from abonent.db.models import Conversation, Message, User
from abonent.db.session import Database
from abonent.operators.templates import unfilled

log = logging.getLogger(__name__)

STATUSES = ("online", "break", "offline")
# The workspace pings every 20 s; this long without a ping means the page is closed.
SEEN_TIMEOUT = timedelta(seconds=90)
SWEEP_EVERY = 5.0
IDLE_SWEEP_EVERY = 60.0
# How long after the close a rating is still taken into the closed conversation.
SURVEY_OPEN = timedelta(hours=24)
_ASSIGN_LOCK = 0x61737367  # "assg"
# What the customer reads when their chat is handed to a group: nobody has joined yet.
TRANSFERRED_TO_GROUP = (
    "Передаю ваш вопрос профильному специалисту. Пожалуйста, оставайтесь в чате: "
    "он ответит здесь же."
)
SURVEY_BUTTONS = tuple(
    Button(title, f"{SURVEY_PREFIX}{score}") for score, title in enumerate(t.SURVEY_SCORES, 1)
)

_TRIGGERS = {
    events.CONVERSATION_QUEUED,
    events.CONVERSATION_CLOSED,
    events.CONVERSATION_TRANSFERRED,
    events.CONVERSATION_RETURNED_TO_BOT,
    events.OPERATOR_STATUS,
}


def _stale(before: datetime) -> tuple[ColumnElement[bool], ...]:
    """Users shown as working whose page has been silent since ``before``."""
    return (
        User.status.in_(("online", "break")),
        func.coalesce(User.last_seen_at, User.status_changed_at) < before,
    )


async def _serialise_assignment(conn: AsyncConnection) -> None:
    """On PostgreSQL, wait for (and hold till commit) the lock of assignment passes: an
    operator going offline then cannot be handed a chat by a pass that read them online."""
    if conn.dialect.name == "postgresql":
        await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ASSIGN_LOCK})


async def requeue_of(
    conn: AsyncConnection | AsyncSession, user_id: int, now: datetime
) -> list[int]:
    """An operator who leaves (offline, disabled) gives their open conversations back to
    the queue: a customer must not wait for somebody who has gone home. The rows are
    locked first, so a transfer racing with this either lands before (the conversation is
    no longer theirs and stays where it went) or after."""
    theirs = (Conversation.assignee_id == user_id, Conversation.status == "assigned")
    ids = list(
        (await conn.execute(select(Conversation.id).where(*theirs).with_for_update())).scalars()
    )
    if ids:
        await conn.execute(
            update(Conversation)
            .where(Conversation.id.in_(ids), *theirs)
            .values(status="queued", assignee_id=None, queued_at=now, updated_at=now)
        )
    return ids


def _still_with(conv: Conversation) -> tuple[ColumnElement[bool], ...]:
    """The conversation is still assigned to whom ``_own`` saw: an action checked against
    one assignee must not land after a transfer or reassignment in between."""
    return (
        Conversation.id == conv.id,
        Conversation.status == "assigned",
        Conversation.assignee_id == conv.assignee_id,
    )


class DeskError(Exception):
    """An action that cannot be done now; ``code`` for clients, the text for people."""

    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details


async def _status_of(conn: AsyncConnection, user_id: int) -> str | None:
    """The user's status, share-locked till commit (PostgreSQL), so it cannot change
    under an action that depends on it; None for a missing or disabled user."""
    row = (
        await conn.execute(
            select(User.status, User.active).where(User.id == user_id).with_for_update(read=True)
        )
    ).first()
    if row is None or not row.active:
        return None
    return str(row.status)


async def _require_on_line(conn: AsyncConnection, user_id: int, *, own: bool) -> None:
    """A conversation is given to a person only while they are «На линии»."""
    status = await _status_of(conn, user_id)
    if status is None:
        raise DeskError(404, "no_operator", "No such active operator.")
    if status == "online":
        return
    if own:
        raise DeskError(
            409, "not_online", "You are not on the line: switch to online to take a conversation."
        )
    raise DeskError(
        409,
        "operator_unavailable",
        "The colleague is not on the line; choose somebody online or transfer to a group.",
        operator_status=status,
    )


@dataclass(frozen=True)
class Actor:
    id: int
    name: str
    role: str

    @property
    def supervises(self) -> bool:
        return self.role in ("supervisor", "admin")


class Desk(Worker):
    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        pipeline: Pipeline,
        *,
        survey: bool = True,
        idle_close: timedelta | None = timedelta(hours=24),
    ) -> None:
        # Eager: chats queued while nobody ran the desk are assigned on start.
        super().__init__(
            bus,
            _TRIGGERS,
            name="operator-desk",
            poll=SWEEP_EVERY,
            logger=log,
            failure="operator desk pass failed",
            eager=True,
        )
        self.db = db
        self.bus = bus
        self.pipeline = pipeline
        # Ask the customer to rate the conversation when an operator closes it.
        self.survey = survey
        # Close conversations with the bot that have been silent this long.
        self.idle_close = idle_close
        self._last_idle_sweep = 0.0

    # ------------------------------------------------------------------ life cycle
    async def _step(self) -> bool:
        await self.sweep()
        await self.assign_waiting()
        now = asyncio.get_running_loop().time()
        if self.idle_close and now - self._last_idle_sweep > IDLE_SWEEP_EVERY:
            self._last_idle_sweep = now
            await close_idle(self.db, self.bus, utcnow() - self.idle_close)
        return False

    # ------------------------------------------------------------------ statuses
    async def set_status(
        self,
        user_id: int,
        status: str,
        *,
        auto: bool = False,
        stale_before: datetime | None = None,
    ) -> bool:
        """``stale_before`` (the sweep): change only a working user whose page has been
        silent since then; a ping, or another process's sweep, may have come first.
        Returns whether the status was changed."""
        if status not in STATUSES:
            raise DeskError(400, "bad_status", f"status must be one of {', '.join(STATUSES)}")
        now = utcnow()
        requeued: list[int] = []
        async with self.db.write() as conn:
            if status == "offline":
                await _serialise_assignment(conn)
            old = (await conn.execute(select(User.status).where(User.id == user_id))).scalar()
            if old is None:
                raise DeskError(404, "not_found", "No such user.")
            change = update(User).where(User.id == user_id)
            if stale_before is not None:
                change = change.where(*_stale(stale_before))
            done = await conn.execute(
                change.values(status=status, status_changed_at=now, last_seen_at=now)
            )
            if not done.rowcount:
                return False
            if status == "offline":
                requeued = await requeue_of(conn, user_id, now)
            facts = [
                Event(
                    events.OPERATOR_STATUS,
                    {"user_id": user_id, "previous": old, "status": status, "auto": auto},
                )
            ]
            facts += [
                Event(
                    events.CONVERSATION_QUEUED,
                    {"conversation_id": c, "reason": "requeue", "requeued_from": user_id},
                )
                for c in requeued
            ]
            recorded = await eventlog.record(conn, facts, now)
        await self.bus.publish_many(recorded)
        return True

    async def seen(self, user_id: int) -> None:
        """A ping from an open workspace page."""
        async with self.db.write() as conn:
            await conn.execute(update(User).where(User.id == user_id).values(last_seen_at=utcnow()))

    async def sweep(self) -> None:
        """Operators whose page has been closed for a while go offline by themselves."""
        limit = utcnow() - SEEN_TIMEOUT
        async with self.db.session() as session:
            stale = list(await session.scalars(select(User.id).where(*_stale(limit))))
        for user_id in stale:
            if await self.set_status(user_id, "offline", auto=True, stale_before=limit):
                log.info("operator %s went offline: the workspace page is closed", user_id)

    # ------------------------------------------------------------------ assignment
    async def assign_waiting(self) -> int:
        """Give waiting conversations to online operators with room; returns how many."""
        assigned: list[tuple[int, int, str]] = []
        recorded: list[Event] = []
        async with self.db.write() as conn:
            await _serialise_assignment(conn)
            load = (
                select(func.count(Conversation.id))
                .where(Conversation.assignee_id == User.id, Conversation.status == "assigned")
                .scalar_subquery()
            )
            operators = [
                [row.id, row.name, list(row.groups or []), row.max_chats - row.load]
                for row in (
                    await conn.execute(
                        select(
                            User.id,
                            User.name,
                            User.groups,
                            User.max_chats,
                            load.label("load"),
                        ).where(User.status == "online", User.active.is_(True))
                    )
                ).all()
            ]
            if not any(op[3] > 0 for op in operators):
                return 0
            waiting = (
                await conn.execute(
                    select(Conversation.id, Conversation.group)
                    .where(Conversation.status == "queued")
                    .order_by(Conversation.queued_at, Conversation.id)
                    .limit(200)
                )
            ).all()
            now = utcnow()
            for conv_id, group in waiting:
                eligible = [op for op in operators if op[3] > 0 and (not group or group in op[2])]
                if not eligible:
                    continue
                # The least loaded first: most free places.
                chosen = max(eligible, key=lambda op: (op[3], -op[0]))
                done = await conn.execute(
                    update(Conversation)
                    .where(Conversation.id == conv_id, Conversation.status == "queued")
                    .values(status="assigned", assignee_id=chosen[0], updated_at=now)
                )
                if done.rowcount:
                    chosen[3] -= 1
                    assigned.append((conv_id, chosen[0], chosen[1]))
            facts = [_assigned(conv_id, user_id, None, "auto") for conv_id, user_id, _ in assigned]
            recorded = await eventlog.record(conn, facts)
        await self.bus.publish_many(recorded)
        for conv_id, _user_id, name in assigned:
            await self.pipeline.post(conv_id, [_joined(name)])
        return len(assigned)

    # ------------------------------------------------------------------ actions
    async def take(self, actor: Actor, conv_id: int) -> None:
        """An operator takes a waiting conversation (a supervisor may take any open one)."""
        allowed = ("queued", "assigned") if actor.supervises else ("queued",)
        await self._move_to(actor, conv_id, actor.id, actor.name, allowed, "take")

    async def assign(self, actor: Actor, conv_id: int, user_id: int) -> None:
        """A supervisor gives a conversation to a named operator."""
        if not actor.supervises:
            raise DeskError(403, "forbidden", "Only supervisors reassign conversations.")
        name = await self._active_name(user_id)
        await self._move_to(actor, conv_id, user_id, name, ("queued", "assigned", "bot"), "assign")

    async def _move_to(
        self,
        actor: Actor,
        conv_id: int,
        user_id: int,
        name: str,
        allowed: tuple[str, ...],
        kind: str,
    ) -> None:

        async def move(conn: AsyncConnection, now: datetime) -> list[Event]:
            await _require_on_line(conn, user_id, own=user_id == actor.id)
            done = await conn.execute(
                update(Conversation)
                .where(Conversation.id == conv_id, Conversation.status.in_(allowed))
                .values(status="assigned", assignee_id=user_id, group=None, updated_at=now)
            )
            if not done.rowcount:
                raise DeskError(409, "gone", "The conversation is no longer available.")
            return [_assigned(conv_id, user_id, actor.id, kind)]

        await self._post(conv_id, [_joined(name)], move)

    async def _active_name(self, user_id: int) -> str:
        async with self.db.session() as session:
            user = await session.get(User, user_id)
        if user is None or not user.active:
            raise DeskError(404, "no_operator", "No such active operator.")
        return user.name

    async def _own(self, actor: Actor, conv_id: int) -> Conversation:
        async with self.db.session() as session:
            conv = await session.get(Conversation, conv_id)
        if conv is None:
            raise DeskError(404, "not_found", "No such conversation.")
        if conv.status != "assigned" or (conv.assignee_id != actor.id and not actor.supervises):
            raise DeskError(409, "not_yours", "The conversation is not assigned to you.")
        return conv

    async def send(
        self, actor: Actor, conv_id: int, body: str, attachments: tuple[int, ...] = ()
    ) -> dict[str, Any]:
        """An operator's answer: through the outbox, like every reply; ``attachments``
        are files uploaded for it (core.attachments), which may go without a text."""
        body = body.strip()
        if not body and not attachments:
            raise DeskError(422, "empty", "The message is empty.")
        if len(body) > 4000:
            raise DeskError(422, "too_long", "The message is longer than 4000 characters.")
        markers = unfilled(body)
        if markers:
            # A template's blank («[имя]») must never reach a customer as it is.
            raise DeskError(
                422,
                "unfilled_placeholder",
                "Replace the template's blanks before sending: " + ", ".join(markers),
                placeholders=markers,
            )
        await self._own(actor, conv_id)

        async def answered(conn: AsyncConnection, now: datetime) -> list[Event]:
            if await _status_of(conn, actor.id) in (None, "offline"):
                raise DeskError(
                    409, "not_online", "You are offline: go on the line to answer customers."
                )
            await conn.execute(
                update(Conversation)
                .where(Conversation.id == conv_id)
                .values(
                    first_reply_at=func.coalesce(Conversation.first_reply_at, now),
                    waiting_since=None,
                )
            )
            return []

        written = await self.pipeline.post(
            conv_id,
            [Reply(body, author="operator", author_id=actor.id, attachments=attachments)],
            also=answered,
        )
        return written[0]

    async def _post(
        self,
        conv_id: int,
        replies: list[Reply],
        change: Callable[[AsyncConnection, datetime], Awaitable[list[Event]]],
    ) -> None:
        """An action and the messages it sends, in one transaction (``Pipeline.post``)."""
        try:
            await self.pipeline.post(conv_id, replies, also=change)
        except LookupError as exc:
            raise DeskError(404, "not_found", "No such conversation.") from exc

    async def note(self, actor: Actor, conv_id: int, body: str) -> None:
        """An internal note: operators see it, the customer never does."""
        conv = await self._own(actor, conv_id)
        async with self.db.write() as conn:
            note = await self._write_note(conn, conv, actor.id, body)
            recorded = await eventlog.record(conn, [note])
        await self.bus.publish_many(recorded)

    @staticmethod
    async def _write_note(
        conn: AsyncConnection, conv: Conversation, author_id: int, body: str
    ) -> Event:
        """The note's row, and its ``note.added`` event (with the message for live views)."""
        row: dict[str, Any] = {
            "conversation_id": conv.id,
            "identity_id": conv.identity_id,
            "channel_id": conv.channel_id,
            "author": "note",
            "author_id": author_id,
            "text": body,
            "payload": None,
            "buttons": None,
            "external_id": None,
            "meta": None,
            "handled": True,
            "delivery": None,
            "delivery_error": None,
            "created_at": utcnow(),
        }
        result = await conn.execute(insert(Message).returning(Message.id), row)
        row["id"] = int(result.scalar_one())
        return Event(
            events.NOTE_ADDED,
            {"message_id": row["id"], "conversation_id": conv.id, "author_id": author_id},
            live=row_event_data(row),
        )

    async def transfer(
        self,
        actor: Actor,
        conv_id: int,
        *,
        to_user_id: int | None = None,
        group: str | None = None,
        note: str = "",
    ) -> None:
        """To a colleague (assigned at once) or to a group (queued for its operators).
        The note is kept in the history, so the customer is not asked again."""
        if (to_user_id is None) == (group is None):
            raise DeskError(422, "target", "Choose either an operator or a group.")
        if not note.strip():
            raise DeskError(422, "note", "Write a note for the next operator.")
        if to_user_id is not None and to_user_id == actor.id:
            raise DeskError(422, "target", "Choose a colleague, not yourself.")
        conv = await self._own(actor, conv_id)
        name = await self._active_name(to_user_id) if to_user_id is not None else ""
        target = name or f"группа «{group}»"
        written_note = f"Передано: {target}. {note.strip()}"

        async def move(conn: AsyncConnection, now: datetime) -> list[Event]:
            values: dict[str, Any]
            if to_user_id is not None:
                await _require_on_line(conn, to_user_id, own=False)
                values = {"assignee_id": to_user_id, "group": None}
            else:
                values = {"status": "queued", "assignee_id": None, "group": group, "queued_at": now}
            done = await conn.execute(
                update(Conversation).where(*_still_with(conv)).values(updated_at=now, **values)
            )
            if not done.rowcount:
                raise DeskError(409, "gone", "The conversation is no longer yours to transfer.")
            return [
                await self._write_note(conn, conv, actor.id, written_note),
                Event(
                    events.CONVERSATION_TRANSFERRED,
                    {
                        "conversation_id": conv_id,
                        "from": actor.id,
                        "assignee_id": to_user_id,
                        "group": group,
                    },
                ),
            ]

        told = (
            _joined(name)
            if to_user_id is not None
            else Reply(TRANSFERRED_TO_GROUP, author="system")
        )
        await self._post(conv_id, [told], move)

    async def return_to_bot(self, actor: Actor, conv_id: int) -> None:
        conv = await self._own(actor, conv_id)

        async def back(conn: AsyncConnection, now: datetime) -> list[Event]:
            done = await conn.execute(
                update(Conversation)
                .where(*_still_with(conv))
                .values(
                    status="bot",
                    assignee_id=None,
                    group=None,
                    bot_state={},
                    waiting_since=None,
                    queued_at=None,
                    updated_at=now,
                )
            )
            if not done.rowcount:
                raise DeskError(409, "gone", "The conversation is no longer yours.")
            data = {"conversation_id": conv_id, "by": actor.id}
            return [Event(events.CONVERSATION_RETURNED_TO_BOT, data)]

        await self._post(conv_id, [Reply(t.BACK_TO_BOT, t.MENU_BUTTONS)], back)

    async def close(self, actor: Actor, conv_id: int, resolution: str) -> None:
        """Close with a resolution; the customer is told, and asked to rate the help
        (buttons 1–5) unless the survey is switched off."""
        resolution = resolution.strip()
        if not resolution:
            raise DeskError(422, "resolution", "Say how the conversation ended.")
        conv = await self._own(actor, conv_id)
        survey = self.survey

        async def closed(conn: AsyncConnection, now: datetime) -> list[Event]:
            done = await conn.execute(
                update(Conversation)
                .where(*_still_with(conv))
                .values(
                    status="closed",
                    closed_at=now,
                    resolution=resolution[:200],
                    waiting_since=None,
                    survey_until=now + SURVEY_OPEN if survey else None,
                    updated_at=now,
                )
            )
            if not done.rowcount:
                raise DeskError(409, "gone", "The conversation is no longer yours.")
            facts = [
                Event(
                    events.CONVERSATION_CLOSED,
                    {
                        "conversation_id": conv_id,
                        "by": actor.id,
                        "assignee_id": conv.assignee_id,
                        "resolution": resolution[:200],
                    },
                )
            ]
            if survey:
                facts.append(
                    Event(
                        events.CSAT_ASKED,
                        {
                            "conversation_id": conv_id,
                            "channel_id": conv.channel_id,
                            "user_id": conv.assignee_id,
                        },
                    )
                )
            return facts

        # The customer always has a way on: the rating buttons (the bot's answer to the
        # rating brings the menu back), or the menu itself when there is no survey.
        replies = [Reply(t.CONVERSATION_CLOSED, () if survey else t.MENU_BUTTONS, author="system")]
        if survey:
            replies.append(Reply(t.SURVEY_QUESTION, SURVEY_BUTTONS))
        await self._post(conv_id, replies, closed)


def _joined(name: str) -> Reply:
    return Reply(t.OPERATOR_JOINED.format(name=name), author="system")


def _assigned(conv_id: int, user_id: int, by: int | None, how: str) -> Event:
    """``how``: auto (the desk chose), take (the operator took it), assign (a supervisor)."""
    return Event(
        events.CONVERSATION_ASSIGNED,
        {"conversation_id": conv_id, "assignee_id": user_id, "by": by, "how": how},
    )
