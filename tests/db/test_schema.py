from sqlalchemy import Connection, func, inspect, select

from abonent.db.models import Contact
from abonent.db.session import Database


async def test_migrated_schema_accepts_rows(db: Database) -> None:
    async with db.transaction() as session:
        session.add(Contact(name="Тест"))
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 1
        contact = await session.scalar(select(Contact))
        assert contact is not None and contact.created_at.tzinfo is not None


async def test_event_cursor_index_only_where_readers_use_it(db: Database) -> None:
    """PostgreSQL reads the log by (transaction id, id) and needs the index; SQLite reads
    by id, where the index would only cost every event write a page."""

    def indexes(conn: Connection) -> set[str]:
        return {str(index["name"]) for index in inspect(conn).get_indexes("events")}

    async with db.engine.connect() as conn:
        names = await conn.run_sync(indexes)
    assert ("ix_events_tx_id" in names) == (not db.is_sqlite)
    assert "ix_events_occurred_at" in names
