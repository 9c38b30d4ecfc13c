"""Who a campaign writes to, in which channel and how, and why the others are skipped.

The preview and the sends use this same code, so the preview shows the audience the
campaign will reach. Who may be written to at all:

* a contact with an account that matches the campaign (a debt above the threshold, due
  within N days where billing knows the date; no readings this period; any, for custom);
* on a messenger identity the customer wrote to us from (Telegram, Viber, MAX and VK
  allow a bot to write to people who started the chat with it), the most recently
  used one first: their native channel;
* WhatsApp inside the 24-hour window as free text, outside it only as the approved
  template (none configured: skipped);
* not opted out («стоп»), and not refused by the platform for good (blocked the bot)
  since the customer last wrote there.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from decimal import Decimal

from sqlalchemy import func, select

from abonent.billing.accounts import normalise_account_number
from abonent.billing.base import AccountInfo, Billing
from abonent.billing.readings import format_rub
from abonent.config import RemindersSettings
from abonent.db.models import (
    Account,
    ChannelIdentity,
    Contact,
    ContactAccount,
    Message,
    ReminderCampaign,
    ReminderConsent,
    ReminderUnreachable,
)
from abonent.db.session import Database

PAGE = 500
# WhatsApp's customer-service window: free text only this long after the customer wrote.
WHATSAPP_WINDOW = timedelta(hours=24)
# Billing look-ups in flight at once while a page is built.
BILLING_CONCURRENCY = 8
# Skip reasons, as the preview and the status show them.
OPTED_OUT = "opted_out"
NO_IDENTITY = "no_messenger_identity"
WHATSAPP_WINDOW_CLOSED = "whatsapp_outside_window_no_template"
UNREACHABLE = "blocked_or_unsubscribed"


@dataclass(frozen=True)
class Identity:
    id: int
    contact_id: int
    channel_id: str
    external_id: str
    last_wrote: datetime


@dataclass(frozen=True)
class Recipient:
    contact_id: int
    account: AccountInfo
    values: dict[str, str]
    identity: Identity | None = None
    channel_type: str | None = None
    mode: str | None = None  # text | template
    skip: str | None = None


def matches(campaign: ReminderCampaign, account: AccountInfo, today: date) -> bool:
    if campaign.min_balance is not None and account.balance <= campaign.min_balance:
        return False
    if campaign.kind == "payment_due":
        if account.balance <= 0:
            return False
        if campaign.due_within_days is not None and account.due_date is not None:
            return (account.due_date - today).days <= campaign.due_within_days
        return True
    if campaign.kind == "readings_window":
        # Readings already taken this month need no reminder.
        taken = account.readings_date
        return taken is None or (taken.year, taken.month) != (today.year, today.month)
    return True


def values_for(contact_name: str | None, account: AccountInfo) -> dict[str, str]:
    """The placeholders' values («{name}» is the holder's name and patronymic where the
    record gives three words, as Russian utilities address customers)."""
    parts = account.holder.split()
    name = " ".join(parts[1:]) if len(parts) == 3 else (contact_name or account.holder)
    due = account.due_date.strftime("%d.%m.%Y") if account.due_date else ""
    return {
        "name": name,
        "account": account.number,
        "amount": format_rub(max(account.balance, Decimal("0"))),
        "due_date": due,
        "due_date_text": f" (оплатить до {due})" if due else "",
    }


def choose(
    identities: Sequence[Identity],
    channel_types: dict[str, str],
    campaign: ReminderCampaign,
    *,
    opted_out: bool,
    unreachable: dict[int, datetime],
    template: str,
    now: datetime,
) -> tuple[Identity | None, str | None, str | None]:
    """(identity, mode, skip reason) for one contact: the most recent usable identity."""
    if opted_out:
        return None, None, OPTED_OUT
    reason = NO_IDENTITY
    for identity in sorted(identities, key=lambda i: i.last_wrote, reverse=True):
        kind = channel_types.get(identity.channel_id)
        if kind is None or kind == "webchat":
            continue
        if campaign.channel and campaign.channel not in (identity.channel_id, kind):
            continue
        refused = unreachable.get(identity.id)
        if refused is not None and refused >= identity.last_wrote:
            reason = UNREACHABLE if reason == NO_IDENTITY else reason
            continue
        if kind == "whatsapp" and now - identity.last_wrote > WHATSAPP_WINDOW:
            if template:
                return identity, "template", None
            reason = WHATSAPP_WINDOW_CLOSED if reason == NO_IDENTITY else reason
            continue
        return identity, "text", None
    return None, None, reason


class Audience:
    def __init__(
        self,
        db: Database,
        billing: Billing,
        channel_types: dict[str, str],
        settings: RemindersSettings,
        tz: tzinfo,
    ) -> None:
        self.db = db
        self.billing = billing
        self.channel_types = channel_types
        self.settings = settings
        self.tz = tz

    def template_for(self, campaign: ReminderCampaign) -> str:
        return campaign.whatsapp_template or self.settings.whatsapp_template

    async def pages(
        self, campaign: ReminderCampaign, now: datetime, after: int = 0
    ) -> AsyncIterator[list[Recipient]]:
        """The recipients by contact id, a page at a time (each fits in memory at a
        million accounts); a page may be empty when none of its contacts match."""
        while True:
            page = await self._contact_ids(after)
            if not page:
                return
            after = page[-1]
            yield await self._page(campaign, page, now)

    async def _contact_ids(self, after: int) -> list[int]:
        query = (
            select(ContactAccount.contact_id)
            .where(ContactAccount.contact_id > after)
            .group_by(ContactAccount.contact_id)
            .order_by(ContactAccount.contact_id)
            .limit(PAGE)
        )
        if self.settings.confirmed_accounts_only:
            query = query.where(ContactAccount.confirmed.is_(True))
        async with self.db.session() as session:
            return list(await session.scalars(query))

    async def _page(
        self, campaign: ReminderCampaign, contact_ids: list[int], now: datetime
    ) -> list[Recipient]:
        links_q = select(ContactAccount.contact_id, ContactAccount.account_number).where(
            ContactAccount.contact_id.in_(contact_ids)
        )
        if self.settings.confirmed_accounts_only:
            links_q = links_q.where(ContactAccount.confirmed.is_(True))
        async with self.db.session() as session:
            links = (await session.execute(links_q)).all()
            names = dict(
                (
                    await session.execute(
                        select(Contact.id, Contact.name).where(Contact.id.in_(contact_ids))
                    )
                ).all()
            )
            rows = (
                await session.execute(
                    select(
                        ChannelIdentity.id,
                        ChannelIdentity.contact_id,
                        ChannelIdentity.channel_id,
                        ChannelIdentity.external_id,
                        func.max(Message.created_at),
                    )
                    .join(Message, Message.identity_id == ChannelIdentity.id)
                    .where(
                        ChannelIdentity.contact_id.in_(contact_ids),
                        Message.author == "customer",
                    )
                    .group_by(
                        ChannelIdentity.id,
                        ChannelIdentity.contact_id,
                        ChannelIdentity.channel_id,
                        ChannelIdentity.external_id,
                    )
                )
            ).all()
            out = set(
                await session.scalars(
                    select(ReminderConsent.contact_id).where(
                        ReminderConsent.contact_id.in_(contact_ids),
                        ReminderConsent.state == "out",
                    )
                )
            )
            identity_ids = [r[0] for r in rows]
            unreachable = dict(
                (
                    await session.execute(
                        select(ReminderUnreachable.identity_id, ReminderUnreachable.at).where(
                            ReminderUnreachable.identity_id.in_(identity_ids)
                        )
                    )
                ).all()
            )
        identities: dict[int, list[Identity]] = defaultdict(list)
        for r in rows:
            identities[r[1]].append(Identity(r[0], r[1], r[2], r[3], r[4]))
        accounts = await self._accounts(sorted({n for _, n in links}))
        today = now.astimezone(self.tz).date()
        by_contact: dict[int, list[AccountInfo]] = defaultdict(list)
        for contact_id, number in links:
            account = accounts.get(number)
            if account is not None and matches(campaign, account, today):
                by_contact[contact_id].append(account)
        template = self.template_for(campaign)
        found: list[Recipient] = []
        for contact_id in contact_ids:
            candidates = by_contact.get(contact_id)
            if not candidates:
                continue  # not in this campaign's audience at all
            own = identities.get(contact_id, [])
            if campaign.channel:
                # A campaign for one channel: its audience is that channel's customers.
                own = [i for i in own if campaign.channel in self._names(i.channel_id)]
                if not own:
                    continue
            # The largest debt first: the one worth reminding of.
            account = max(candidates, key=lambda a: (a.balance, a.number))
            identity, mode, skip = choose(
                own,
                self.channel_types,
                campaign,
                opted_out=contact_id in out,
                unreachable=unreachable,
                template=template,
                now=now,
            )
            found.append(
                Recipient(
                    contact_id=contact_id,
                    account=account,
                    values=values_for(names.get(contact_id), account),
                    identity=identity,
                    channel_type=self.channel_types.get(identity.channel_id) if identity else None,
                    mode=mode,
                    skip=skip,
                )
            )
        return found

    def _names(self, channel_id: str) -> tuple[str, str]:
        return channel_id, self.channel_types.get(channel_id, "")

    async def _accounts(self, numbers: list[str]) -> dict[str, AccountInfo]:
        from abonent.billing.local import LocalBilling, account_info

        if isinstance(self.billing, LocalBilling):
            # The local tables live in our own database: one query a page instead of
            # one a account (expansion was bound by those round trips: ~330 accounts/s
            # on the 2-core machine).
            keys: dict[str, list[str]] = defaultdict(list)
            for number in numbers:
                keys[normalise_account_number(number)].append(number)
            async with self.db.session() as session:
                rows = await session.scalars(select(Account).where(Account.number.in_(list(keys))))
                return {n: account_info(row) for row in rows for n in keys[row.number]}
        gate = asyncio.Semaphore(BILLING_CONCURRENCY)

        async def one(number: str) -> AccountInfo | None:
            async with gate:
                return await self.billing.get_account(number)

        got = await asyncio.gather(*(one(n) for n in numbers))
        return {n: a for n, a in zip(numbers, got, strict=True) if a is not None}
