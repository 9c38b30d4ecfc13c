"""The CRM a supplier without one gets: our own contacts and billing accounts.

It answers from what the chat centre already knows (names and phones the platforms vouched
for and the accounts of those contacts, the billing's holder and phone), so the card looks
the same with or without a company CRM behind it. By account it answers from the billing
alone: an account number a visitor typed says nothing about the other visitors who typed it.

The billing's side comes through the ``Billing`` interface, so the card looks the same
whether the accounts live in our tables or in the utility's billing behind HTTP.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SQLAlchemyTimeoutError
from sqlalchemy.ext.asyncio import AsyncSession

from abonent.billing.accounts import normalise_account_number, normalise_phone
from abonent.crm.base import CrmError, CrmPerson
from abonent.db.models import Contact, ContactAccount
from abonent.db.session import Database

if TYPE_CHECKING:
    from abonent.billing.base import AccountInfo, Billing


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(v for v in values if v))


def _known(name: str | None, phones: list[str], accounts: list[str]) -> CrmPerson | None:
    """A contact row with nothing but the phone we asked about tells the operator nothing."""
    if not name and not accounts:
        return None
    return CrmPerson(name=name, phones=phones, accounts=accounts)


class LocalCrm:
    """``Crm`` over the ``contacts`` and ``contact_accounts`` tables and the billing."""

    def __init__(self, db: Database, billing: Billing | None = None) -> None:
        self.db = db
        if billing is None:
            # Imported here: the settings module imports this package's base.
            from abonent.billing.local import LocalBilling
            from abonent.config import TariffSettings

            billing = LocalBilling(db, TariffSettings())  # accounts only, no prices asked
        self.billing = billing

    async def find(self, phone: str | None, account: str | None) -> CrmPerson | None:
        from abonent.billing.base import BillingError

        try:
            async with self.db.session() as session:
                normalised = normalise_phone(phone) if phone else None
                if normalised is not None:
                    person = await self._by_phone(session, normalised)
                    if person is not None:
                        return person
                if account:
                    return await self._by_account(normalise_account_number(account))
                return None
        except BillingError as exc:
            raise CrmError(f"billing unavailable: {exc}") from exc
        except (OperationalError, SQLAlchemyTimeoutError, OSError, TimeoutError) as exc:
            raise CrmError(f"local records unavailable: {exc.__class__.__name__}") from exc

    async def close(self) -> None:
        return None

    async def _by_phone(self, session: AsyncSession, phone: str) -> CrmPerson | None:
        accounts: list[AccountInfo] = await self.billing.find_accounts_by_phone(phone)
        contacts = list(
            await session.scalars(
                select(Contact).where(Contact.phone == phone).order_by(Contact.id)
            )
        )
        if not accounts and not contacts:
            return None
        linked = await self._linked_accounts(session, [c.id for c in contacts])
        return _known(
            # The billing's holder is the legal name; a contact's is whatever the platform gave.
            name=next((a.holder for a in accounts if a.holder), None)
            or next((c.name for c in contacts if c.name), None),
            phones=[phone],
            accounts=_unique([*(a.number for a in accounts), *linked]),
        )

    async def _by_account(self, number: str) -> CrmPerson | None:
        """The billing's holder of the account, and nothing of the chat contacts who named
        it: naming a number proves nothing, so one visitor's card never shows another
        visitor's name, phone or accounts."""
        row = await self.billing.get_account(number)
        if row is None:
            return None
        return _known(name=row.holder or None, phones=_unique([row.phone]), accounts=[number])

    @staticmethod
    async def _linked_accounts(session: AsyncSession, contact_ids: list[int]) -> list[str]:
        if not contact_ids:
            return []
        numbers = await session.scalars(
            select(ContactAccount.account_number)
            .where(ContactAccount.contact_id.in_(contact_ids))
            .order_by(ContactAccount.last_used_at.desc(), ContactAccount.id.desc())
        )
        return list(numbers)
