"""The operators' queue over HTTP with a bearer token, for scripts and integrations
(people use the workspace and its session-based API, web/workspace_api.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import select

from abonent.core.serialize import message_dict
from abonent.db.models import Conversation, Message
from abonent.operators import views
from abonent.web.deps import IdPath, OperatorAccess, RuntimeDep
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
    # text (obscene words masked), author, created_at
    last_message: dict[str, Any] | None


class Queue(BaseModel):
    length: int
    conversations: list[QueueEntry]


@router.get("/queue", response_model=Queue)
async def queue(runtime: RuntimeDep) -> dict[str, Any]:
    """Waiting conversations, longest-waiting first, with their last message."""
    return await views.queue_view(runtime.db)


@router.get("/conversations/{conversation_id}/messages")
async def conversation_messages(conversation_id: IdPath, runtime: RuntimeDep) -> dict[str, Any]:
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
    # Also messages the bot never saw (the conversation was with an operator already).
    item["text"] = views.operator_text(message.author, item["text"])
    return item
