"""Inbound storage: contact, identity, conversation and message in one transaction.

A retried delivery carries the platform's id again; the unique constraint on
(channel, external id) turns it into a no-op however the retries race.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.clock import utcnow
from abonent.core.types import InboundMessage
from abonent.db.models import ChannelIdentity, Contact, Conversation, Message
from abonent.db.session import Database

OPEN_STATUSES = ("bot", "queued", "assigned")


@dataclass(frozen=True)
class Received:
    message: Message
    conversation: Conversation
    duplicate: bool = False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def open_conversation(session: AsyncSession, identity: ChannelIdentity) -> Conversation:
    """The identity's current conversation, or a new one in the bot's hands."""
    conv = await session.scalar(
        select(Conversation)
        .where(Conversation.identity_id == identity.id, Conversation.status.in_(OPEN_STATUSES))
        .order_by(Conversation.id.desc())
        .limit(1)
    )
    if conv is None:
        conv = Conversation(
            contact_id=identity.contact_id,
            identity_id=identity.id,
            channel_id=identity.channel_id,
            status="bot",
            bot_state={},
        )
        session.add(conv)
        await session.flush()
    return conv


async def start_webchat(
    db: Database, channel_id: str, display_name: str | None = None
) -> tuple[Conversation, str]:
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
        conv = await open_conversation(session, identity)
    return conv, token


async def _identity(session: AsyncSession, msg: InboundMessage) -> ChannelIdentity:
    if msg.identity_id is not None:
        identity = await session.get(ChannelIdentity, msg.identity_id)
        if identity is None:
            raise LookupError(f"identity {msg.identity_id} is gone")
        return identity
    identity = await session.scalar(
        select(ChannelIdentity).where(
            ChannelIdentity.channel_id == msg.channel_id,
            ChannelIdentity.external_id == msg.external_user_id,
        )
    )
    if identity is None:
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
    return identity


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
        conv = await session.get(Conversation, found.conversation_id)
        assert conv is not None
        return Received(found, conv, duplicate=True)


async def receive(db: Database, msg: InboundMessage) -> Received:
    """Store one inbound message; a redelivery returns the first copy marked ``duplicate``."""
    existing = await _existing(db, msg)
    if existing is not None:
        return existing
    now = utcnow()
    try:
        async with db.transaction() as session:
            identity = await _identity(session, msg)
            conv = await open_conversation(session, identity)
            meta = (
                {"attachments": [a.__dict__ for a in msg.attachments]} if msg.attachments else None
            )
            message = Message(
                conversation_id=conv.id,
                identity_id=identity.id,
                channel_id=msg.channel_id,
                author="customer",
                text=msg.text,
                payload=msg.payload,
                external_id=msg.external_id,
                meta=meta,
                handled=False,
                created_at=now,
            )
            session.add(message)
            conv.last_message_at = now
            if conv.status in ("queued", "assigned") and conv.waiting_since is None:
                conv.waiting_since = now
            await session.flush()
    except IntegrityError:
        existing = await _existing(db, msg)
        if existing is None:
            raise
        return existing
    return Received(message, conv)
