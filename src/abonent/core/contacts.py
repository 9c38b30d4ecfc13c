"""Contacts' linked accounts: how one person is recognised across channels and visits."""

from __future__ import annotations

from sqlalchemy import select

from abonent.clock import utcnow
from abonent.db.models import ContactAccount
from abonent.db.session import Database


class ContactDirectory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def known_accounts(self, contact_id: int, limit: int = 3) -> list[str]:
        """Accounts this contact used before, the most recent first."""
        async with self.db.session() as session:
            rows = await session.scalars(
                select(ContactAccount.account_number)
                .where(ContactAccount.contact_id == contact_id)
                .order_by(ContactAccount.last_used_at.desc())
                .limit(limit)
            )
            return list(rows)

    async def link_account(self, contact_id: int, number: str) -> None:
        async with self.db.transaction() as session:
            link = await session.scalar(
                select(ContactAccount).where(
                    ContactAccount.contact_id == contact_id,
                    ContactAccount.account_number == number,
                )
            )
            if link is None:
                session.add(ContactAccount(contact_id=contact_id, account_number=number))
            else:
                link.last_used_at = utcnow()
