"""Inbound storage: contact, identity, conversation and message in one transaction.

A retried delivery carries the platform's id again; the unique constraint on
(channel, external id) turns it into a no-op however the retries race.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.clock import utcnow
from abonent.core.serialize import message_event_data, row_event_data
from abonent.core.types import InboundMessage
from abonent.db.models import ChannelIdentity, Contact, Conversation, Message
from abonent.db.session import Database

OPEN_STATUSES = ("bot", "queued", "assigned")


@dataclass(frozen=True)
class Received:
    message_id: int
    conversation_id: int
    # The message as the bus and the client API carry it (see core.serialize).
    data: dict[str, Any]
    duplicate: bool = False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def start_webchat(
    db: Database, channel_id: str, display_name: str | None = None
) -> tuple[int, str]:
    """A new web-chat customer: contact, identity and conversation, and their bearer token."""
    token = secrets.token_urlsafe(32)
    async with db.transaction() as session:
        contact = Contact(name=display_name)
        session.add(contact)
        await session.flush()
        identity = ChannelIdentity(
            contact_id=contact.id,
            channel_id=channel_id,
            external_id=secrets.token_hex(16),
            token_hash=hash_token(token),
            display_name=display_name,
        )
        session.add(identity)
        await session.flush()
        conv_id = await _open_conversation_id(session, identity.id, contact.id, channel_id)
    return conv_id, token


async def _identity(session: AsyncSession, msg: InboundMessage) -> tuple[int, int]:
    """(identity id, contact id) of the sender, creating the contact on first contact."""
    if msg.identity_id is not None:
        contact_id = await session.scalar(
            select(ChannelIdentity.contact_id).where(ChannelIdentity.id == msg.identity_id)
        )
        if contact_id is None:
            raise LookupError(f"identity {msg.identity_id} is gone")
        return msg.identity_id, contact_id
    row = (
        await session.execute(
            select(ChannelIdentity.id, ChannelIdentity.contact_id).where(
                ChannelIdentity.channel_id == msg.channel_id,
                ChannelIdentity.external_id == msg.external_user_id,
            )
        )
    ).first()
    if row is not None:
        return row[0], row[1]
    contact = Contact(name=msg.display_name, phone=msg.phone)
    session.add(contact)
    await session.flush()
    identity = ChannelIdentity(
        contact_id=contact.id,
        channel_id=msg.channel_id,
        external_id=msg.external_user_id,
        display_name=msg.display_name,
    )
    session.add(identity)
    await session.flush()
    return identity.id, contact.id


async def _open_conversation_id(
    session: AsyncSession, identity_id: int, contact_id: int, channel_id: str
) -> int:
    conv_id = await session.scalar(
        select(Conversation.id)
        .where(Conversation.identity_id == identity_id, Conversation.status.in_(OPEN_STATUSES))
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    if conv_id is not None:
        return int(conv_id)
    conv = Conversation(
        contact_id=contact_id,
        identity_id=identity_id,
        channel_id=channel_id,
        status="bot",
        bot_state={},
    )
    session.add(conv)
    await session.flush()
    return conv.id


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
    meta = {"attachments": [a.__dict__ for a in msg.attachments]} if msg.attachments else None
    try:
        async with db.transaction() as session:
            identity_id, contact_id = await _identity(session, msg)
            conv_id = await _open_conversation_id(session, identity_id, contact_id, msg.channel_id)
            values: dict[str, Any] = {
                "conversation_id": conv_id,
                "identity_id": identity_id,
                "channel_id": msg.channel_id,
                "author": "customer",
                "text": msg.text,
                "payload": msg.payload,
                "buttons": None,
                "external_id": msg.external_id,
                "meta": meta,
                "handled": False,
                "created_at": now,
            }
            message_id = await session.scalar(
                insert(Message).values(**values).returning(Message.id)
            )
            await session.execute(
                update(Conversation)
                .where(Conversation.id == conv_id)
                .values(
                    last_message_at=now,
                    # A customer writing to a human starts (or keeps) waiting for an answer.
                    waiting_since=case(
                        (
                            Conversation.status.in_(("queued", "assigned")),
                            func.coalesce(Conversation.waiting_since, now),
                        ),
                        else_=Conversation.waiting_since,
                    ),
                )
            )
    except IntegrityError:
        existing = await _existing(db, msg)
        if existing is None:
            raise
        return existing
    assert message_id is not None
    return Received(message_id, conv_id, row_event_data({"id": message_id, **values}))
