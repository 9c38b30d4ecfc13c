"""One customer across channels (Chatwoot's contact ↔ contact_inbox).

A person who writes from Telegram, then WhatsApp, then the site is one contact with
several channel identities, so operators read one history. Identities are joined only
on proof of who writes: a phone the platform vouches for (a contact card shared by its
owner, a WhatsApp number). An account number proves nothing — it is printed on every
receipt, a neighbour or a typo has it, and «да» to its masked holder is a click — so
naming or confirming one never joins contacts: it stays with the conversation and with
that contact's own list (``core.contacts``). Joining two visitors on it would show each
one the other's history and accounts.

The absorbed contact row stays, empty: a bot turn running at that moment may still
hold its id, and a dangling reference would be worse than an orphan row.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.clock import utcnow
from abonent.db.models import (
    Appeal,
    ChannelIdentity,
    Contact,
    ContactAccount,
    Conversation,
)


async def merge_contacts(conn: AsyncConnection, keep: int, absorb: int) -> None:
    """Move everything of contact ``absorb`` to contact ``keep``."""
    if keep == absorb:
        return
    for model in (ChannelIdentity, Conversation, Appeal):
        await conn.execute(update(model).where(model.contact_id == absorb).values(contact_id=keep))
    kept_accounts = select(ContactAccount.account_number).where(ContactAccount.contact_id == keep)
    confirmed_by_absorbed = select(ContactAccount.account_number).where(
        ContactAccount.contact_id == absorb, ContactAccount.confirmed.is_(True)
    )
    # An account both know: the kept row stays, confirmed if either confirmed it.
    await conn.execute(
        update(ContactAccount)
        .where(
            ContactAccount.contact_id == keep,
            ContactAccount.account_number.in_(confirmed_by_absorbed.scalar_subquery()),
        )
        .values(confirmed=True)
    )
    await conn.execute(
        delete(ContactAccount).where(
            ContactAccount.contact_id == absorb,
            ContactAccount.account_number.in_(kept_accounts.scalar_subquery()),
        )
    )
    await conn.execute(
        update(ContactAccount).where(ContactAccount.contact_id == absorb).values(contact_id=keep)
    )
    absorbed = (
        await conn.execute(select(Contact.name, Contact.phone).where(Contact.id == absorb))
    ).first()
    if absorbed is not None:
        kept = (
            await conn.execute(select(Contact.name, Contact.phone).where(Contact.id == keep))
        ).first()
        if kept is not None:
            await conn.execute(
                update(Contact)
                .where(Contact.id == keep)
                .values(name=kept.name or absorbed.name, phone=kept.phone or absorbed.phone)
            )
        await conn.execute(update(Contact).where(Contact.id == absorb).values(phone=None))


async def contact_by_phone(conn: AsyncConnection, phone: str) -> int | None:
    found = await conn.execute(
        select(Contact.id).where(Contact.phone == phone).order_by(Contact.id).limit(1)
    )
    value = found.scalar()
    return None if value is None else int(value)


async def link_phone(conn: AsyncConnection, contact_id: int, phone: str) -> int | None:
    """Give the contact a phone the platform vouched for. Returns the contact that now
    has it when anything was new (the bot thanks for a shared number only then, and the
    accounts of the phone are linked to that contact: ``link_accounts``), else None.

    If another contact already has that phone, the two are one person: the older
    contact absorbs the newer.
    """
    current = (await conn.execute(select(Contact.phone).where(Contact.id == contact_id))).scalar()
    if current == phone:
        return None
    other = await contact_by_phone(conn, phone)
    if other is not None and other != contact_id:
        keep, absorb = min(other, contact_id), max(other, contact_id)
        await merge_contacts(conn, keep, absorb)
        contact_id = keep
    if current is None or other is not None:
        await conn.execute(update(Contact).where(Contact.id == contact_id).values(phone=phone))
    return contact_id


async def link_accounts(conn: AsyncConnection, contact_id: int, numbers: Sequence[str]) -> None:
    """Accounts whose billing record carries the vouched phone are this contact's, proven:
    added to their list, or marked ``confirmed`` where the contact had named them.

    The numbers come from the billing (``Billing.find_accounts_by_phone``), asked outside
    the inbox's transaction: the accounts live in another system with some backends.
    Running it twice changes nothing; a concurrent insert of the same pair is the same
    row (the upsert), so two processes linking at once do not fail either.
    """
    numbers = list(dict.fromkeys(numbers))
    if not numbers:
        return
    known = set(
        (
            await conn.execute(
                select(ContactAccount.account_number).where(
                    ContactAccount.contact_id == contact_id,
                    ContactAccount.account_number.in_(numbers),
                )
            )
        ).scalars()
    )
    if known:
        await conn.execute(
            update(ContactAccount)
            .where(
                ContactAccount.contact_id == contact_id, ContactAccount.account_number.in_(known)
            )
            .values(confirmed=True)
        )
    new = [n for n in numbers if n not in known]
    if not new:
        return
    dialect = conn.dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = utcnow()
    await conn.execute(
        insert(ContactAccount)
        .values(
            [
                {
                    "contact_id": contact_id,
                    "account_number": n,
                    "last_used_at": now,
                    "confirmed": True,
                }
                for n in new
            ]
        )
        .on_conflict_do_update(
            index_elements=["contact_id", "account_number"], set_={"confirmed": True}
        )
    )
