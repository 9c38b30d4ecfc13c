"""Inbound storage: contact, identity, conversation and message in one transaction.

A retried delivery carries the platform's id again; the unique constraint on
(channel, external id) turns it into a no-op however the retries race.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.clock import utcnow
from abonent.core import attachments, eventlog, events
from abonent.core.events import Event
from abonent.core.identity import contact_by_phone, link_phone
from abonent.core.serialize import message_event_data, row_event_data
from abonent.core.types import SURVEY_PREFIX, InboundMessage
from abonent.db.models import ChannelIdentity, Contact, Conversation, Message
from abonent.db.session import Database, HotStatement

OPEN_STATUSES = ("bot", "queued", "assigned")


@dataclass(frozen=True)
class Received:
    message_id: int
    conversation_id: int
    # The message as the bus and the client API carry it (see core.serialize).
    data: dict[str, Any]
    duplicate: bool = False
    # What was recorded with it (message received, maybe conversation started), for the bus.
    events: tuple[Event, ...] = ()
    # The contact a phone the platform vouched for was newly given to (its accounts are
    # linked next, outside this transaction: ``identity.link_accounts``).
    phone_contact: int | None = None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


# The message path runs these for every message: built once, so SQLAlchemy finds their
# compiled form in its cache instead of re-deriving a cache key each time.
_IDENTITY_BY_EXTERNAL = select(ChannelIdentity.id, ChannelIdentity.contact_id).where(
    ChannelIdentity.channel_id == bindparam("channel_id"),
    ChannelIdentity.external_id == bindparam("external_id"),
)
_OPEN_CONVERSATION = (
    select(Conversation.id)
    .where(
        Conversation.identity_id == bindparam("identity_id"),
        Conversation.status.in_(OPEN_STATUSES),
    )
    .order_by(Conversation.id.desc())
    .limit(1)
)
# A closed conversation still waiting for the satisfaction rating (see ``_survey_answer``).
_SURVEYED_CONVERSATION = (
    select(Conversation.id)
    .where(
        Conversation.identity_id == bindparam("identity_id"),
        Conversation.status == "closed",
        Conversation.survey_until > bindparam("now"),
    )
    .order_by(Conversation.id.desc())
    .limit(1)
)
# A known identity's contact and open conversation in one round trip.
_CONTACT_AND_OPEN_CONVERSATION = HotStatement(
    select(
        ChannelIdentity.contact_id,
        select(Conversation.id)
        .where(
            Conversation.identity_id == ChannelIdentity.id,
            Conversation.status.in_(OPEN_STATUSES),
        )
        .order_by(Conversation.id.desc())
        .limit(1)
        .scalar_subquery(),
    ).where(ChannelIdentity.id == bindparam("identity_id"))
)
_INSERT_CONTACT = insert(Contact).returning(Contact.id)
_INSERT_IDENTITY = insert(ChannelIdentity).returning(ChannelIdentity.id)
_INSERT_CONVERSATION = insert(Conversation).returning(Conversation.id)
_INSERT_MESSAGE = HotStatement(insert(Message).returning(Message.id))
_TOUCH_CONVERSATION = HotStatement(
    update(Conversation)
    .where(Conversation.id == bindparam("conv_id"))
    .values(
        last_message_at=bindparam("now"),
        # A customer writing to a human starts (or keeps) waiting for an answer.
        waiting_since=case(
            (
                Conversation.status.in_(("queued", "assigned")),
                func.coalesce(Conversation.waiting_since, bindparam("now")),
            ),
            else_=Conversation.waiting_since,
        ),
    )
)


async def _new_contact(conn: AsyncConnection, name: str | None, phone: str | None) -> int:
    result = await conn.execute(
        _INSERT_CONTACT, {"name": name, "phone": phone, "created_at": utcnow()}
    )
    return int(result.scalar_one())


async def _new_identity(
    conn: AsyncConnection,
    contact_id: int,
    channel_id: str,
    external_id: str,
    display_name: str | None,
    token_hash: str | None = None,
) -> int:
    result = await conn.execute(
        _INSERT_IDENTITY,
        {
            "contact_id": contact_id,
            "channel_id": channel_id,
            "external_id": external_id,
            "token_hash": token_hash,
            "display_name": display_name,
            "created_at": utcnow(),
        },
    )
    return int(result.scalar_one())


def _survey_answer(msg: InboundMessage) -> bool:
    """A rating button, or a bare 1–5 typed where the buttons could not be shown."""
    if msg.payload is not None:
        return msg.payload.startswith(SURVEY_PREFIX)
    return msg.text.strip() in ("1", "2", "3", "4", "5")


def _started(conv_id: int, contact_id: int, channel_id: str) -> Event:
    return Event(
        events.CONVERSATION_STARTED,
        {"conversation_id": conv_id, "contact_id": contact_id, "channel_id": channel_id},
    )


async def _new_conversation(
    conn: AsyncConnection, identity_id: int, contact_id: int, channel_id: str
) -> int:
    now = utcnow()
    result = await conn.execute(
        _INSERT_CONVERSATION,
        {
            "contact_id": contact_id,
            "identity_id": identity_id,
            "channel_id": channel_id,
            "status": "bot",
            "bot_state": {},
            "created_at": now,
            "updated_at": now,
        },
    )
    return int(result.scalar_one())


async def start_webchat(
    db: Database, channel_id: str, display_name: str | None = None
) -> tuple[int, str, list[Event]]:
    """A new web-chat customer: contact, identity and conversation, their bearer token,
    and the recorded ``conversation.started`` for the bus."""
    token = secrets.token_urlsafe(32)
    async with db.write() as conn:
        contact_id = await _new_contact(conn, display_name, None)
        identity_id = await _new_identity(
            conn,
            contact_id,
            channel_id,
            secrets.token_hex(16),
            display_name,
            token_hash=hash_token(token),
        )
        conv_id = await _new_conversation(conn, identity_id, contact_id, channel_id)
        recorded = await eventlog.record(conn, [_started(conv_id, contact_id, channel_id)])
    return conv_id, token, recorded


async def _conversation_for(
    conn: AsyncConnection, msg: InboundMessage, now: datetime
) -> tuple[int, int, int, bool]:
    """(identity id, contact id, conversation id, whether it is new) of the sender;
    contact and conversation are created on first contact, a new conversation after the
    last one was closed — unless the message answers the closed one's rating question."""
    if msg.identity_id is not None:
        row = (
            await _CONTACT_AND_OPEN_CONVERSATION.run(conn, {"identity_id": msg.identity_id})
        ).first()
        if row is None:
            raise LookupError(f"identity {msg.identity_id} is gone")
        identity_id, contact_id, conv_id = msg.identity_id, int(row[0]), row[1]
    else:
        identity_id, contact_id = await _identity(conn, msg)
        conv_id = (await conn.execute(_OPEN_CONVERSATION, {"identity_id": identity_id})).scalar()
    if conv_id is not None:
        return identity_id, contact_id, int(conv_id), False
    if _survey_answer(msg):
        surveyed = (
            await conn.execute(_SURVEYED_CONVERSATION, {"identity_id": identity_id, "now": now})
        ).scalar()
        if surveyed is not None:
            return identity_id, contact_id, int(surveyed), False
    conv_id = await _new_conversation(conn, identity_id, contact_id, msg.channel_id)
    return identity_id, contact_id, conv_id, True


