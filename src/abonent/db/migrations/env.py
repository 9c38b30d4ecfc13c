"""Alembic environment: runs on a connection handed over by ``abonent.db.migrate``."""

from __future__ import annotations

from alembic import context

from abonent.db.migrate import schema_filter
from abonent.db.models import Base

config = context.config
target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=schema_filter(connection.dialect.name),
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit(
        "offline migrations are not supported; run `abonent serve` or `abonent migrate`"
    )
run_migrations_online()
