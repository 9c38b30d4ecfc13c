"""A contact's own word on reminders, recorded with when and how it was given."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from abonent.clock import utcnow
from abonent.db.models import ReminderConsent
from abonent.db.session import Database


async def set_state(
    db: Database, contact_id: int, state: str, how: str, channel_id: str | None
) -> None:
    """``out`` stops every campaign for this contact at once (the sender checks it before
    each send), ``in`` lets them write again. One upsert: in a bot turn it commits with
    the reply that confirms it."""
    insert = postgresql.insert if db.engine.dialect.name == "postgresql" else sqlite.insert
    values = {
        "contact_id": contact_id,
        "state": state,
        "changed_at": utcnow(),
        "how": how,
        "channel_id": channel_id,
    }
    stmt = insert(ReminderConsent).values(values)
    stmt = stmt.on_conflict_do_update(
        index_elements=["contact_id"],
        set_={k: stmt.excluded[k] for k in ("state", "changed_at", "how", "channel_id")},
    )
    async with db.write_one() as conn:
        await conn.execute(stmt)


async def state_of(db: Database, contact_id: int) -> str | None:
    async with db.session() as session:
        return await session.scalar(
            select(ReminderConsent.state).where(ReminderConsent.contact_id == contact_id)
        )
