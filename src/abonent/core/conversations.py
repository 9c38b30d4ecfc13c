"""Read-side questions about conversations: the operators' queue."""

from __future__ import annotations

from sqlalchemy import func, select

from abonent.db.models import Conversation
from abonent.db.session import Database


async def queue_length(db: Database) -> int:
    async with db.session() as session:
        count = await session.scalar(
            select(func.count()).select_from(Conversation).where(Conversation.status == "queued")
        )
        return int(count or 0)