async def _identity(conn: AsyncConnection, msg: InboundMessage) -> tuple[int, int]:
    """(identity id, contact id) of a platform user, creating the contact on first contact."""
    row = (
        await conn.execute(
            _IDENTITY_BY_EXTERNAL,
            {"channel_id": msg.channel_id, "external_id": msg.external_user_id},
        )
    ).first()
    if row is not None:
        return int(row[0]), int(row[1])
    known = await contact_by_phone(conn, msg.phone) if msg.phone else None
    contact_id = known if known is not None else await _new_contact(conn, msg.display_name, None)
    identity_id = await _new_identity(
        conn, contact_id, msg.channel_id, msg.external_user_id, msg.display_name
    )
    return identity_id, contact_id


async def _existing(db: Database, msg: InboundMessage) -> Received | None:
    if msg.external_id is None:
        return None
    async with db.session() as session:
        found = await session.scalar(
            select(Message).where(
                Message.channel_id == msg.channel_id, Message.external_id == msg.external_id
            )
        )
        if found is None:
            return None
        return Received(found.id, found.conversation_id, message_event_data(found), duplicate=True)


async def receive(db: Database, msg: InboundMessage) -> Received:
    """Store one inbound message; a redelivery returns the first copy marked ``duplicate``.

    The hot path of every customer message, so it is a handful of Core statements: the
    unique constraint, not a look-up first, catches redeliveries.
    """
    now = utcnow()
    meta: dict[str, Any] | None = None
    if msg.attachments:
        meta = {"attachments": [a.__dict__ for a in msg.attachments]}

    try:
        async with db.write() as conn:
            identity_id, contact_id, conv_id, new = await _conversation_for(conn, msg, now)
            # A phone the platform vouches for (a shared own contact, a WhatsApp number).
            phone_contact = await link_phone(conn, contact_id, msg.phone) if msg.phone else None
            if phone_contact is not None:
                meta = {**(meta or {}), "phone_vouched": True}
            values: dict[str, Any] = {
                "conversation_id": conv_id,
                "identity_id": identity_id,
                "channel_id": msg.channel_id,
                "author": "customer",
                "author_id": None,
                "text": msg.text,
                "payload": msg.payload,
                "buttons": None,
                "external_id": msg.external_id,
                "meta": meta,
                "handled": False,
                "delivery": None,
                "delivery_error": None,
                "created_at": now,
            }
            message_id = int((await _INSERT_MESSAGE.run(conn, values)).scalar_one())
            if msg.files or msg.uploads:
                values["meta"] = await _with_files(
                    conn, msg, values["meta"], message_id, conv_id, identity_id, now
                )
            await _TOUCH_CONVERSATION.run(conn, {"conv_id": conv_id, "now": now})
            data = row_event_data({"id": message_id, **values})
            facts = [_started(conv_id, contact_id, msg.channel_id)] if new else []
            facts.append(
                Event(
                    events.MESSAGE_RECEIVED,
                    {
                        "message_id": message_id,
                        "conversation_id": conv_id,
                        "channel_id": msg.channel_id,
                        "contact_id": contact_id,
                        "kind": _kind(msg),
                        **_files_fact(values["meta"]),
                    },
                    live=data,
                )
            )
            recorded = await eventlog.record(conn, facts, now)
    except IntegrityError:
        existing = await _existing(db, msg)
        if existing is None:
            raise
        return existing
    return Received(message_id, conv_id, data, events=tuple(recorded), phone_contact=phone_contact)


