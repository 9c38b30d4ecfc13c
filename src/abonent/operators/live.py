"""Live updates for open workspace pages, fed by the bus (Redis across processes).

Each process keeps a small map of the conversations the desk shows (queued or
assigned → whose), maintained from the same events it forwards, so deciding who
receives a customer's message costs a dict look-up instead of a query: an operator
gets the messages of waiting conversations and of their own; supervisors get all.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from abonent.core import events
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.db.models import Conversation
from abonent.db.session import Database
from abonent.operators.views import operator_text

log = logging.getLogger(__name__)

_FORWARDED_TO_ALL = {
    events.CONVERSATION_QUEUED,
    events.CONVERSATION_ASSIGNED,
    events.CONVERSATION_TRANSFERRED,
    events.CONVERSATION_RETURNED_TO_BOT,
    events.CONVERSATION_LEFT_QUEUE,
    events.CONVERSATION_CLOSED,
    events.OPERATOR_STATUS,
}
_PER_CONVERSATION = {
    events.MESSAGE_RECEIVED,
    events.MESSAGE_SENT,
    events.NOTE_ADDED,
    events.MESSAGE_DELIVERED,
    events.MESSAGE_FAILED,
}
_GONE_FROM_DESK = {
    events.CONVERSATION_CLOSED,
    events.CONVERSATION_RETURNED_TO_BOT,
    events.CONVERSATION_LEFT_QUEUE,
}
_UNSET = object()


@dataclass(eq=False)
class Subscriber:
    user_id: int
    supervises: bool
    queue: asyncio.Queue[dict[str, Any]] = field(default_factory=lambda: asyncio.Queue(1000))


class DeskLive:
    def __init__(self, db: Database, bus: LocalBus) -> None:
        self.db = db
        # conversation id → assignee (None while it waits in the queue)
        self.owner: dict[int, int | None] = {}
        self.subscribers: set[Subscriber] = set()
        self._unsubscribe = bus.subscribe(self.on_event, _FORWARDED_TO_ALL | _PER_CONVERSATION)

    async def load(self) -> None:
        async with self.db.session() as session:
            rows = await session.execute(
                select(Conversation.id, Conversation.assignee_id).where(
                    Conversation.status.in_(("queued", "assigned"))
                )
            )
            self.owner = {int(r[0]): r[1] for r in rows}

    def stop(self) -> None:
        self._unsubscribe()

    def on_event(self, event: Event) -> None:
        data = event.data
        conv = data.get("conversation_id")
        if isinstance(conv, int):
            if event.type == events.CONVERSATION_QUEUED:
                self.owner[conv] = None
            elif event.type in (events.CONVERSATION_ASSIGNED, events.CONVERSATION_TRANSFERRED):
                self.owner[conv] = data.get("assignee_id")
            elif event.type in _GONE_FROM_DESK:
                self.owner.pop(conv, None)
        if not self.subscribers:
            return
        if event.type in _PER_CONVERSATION:
            owner = self.owner.get(conv, _UNSET) if isinstance(conv, int) else _UNSET
            if owner is _UNSET:
                return  # a conversation with the bot: not the desk's business
            payload = {"type": event.type, "data": _for_operators(data)}
            for sub in list(self.subscribers):
                if sub.supervises or owner is None or owner == sub.user_id:
                    _offer(sub, payload)
            return
        payload = {"type": event.type, "data": data}
        for sub in list(self.subscribers):
            _offer(sub, payload)


def _for_operators(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("author") == "customer" and isinstance(data.get("text"), str):
        return {**data, "text": operator_text("customer", data["text"])}
    return data


def _offer(sub: Subscriber, payload: dict[str, Any]) -> None:
    try:
        sub.queue.put_nowait(payload)
    except asyncio.QueueFull:
        log.warning("workspace socket of user %s is not reading; event dropped", sub.user_id)
