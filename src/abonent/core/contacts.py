"""Contacts' own lists of accounts: what the bot offers a returning customer to pick.

A contact's list holds what that contact named (and, marked ``confirmed``, the accounts
whose billing record carries a phone the platform vouched for as theirs). It is never
a reason to join contacts: see ``core.identity`` for what is proof of who writes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Executable, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

from abonent.clock import utcnow
from abonent.db.models import ContactAccount, Message
from abonent.db.session import Database, HotStatement

_KNOWN = HotStatement(
    select(ContactAccount.account_number)
    .where(ContactAccount.contact_id == bindparam("contact_id"))
    .order_by(ContactAccount.last_used_at.desc(), ContactAccount.id.desc())
    .limit(bindparam("limit"))
)


def _upsert(dialect: str) -> Executable:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(ContactAccount)
    update: dict[str, Any] = {"last_used_at": stmt.excluded.last_used_at}
    return stmt.on_conflict_do_update(index_elements=["contact_id", "account_number"], set_=update)


_UPSERT = {d: HotStatement(_upsert(d)) for d in ("postgresql", "sqlite")}
_NAMED_IN = (
    select(Message.meta)
    .where(
        Message.conversation_id == bindparam("conversation_id"),
        Message.author == "customer",
        Message.handled.is_(True),
    )
    .order_by(Message.id.desc())
)


class ContactDirectory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def known_accounts(self, contact_id: int, limit: int = 3) -> list[str]:
        """Accounts this contact used before, the most recent first."""
        async with self.db.read() as conn:
            result = await _KNOWN.run(conn, {"contact_id": contact_id, "limit": limit})
            return [r[0] for r in result.rows]

    async def link_account(self, contact_id: int, number: str) -> None:
        """Remember (or refresh) that this contact uses this account: one upsert, which
        cannot be refused, so in a turn it needs no savepoint of its own."""
        statement = _UPSERT[self.db.engine.dialect.name]
        async with self.db.write_one() as conn:
            await statement.run(
                conn, {"contact_id": contact_id, "account_number": number, "last_used_at": utcnow()}
            )

    async def confirm_account(self, contact_id: int, number: str) -> None:
        """The customer said «да» to the account's masked holder. Anyone who has the
        receipt can say it, so it is recorded like naming the number — this contact's
        own list, the most recent — and joins nobody: another visitor who named the same
        number stays another contact, with their own history and accounts."""
        await self.link_account(contact_id, number)

    async def conversation_accounts(self, conversation_id: int) -> list[str]:
        """Accounts the customer named in this conversation, the most recent first (the
        bot keeps each on the customer's message that named it, ``meta.account``)."""
        async with self.db.read() as conn:
            metas = (await conn.execute(_NAMED_IN, {"conversation_id": conversation_id})).scalars()
            named = (meta.get("account") for meta in metas if isinstance(meta, dict))
            return list(dict.fromkeys(str(n) for n in named if n))