def _kind(msg: InboundMessage) -> str:
    """text | button | attachment: the statistics count free text apart from presses."""
    if msg.payload is not None:
        return "button"
    if (msg.attachments or msg.files or msg.uploads) and not msg.text.strip():
        return "attachment"
    return "text"


async def _with_files(
    conn: AsyncConnection,
    msg: InboundMessage,
    meta: dict[str, Any] | None,
    message_id: int,
    conv_id: int,
    identity_id: int,
    now: datetime,
) -> dict[str, Any] | None:
    """Record the message's files (uploaded already, or to fetch from the platform) and
    describe them on the message, where every view of it finds them."""
    files = await attachments.link(
        conn, msg.uploads, message_id=message_id, conversation_id=conv_id, identity_id=identity_id
    )
    files += await attachments.add_pending(
        conn,
        msg.files,
        message_id=message_id,
        conversation_id=conv_id,
        identity_id=identity_id,
        channel_id=msg.channel_id,
        now=now,
    )
    if not files:
        return meta
    meta = {**(meta or {}), "files": files}
    await conn.execute(update(Message).where(Message.id == message_id).values(meta=meta))
    return meta


def _files_fact(meta: dict[str, Any] | None) -> dict[str, Any]:
    """``attachments`` of ``message.received``: kinds and sizes, for the statistics."""
    files = (meta or {}).get("files")
    return {"attachments": attachments.event_data(files)} if files else {}
