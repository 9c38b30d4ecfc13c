from sqlalchemy import func, select

from abonent.db.models import Contact
from abonent.db.session import Database


async def test_migrated_schema_accepts_rows(db: Database) -> None:
    async with db.transaction() as session:
        session.add(Contact(name="Тест"))
    async with db.session() as session:
        assert await session.scalar(select(func.count()).select_from(Contact)) == 1
        contact = await session.scalar(select(Contact))
        assert contact is not None and contact.created_at.tzinfo is not None
