"""Contacts' linked accounts: how one person is recognised across channels and visits."""

from __future__ import annotations

from typing import Any

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


def _upsert(dialect: str, *, confirm: bool) -> Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ContactAccount)
    update: dict[str, Any] = {"last_used_at": stmt.excluded.last_used_at}
    if confirm:
        update["confirmed"] = True
    return stmt.on_conflict_do_update(index_elements=["contact_id", "account_number"], set_=update)


_UPSERT = {d: _upsert(d, confirm=False) for d in ("postgresql", "sqlite")}
_CONFIRM = {d: _upsert(d, confirm=True) for d in ("postgresql", "sqlite")}


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

    async def confirm_account(self, contact_id: int, number: str) -> None:
        """The customer confirmed the account's holder: the account is theirs, and other
        contacts who confirmed it too are the same person — one history for operators.
        Merely typing a number (a neighbour's, a typo) joins nobody."""
        statement = _CONFIRM[self.db.engine.dialect.name]
        async with self.db.write() as conn:
            await conn.execute(
                statement,
                {
                    "contact_id": contact_id,
                    "account_number": number,
                    "last_used_at": utcnow(),
                    "confirmed": True,
                },
            )
            await join_by_account(conn, contact_id, number)
