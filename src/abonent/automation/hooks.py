"""Python hooks: a company's own code, run on the chat centre's events (docs/hooks.md).

This module is the stable surface a company's package is written against::

    from abonent.automation.hooks import HookApi, HookEvent, HookSet, ReadingsCheck

    hooks = HookSet("company")

    @hooks.on("conversation.queued")
    async def crm_phone(event: HookEvent, api: HookApi) -> None: ...

    @hooks.readings_check
    async def meter_digits(ctx: ReadingsCheck) -> str | None: ...

Handlers run off the message path (``hook_runtime``): the event log's consumer queues
one run per event and handler, and a leased worker runs it with a time limit, retrying
a failure a few times. Whatever the API writes goes through the same paths as the bot's
and the operators' own writes (the pipeline's ``post``, notes with their ``note.added``
event), so the log, the workspace and what the customer sees always agree.
"""

from __future__ import annotations

import asyncio
import fnmatch
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.automation.hook_checks import CheckFunction, ReadingsCheck
from abonent.billing.accounts import normalise_phone
from abonent.billing.base import Billing
from abonent.clock import utcnow
from abonent.config import CompanySettings
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.contacts import ContactDirectory
from abonent.core.events import Event
from abonent.core.pipeline import Pipeline
from abonent.core.serialize import row_event_data
from abonent.core.types import Button, Reply
from abonent.crm.base import Crm, CrmPerson
from abonent.db.models import (
    Contact,
    ContactCardDetail,
    Conversation,
    ConversationTag,
    Message,
)
from abonent.db.session import Database

__all__ = [
    "Button",
    "CrmPerson",
    "HookApi",
    "HookEvent",
    "HookSet",
    "HookUsageError",
    "ReadingsCheck",
]

P = ParamSpec("P")
T = TypeVar("T")

HandlerFunction = Callable[["HookEvent", "HookApi"], Awaitable[None]]
H = TypeVar("H", bound=HandlerFunction)
C = TypeVar("C", bound=CheckFunction)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,100}$")
# Event types a hook may listen to: every durable one but the log's own marker.
KNOWN_EVENTS = tuple(sorted(events.DURABLE - {events.LOG_STARTED}))
MAX_TAG = 64
MAX_TEXT = 4000


class HookUsageError(Exception):
    """A hook asked the API for something this event cannot give (a reply where there is
    no conversation, a phone that is not one). A bug in the hook: the run fails with it."""


@dataclass(frozen=True)
class HookEvent:
    """One event of the log, as a handler gets it. ``id`` is unique and stable: a
    handler that must not act twice (a run may be repeated after a crash) dedupes on it."""

    id: int
    type: str
    occurred_at: datetime
    conversation_id: int | None
    # The event's own fields (core/events.py): ids, kinds, numbers; never a message text.
    data: dict[str, Any]
    # ``message.received``: what the customer wrote (read from the message, since the log
    # never keeps texts); None for other events.
    text: str | None = None


@dataclass(frozen=True)
class Handler:
    """A registered event handler; ``name`` is "<hook set>.<function>"."""

    name: str
    module: str
    patterns: tuple[str, ...]
    function: HandlerFunction
    # Seconds; None: the configured ``[hooks] timeout``.
    timeout: float | None = None

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.patterns)


class HookSet:
    """A company module's hooks: ``hooks = HookSet("company")`` at module level, then
    handlers and readings checks registered with its decorators."""

    def __init__(self, name: str) -> None:
        if not _NAME.match(name):
            raise ValueError(f"hook set name {name!r}: use letters, digits, '_', '-', '.'")
        self.name = name
        self.handlers: list[Handler] = []
        self.checks: list[tuple[str, str, CheckFunction]] = []

    def on(
        self, *event_types: str, name: str | None = None, timeout: float | None = None
    ) -> Callable[[H], H]:
        """Run the decorated ``async def f(event, api)`` on each event of these types
        (globs allowed: ``"message.*"``). A type that matches no event is an error at
        import, not a hook that silently never runs."""
        if not event_types:
            raise ValueError("name at least one event type, e.g. @hooks.on('message.received')")
        for pattern in event_types:
            if not fnmatch.filter(KNOWN_EVENTS, pattern):
                known = ", ".join(KNOWN_EVENTS)
                raise ValueError(f"hook event {pattern!r} matches no event type; known: {known}")
        if timeout is not None and timeout <= 0:
            raise ValueError("a hook's timeout must be positive seconds")

        def register(function: H) -> H:
            _require_async(function, "hook", " (blocking code: api.run_sync)")
            full = self._full_name(name or function.__name__)
            self.handlers.append(
                Handler(full, function.__module__, tuple(event_types), function, timeout)
            )
            return function

        return register

    def readings_check(self, function: C) -> C:
        """Register ``async def check(ctx: ReadingsCheck) -> str | None``: called in the
        customer's turn before readings are stored; a returned text refuses them (the
        customer sees it and may type again), None accepts."""
        _require_async(function, "readings check")
        self.checks.append((self._full_name(function.__name__), function.__module__, function))
        return function

    def _full_name(self, name: str) -> str:
        full = f"{self.name}.{name}"
        if not _NAME.match(full):
            raise ValueError(f"hook name {full!r}: use letters, digits, '_', '-', '.'")
        taken = {h.name for h in self.handlers} | {c[0] for c in self.checks}
        if full in taken:
            raise ValueError(f"hook {full!r} is registered twice; give one a name=")
        return full


