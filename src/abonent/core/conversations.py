"""Read-side questions about conversations (the operators' queue), and the end of
conversations nobody closes: a chat with the bot that has gone quiet."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import func, select, update

from abonent.clock import utcnow
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.db.models import Conversation
from abonent.db.session import Database

log = logging.getLogger(__name__)

IDLE_BATCH = 500


async def queue_length(db: Database) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.status == "queued")
        )
        return int(count or 0)


async def close_idle(db: Database, bus: LocalBus, silent_since: datetime) -> int:
    """Close conversations with the bot silent since ``silent_since``: the customer's next
    message opens a new conversation, so "conversations" count visits, not customers.
    Conversations with operators, or waiting for them, are never closed this way."""
    last = func.coalesce(Conversation.last_message_at, Conversation.created_at)
    idle = (Conversation.status == "bot", last < silent_since)
    closed = 0
    while True:
        async with db.write() as conn:
            query = select(Conversation.id, Conversation.channel_id).where(*idle).limit(IDLE_BATCH)
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = (await conn.execute(query)).all()
            if not rows:
                break
            now = utcnow()
            await conn.execute(
                update(Conversation)
                .where(Conversation.id.in_([r[0] for r in rows]), *idle)
                .values(status="closed", closed_at=now, resolution="bot", updated_at=now)
            )
            recorded = await eventlog.record(
                conn,
                [
                    Event(
                        events.CONVERSATION_CLOSED,
                        {"conversation_id": r[0], "channel_id": r[1], "by": None, "idle": True},
                    )
                    for r in rows
                ],
                now,
            )
        await bus.publish_many(recorded)
        closed += len(rows)
        if len(rows) < IDLE_BATCH:
            break
    if closed:
        log.info("closed %d conversations with the bot that had gone quiet", closed)
    return closed
