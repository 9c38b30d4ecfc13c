"""Bring the schema up to date at start (``serve``, ``demo``) or on demand.

Several server processes may start at once on PostgreSQL, so the upgrade runs under an
advisory lock: the first process migrates, the others wait and find nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x61626F6E  # "abon"


def schema_filter(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object`` for ``dialect``: an index the models create only on
    another database (``Index.ddl_if(dialect=...)``) is not expected here. (Alembic's
    comparison of models and schema does not look at ``ddl_if`` itself.)"""

    def include(obj: Any, _name: str | None, kind: str, _reflected: bool, _other: Any) -> bool:
        if kind != "index":
            return True
        condition = getattr(obj, "_ddl_if", None)
        wanted = getattr(condition, "dialect", None)
        if wanted is None:
            return True
        return dialect in ((wanted,) if isinstance(wanted, str) else tuple(wanted))

    return include


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_KEY})
    command.upgrade(alembic_config(connection), "head")


async def upgrade(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