@dataclass
class HookServices:
    """The running parts the API uses; one per process (``hook_runtime.build_hooks``)."""

    db: Database
    bus: LocalBus
    pipeline: Pipeline
    billing: Billing
    crm: Crm
    contacts: ContactDirectory
    company: CompanySettings


@dataclass
class _Subject:
    conversation_id: int
    contact_id: int


class _NotWithBot(Exception):
    """The conversation is no longer the bot's: nothing to hand over."""


@dataclass
class HookApi:
    """What a handler may do about its event: every call is async, and each write is
    committed at once with its event (a handler that fails after ``reply`` has replied)."""

    services: HookServices
    hook: str
    event: HookEvent
    log: logging.Logger = field(init=False)
    _subject: _Subject | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.log = logging.getLogger(f"abonent.hooks.{self.hook}")

    # ------------------------------------------------------------------ what it can read
    @property
    def billing(self) -> Billing:
        """The configured billing: ``get_account(number)``, ``find_accounts_by_phone(phone)``."""
        return self.services.billing

    @property
    def crm(self) -> Crm:
        """The configured CRM: ``find(phone, account)`` → ``CrmPerson | None``."""
        return self.services.crm

    @property
    def company(self) -> CompanySettings:
        """The company profile (``emergency_phone``, ``call_center_phone``, ``links`` …)."""
        return self.services.company

    @property
    def conversation_id(self) -> int | None:
        return self.event.conversation_id

    async def contact_id(self) -> int:
        return (await self._conversation()).contact_id

    async def contact_phone(self) -> str | None:
        """The customer's phone: vouched for by their messenger, else the card's phone."""
        contact_id = await self.contact_id()
        async with self.services.db.session() as session:
            contact = await session.get(Contact, contact_id)
            detail = await session.get(ContactCardDetail, contact_id)
        if contact is not None and contact.phone:
            return contact.phone
        return detail.phone if detail is not None else None

    async def accounts(self) -> list[str]:
        """Account numbers the customer named in this conversation, then those they used
        before, the most recent first."""
        subject = await self._conversation()
        named = await self.services.contacts.conversation_accounts(subject.conversation_id)
        known = await self.services.contacts.known_accounts(subject.contact_id, limit=10)
        return list(dict.fromkeys([*named, *known]))

    async def tags(self) -> list[str]:
        subject = await self._conversation()
        async with self.services.db.read() as conn:
            rows = await conn.execute(
                select(ConversationTag.tag)
                .where(ConversationTag.conversation_id == subject.conversation_id)
                .order_by(ConversationTag.created_at, ConversationTag.tag)
            )
            return [str(r[0]) for r in rows]

    # ------------------------------------------------------------------ what it can do
    async def reply(self, text: str, buttons: Sequence[Button | tuple[str, str]] = ()) -> None:
        """Say ``text`` to the customer in their channel (through the outbox, like every
        reply); ``buttons``: ``Button(title, payload)`` or (title, payload) pairs."""
        text = _text(text)
        subject = await self._conversation()
        shown = tuple(b if isinstance(b, Button) else Button(str(b[0]), str(b[1])) for b in buttons)
        reply = Reply(text, shown, author="bot", meta={"hook": self.hook})
        await self.services.pipeline.post(subject.conversation_id, [reply])

    async def handoff(
        self, reason: str, text: str | None = None, *, group: str | None = None
    ) -> bool:
        """Queue the conversation for an operator (of ``group`` only, when given), with
        ``reason`` as a note they read; ``text`` is told to the customer. False when it
        is not the bot's any more (queued, with an operator or closed): nothing is done."""
        subject = await self._conversation()
        reason = _text(reason)
        hook = self.hook

        async def queue(conn: AsyncConnection, now: datetime) -> list[Event]:
            conv = await _conversation_row(conn, subject.conversation_id)
            done = await conn.execute(
                update(Conversation)
                .where(Conversation.id == conv.id, Conversation.status == "bot")
                .values(
                    status="queued",
                    queued_at=now,
                    waiting_since=now,
                    bot_state={},
                    group=group[:64] if group else None,
                    updated_at=now,
                )
            )
            if not done.rowcount:
                raise _NotWithBot
            note = await _write_note(conn, conv, f"Передано оператору: {reason}", hook, now)
            queued = Event(
                events.CONVERSATION_QUEUED,
                {
                    "conversation_id": conv.id,
                    "channel_id": conv.channel_id,
                    "reason": "handoff",
                    "by": "hook",
                    "hook": hook,
                },
            )
            return [note, queued]

        replies = [Reply(_text(text), author="system", meta={"hook": hook})] if text else []
        try:
            await self.services.pipeline.post(subject.conversation_id, replies, also=queue)
        except _NotWithBot:
            return False
        return True

    async def note(self, text: str) -> None:
        """An internal note on the conversation: operators see it, the customer never does."""
        subject = await self._conversation()
        body = _text(text)
        async with self.services.db.write() as conn:
            conv = await _conversation_row(conn, subject.conversation_id)
            recorded = await eventlog.record(
                conn, [await _write_note(conn, conv, body, self.hook, utcnow())]
            )
        await self.services.bus.publish_many(recorded)

    async def tag(self, label: str) -> None:
        """Label the conversation (shown on the operator's card); a label given twice is
        kept once."""
        label = " ".join(label.split())[:MAX_TAG]
        if not label:
            raise HookUsageError("a tag must not be empty")
        subject = await self._conversation()
        async with self.services.db.write() as conn:
            insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            await conn.execute(
                insert_(ConversationTag)
                .values(
                    conversation_id=subject.conversation_id,
                    tag=label,
                    source=self.hook,
                    created_at=utcnow(),
                )
                .on_conflict_do_nothing()
            )

    async def set_card_phone(self, phone: str) -> str:
        """Show this phone on the customer's card (the operator sees it as the contact's
        phone when the messenger gave none). It never joins contacts: only a phone the
        platform vouched for does. Returns it normalised (``+7…``)."""
        normalised = normalise_phone(phone)
        if normalised is None:
            raise HookUsageError("set_card_phone needs a Russian phone number (+7…)")
        contact_id = await self.contact_id()
        now = utcnow()
        async with self.services.db.write() as conn:
            insert_ = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
            statement = insert_(ContactCardDetail).values(
                contact_id=contact_id, phone=normalised, source=self.hook, updated_at=now
            )
            await conn.execute(
                statement.on_conflict_do_update(
                    index_elements=["contact_id"],
                    set_={"phone": normalised, "source": self.hook, "updated_at": now},
                )
            )
        return normalised

    async def run_sync(self, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking code (a synchronous client library) in a thread, so the server's
        event loop keeps serving customers meanwhile. The time limit still applies to the
        wait, but a thread cannot be stopped: give the library its own timeout too."""
        return await asyncio.to_thread(function, *args, **kwargs)

    # ------------------------------------------------------------------ helpers
    async def _conversation(self) -> _Subject:
        if self._subject is not None:
            return self._subject
        conv_id = self.event.conversation_id
        if conv_id is None:
            raise HookUsageError(f"a {self.event.type} event has no conversation")
        async with self.services.db.read() as conn:
            row = (
                await conn.execute(
                    select(Conversation.id, Conversation.contact_id).where(
                        Conversation.id == conv_id
                    )
                )
            ).first()
        if row is None:
            raise HookUsageError(f"conversation {conv_id} no longer exists")
        self._subject = _Subject(int(row[0]), int(row[1]))
        return self._subject


def _require_async(function: Callable[..., Any], what: str, hint: str = "") -> None:
    """Handlers share the server's event loop: a plain ``def`` would block it."""
    if not inspect.iscoroutinefunction(function):
        raise TypeError(f"{what} {function.__name__} must be 'async def'{hint}")


def _text(text: str) -> str:
    text = str(text).strip()
    if not text:
        raise HookUsageError("the text is empty")
    return text[:MAX_TEXT]


async def _conversation_row(conn: AsyncConnection, conversation_id: int) -> Conversation:
    row = (
        await conn.execute(
            select(Conversation.id, Conversation.identity_id, Conversation.channel_id).where(
                Conversation.id == conversation_id
            )
        )
    ).first()
    if row is None:
        raise HookUsageError(f"conversation {conversation_id} no longer exists")
    return Conversation(id=row[0], identity_id=row[1], channel_id=row[2])


async def _write_note(
    conn: AsyncConnection, conv: Conversation, body: str, hook: str, now: datetime
) -> Event:
    """A note as the desk writes one (``note.added`` with the message for live views),
    with no operator behind it: ``meta.hook`` names the hook that wrote it."""
    row: dict[str, Any] = {
        "conversation_id": conv.id,
        "identity_id": conv.identity_id,
        "channel_id": conv.channel_id,
        "author": "note",
        "author_id": None,
        "text": body,
        "payload": None,
        "buttons": None,
        "external_id": None,
        "meta": {"hook": hook},
        "handled": True,
        "delivery": None,
        "delivery_error": None,
        "created_at": now,
    }
    result = await conn.execute(insert(Message).returning(Message.id), row)
    row["id"] = int(result.scalar_one())
    return Event(
        events.NOTE_ADDED,
        {"message_id": row["id"], "conversation_id": conv.id, "author_id": None, "hook": hook},
        live=row_event_data(row),
    )
