"""The learning loop's raw material: customer messages the consultant did not
understand, or understood with little confidence. They are the messages themselves (the
bot keeps what it recognised on each one), so nothing extra is stored."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import or_, select

from abonent.clock import utcnow
from abonent.db.models import Message
from abonent.db.session import Database

MAX_TEXTS = 2000


async def recent_misses(db: Database, days: int = 30, below: float = 0.6) -> list[str]:
    """Texts of the last ``days`` that fell back or scored under ``below``, newest first."""
    since = utcnow() - timedelta(days=days)
    intent = Message.meta["intent"].as_string()
    confidence = Message.meta["confidence"].as_float()
    async with db.session() as session:
        rows = await session.scalars(
            select(Message.text)
            .where(
                Message.author == "customer",
                Message.created_at >= since,
                intent.is_not(None),
                or_(intent == "fallback", confidence < below),
            )
            .order_by(Message.id.desc())
            .limit(MAX_TEXTS)
        )
        return [t for t in rows if t]
