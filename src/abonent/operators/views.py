"""What the workspace shows, as plain dicts: the queue, lists, one conversation, the team.

Customer text reaches operators with obscene words masked (the stored text stays as
written); the history of a conversation is the contact's whole history across
channels, because the next operator must not ask again what was already said.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.clock import utcnow
from abonent.db.models import ChannelIdentity, Contact, Conversation, Message, User
from abonent.db.session import Database
from abonent.nlu.profanity import mask_profanity
from abonent.operators.formats import FALLBACK_INTENT, FALLBACK_TITLE, intent_title

HISTORY_LIMIT = 500


def _seconds_since(moment: datetime | None, now: datetime) -> int:
    return max(0, int((now - moment).total_seconds())) if moment else 0


def operator_text(author: str, text: str) -> str:
    """A message's text as operators see it: the customer's with obscene words masked."""
    return mask_profanity(text) if author == "customer" else text


def message_view(
    message: Message,
    author_name: str | None = None,
    titles: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """``titles`` names the knowledge base's topics, so the history says «Оплата», not
    ``payment_methods``."""
    meta = message.meta or {}
    return {
        "id": message.id,
        "conversation_id": message.conversation_id,
        "channel_id": message.channel_id,
        "author": message.author,
        "author_id": message.author_id,
        "author_name": author_name,
        "text": operator_text(message.author, message.text),
        "buttons": list(message.buttons or []),
        "created_at": message.created_at.isoformat(),
        "meta": {
            "intent": meta.get("intent"),
            # Answered from a guess it was unsure of, the bot asked to rephrase: not a topic.
            "recognised": not meta.get("fallback") and meta.get("intent") != FALLBACK_INTENT,
            "intent_title": FALLBACK_TITLE
            if meta.get("fallback")
            else intent_title(meta.get("intent"), titles),
            "confidence": meta.get("confidence"),
            "attachments": meta.get("attachments", []),
        },
        # Stored photos and documents (GET /api/workspace/v1/attachments/{id}, audited).
        "attachments": list(meta.get("files") or []),
        "delivery": message.delivery,
        "delivery_error": message.delivery_error,
    }


async def _last_messages(session: AsyncSession, conv_ids: list[int]) -> dict[int, Message]:
    if not conv_ids:
        return {}
    newest = (
        select(func.max(Message.id))
        .where(Message.conversation_id.in_(conv_ids), Message.author != "note")
        .group_by(Message.conversation_id)
    )
    rows = await session.scalars(select(Message).where(Message.id.in_(newest)))
    return {m.conversation_id: m for m in rows}


async def conversation_list(
    db: Database, *, statuses: tuple[str, ...], assignee_id: int | None = None
) -> list[dict[str, Any]]:
    """Conversations in these statuses (of one assignee), longest-waiting first."""
    now = utcnow()
    query = (
        select(Conversation, Contact.name, ChannelIdentity.display_name, User.name)
        .join(Contact, Contact.id == Conversation.contact_id)
        .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
        .outerjoin(User, User.id == Conversation.assignee_id)
        .where(Conversation.status.in_(statuses))
        .order_by(Conversation.queued_at, Conversation.id)
    )
    if assignee_id is not None:
        query = query.where(Conversation.assignee_id == assignee_id)
    async with db.session() as session:
        rows = (await session.execute(query)).all()
        last = await _last_messages(session, [r[0].id for r in rows])
    items = []
    for conv, name, display, assignee_name in rows:
        message = last.get(conv.id)
        items.append(
            {
                "conversation_id": conv.id,
                "status": conv.status,
                "channel_id": conv.channel_id,
                "contact_id": conv.contact_id,
                "contact_name": name or display,
                "group": conv.group,
                "assignee_id": conv.assignee_id,
                "assignee_name": assignee_name,
                "queued_at": conv.queued_at.isoformat() if conv.queued_at else None,
                "waiting_seconds": _seconds_since(
                    conv.waiting_since or conv.queued_at or conv.created_at, now
                )
                if conv.waiting_since or conv.status == "queued"
                else 0,
                "last_message": {
                    "text": operator_text(message.author, message.text),
                    "author": message.author,
                    "created_at": message.created_at.isoformat(),
                }
                if message
                else None,
            }
        )
    return items


async def queue_view(db: Database) -> dict[str, Any]:
    items = await conversation_list(db, statuses=("queued",))
    for position, item in enumerate(items, 1):
        item["position"] = position
    return {
        "length": len(items),
        "longest_wait_seconds": max((i["waiting_seconds"] for i in items), default=0),
        "conversations": items,
    }


async def queue_stats(db: Database) -> tuple[int, int]:
    """How many conversations wait and the longest wait in seconds (as ``queue_view``
    counts them), without loading the queue."""
    since = func.coalesce(
        Conversation.waiting_since, Conversation.queued_at, Conversation.created_at
    )
    async with db.session() as session:
        count, oldest = (
            await session.execute(
                select(func.count(Conversation.id), func.min(since)).where(
                    Conversation.status == "queued"
                )
            )
        ).one()
    return int(count), _seconds_since(oldest, utcnow())


async def conversation_view(
    db: Database, conv_id: int, titles: Callable[[str], str] | None = None
) -> dict[str, Any] | None:
    """One conversation and the contact's whole history (all channels, notes included)."""
    async with db.session() as session:
        row = (
            await session.execute(
                select(Conversation, Contact.name, ChannelIdentity.display_name)
                .join(Contact, Contact.id == Conversation.contact_id)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(Conversation.id == conv_id)
            )
        ).first()
        if row is None:
            return None
        conv, name, display = row
        assignee = await session.get(User, conv.assignee_id) if conv.assignee_id else None
        history = (
            await session.execute(
                select(Message, User.name)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .outerjoin(User, User.id == Message.author_id)
                .where(Conversation.contact_id == conv.contact_id)
                .order_by(Message.id.desc())
                .limit(HISTORY_LIMIT)
            )
        ).all()
    return {
        "conversation": {
            "id": conv.id,
            "status": conv.status,
            "channel_id": conv.channel_id,
            "contact_id": conv.contact_id,
            "contact_name": name or display,
            "assignee": {"id": assignee.id, "name": assignee.name} if assignee else None,
            "group": conv.group,
            "resolution": conv.resolution,
        },
        "messages": [message_view(m, author_name, titles) for m, author_name in reversed(history)],
    }


async def team_view(db: Database) -> list[dict[str, Any]]:
    """Every active user with status, since when, and current load."""
    load = (
        select(func.count(Conversation.id))
        .where(Conversation.assignee_id == User.id, Conversation.status == "assigned")
        .scalar_subquery()
    )
    async with db.session() as session:
        rows = (
            await session.execute(
                select(User, load.label("load")).where(User.active.is_(True)).order_by(User.name)
            )
        ).all()
    return [
        {
            "id": user.id,
            "login": user.login,
            "name": user.name,
            "role": user.role,
            "status": user.status,
            "status_since": user.status_changed_at.isoformat() if user.status_changed_at else None,
            "load": int(count or 0),
            "max_chats": user.max_chats,
            "groups": list(user.groups or []),
        }
        for user, count in rows
    ]
