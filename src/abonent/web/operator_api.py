"""The operators' queue over HTTP, until the workspace (a later issue) brings logins."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from abonent.clock import utcnow
from abonent.core.serialize import message_dict
from abonent.db.models import ChannelIdentity, Contact, Conversation, Message
from abonent.nlu.profanity import mask_profanity
from abonent.web.deps import OperatorAccess, RuntimeDep
from abonent.web.errors import ApiError

router = APIRouter(prefix="/api/operator/v1", tags=["operator"], dependencies=[OperatorAccess])


class QueueEntry(BaseModel):
    conversation_id: int
    position: int
    channel_id: str
    contact_id: int
    contact_name: str | None
    queued_at: str | None
    waiting_seconds: int
    last_message: dict[str, Any] | None


class Queue(BaseModel):
    length: int
    conversations: list[QueueEntry]


@router.get("/queue", response_model=Queue)
async def queue(runtime: RuntimeDep) -> dict[str, Any]:
    """Waiting conversations, longest-waiting first, with their last message."""
    now = utcnow()
    async with runtime.db.session() as session:
        rows = (
            await session.execute(
                select(Conversation, Contact.name, ChannelIdentity.display_name)
                .join(Contact, Contact.id == Conversation.contact_id)
                .join(ChannelIdentity, ChannelIdentity.id == Conversation.identity_id)
                .where(Conversation.status == "queued")
                .order_by(Conversation.queued_at, Conversation.id)
            )
        ).all()
        entries = []
        for position, (conv, name, display) in enumerate(rows, 1):
            last = await session.scalar(
                select(Message)
                .where(Message.conversation_id == conv.id)
                .order_by(Message.id.desc())
                .limit(1)
            )
            since = conv.waiting_since or conv.queued_at or conv.created_at
            entries.append(
                {
                    "conversation_id": conv.id,
                    "position": position,
                    "channel_id": conv.channel_id,
                    "contact_id": conv.contact_id,
                    "contact_name": name or display,
                    "queued_at": conv.queued_at.isoformat() if conv.queued_at else None,
                    "waiting_seconds": max(0, int((now - since).total_seconds())),
                    "last_message": _for_operator(last) if last else None,
                }
            )
    return {"length": len(entries), "conversations": entries}


@router.get("/conversations/{conversation_id}/messages")
async def conversation_messages(conversation_id: int, runtime: RuntimeDep) -> dict[str, Any]:
    async with runtime.db.session() as session:
        conv = await session.get(Conversation, conversation_id)
        if conv is None:
            raise ApiError(404, "not_found", "No such conversation.")
        rows = await session.scalars(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.id)
        )
        messages = []
        for m in rows:
            item = _for_operator(m)
            item.update(delivery=m.delivery, delivery_error=m.delivery_error, meta=m.meta)
            messages.append(item)
    return {"conversation_id": conversation_id, "status": conv.status, "messages": messages}


def _for_operator(message: Message) -> dict[str, Any]:
    """Operators see obscene words masked; the stored text stays as the customer wrote it."""
    item = message_dict(message)
    if message.author == "customer":
        # Also messages the bot never saw (the conversation was with an operator already).
        item["text"] = mask_profanity(item["text"])
    return item
