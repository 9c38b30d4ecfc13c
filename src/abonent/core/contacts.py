"""Contacts' linked accounts: how one person is recognised across channels and visits."""

from __future__ import annotations

from sqlalchemy import Executable, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from abonent.clock import utcnow
from abonent.core.identity import join_by_account
from abonent.db.models import ContactAccount
from abonent.db.session import Database

_KNOWN = (
    select(ContactAccount.account_number)
    .where(ContactAccount.contact_id == bindparam("contact_id"))
    .order_by(ContactAccount.last_used_at.desc(), ContactAccount.id.desc())
    .limit(bindparam("limit"))
)


def _upsert(dialect: str) -> Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ContactAccount)
    return stmt.on_conflict_do_update(
        index_elements=["contact_id", "account_number"],
        set_={"last_used_at": stmt.excluded.last_used_at},
    )


_UPSERT = {"postgresql": _upsert("postgresql"), "sqlite": _upsert("sqlite")}


class ContactDirectory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def known_accounts(self, contact_id: int, limit: int = 3) -> list[str]:
        """Accounts this contact used before, the most recent first."""
        async with self.db.read() as conn:
            rows = await conn.execute(_KNOWN, {"contact_id": contact_id, "limit": limit})
            return [r[0] for r in rows]

    async def link_account(self, contact_id: int, number: str) -> None:
        """Remember (or refresh) that this contact uses this account: one upsert."""
        statement = _UPSERT[self.db.engine.dialect.name]
        async with self.db.write() as conn:
            await conn.execute(
                statement,
                {"contact_id": contact_id, "account_number": number, "last_used_at": utcnow()},
            )
            # The same account named from another channel: one person, one history.
            await join_by_account(conn, contact_id, number)
