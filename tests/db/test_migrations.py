"""The migrations produce exactly the schema the models describe, on either database."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from abonent.db.migrate import schema_filter
from abonent.db.models import Base
from abonent.db.session import Database


def _diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(
        conn, opts={"include_object": schema_filter(conn.dialect.name)}
    )
    return list(compare_metadata(context, Base.metadata))


async def test_models_and_migrations_agree(db: Database) -> None:
    async with db.engine.connect() as conn:
        assert await conn.run_sync(_diff) == []
