"""The audience over the company's billing (the HTTP contract, a fake billing): one
question per account, the debt threshold and «due within N days» from the due dates
billing gives, and the same audience for the preview and the sends."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal

import pytest

from abonent.automation.reminders.audience import Audience
from abonent.billing.http import HttpBilling
from abonent.config import BillingSettings, RemindersSettings, TariffSettings
from abonent.db.models import (
    ChannelIdentity,
    Contact,
    ContactAccount,
    Conversation,
    Message,
    ReminderCampaign,
)
from abonent.db.session import Database
from fakes.billing import TOKEN, FakeBilling
from support import moscow

NOW = moscow(2026, 12, 10, 12, 0)
TZ_NAME = "Europe/Moscow"


@pytest.fixture
def billing() -> Iterator[FakeBilling]:
    with FakeBilling() as fake:
        assert isinstance(fake, FakeBilling)
        fake.add_account("3000000001", balance="1520.40", due_date="2026-12-15")  # 5 days
        fake.add_account("3000000002", balance="900.00", due_date="2026-12-30")  # 20 days
        fake.add_account("3000000003", balance="50.00", due_date="2026-12-12")  # small
        fake.add_account("3000000004", balance="700.00", due_date=None)  # no date known
        fake.add_account("3000000005", balance="-10.00", due_date="2026-12-12")  # overpaid
        yield fake


async def _seed(db: Database) -> None:
    wrote = NOW - timedelta(days=2)
    stages = [
        [Contact(id=i, name=f"Клиент {i}", created_at=wrote) for i in range(1, 6)],
        [
            ChannelIdentity(id=i, contact_id=i, channel_id="tg", external_id=str(500 + i))
            for i in range(1, 6)
        ],
        [Conversation(id=i, contact_id=i, identity_id=i, channel_id="tg") for i in range(1, 6)],
        [ContactAccount(contact_id=i, account_number=f"300000000{i}") for i in range(1, 6)],
        [
            Message(
                conversation_id=i,
                identity_id=i,
                channel_id="tg",
                author="customer",
                text="/start",
                created_at=wrote,
            )
            for i in range(1, 6)
        ],
    ]
    async with db.transaction() as session:
        for rows in stages:  # in the order of the foreign keys
            session.add_all(rows)
            await session.flush()


async def test_debts_due_within_days_come_from_the_billings_due_dates(
    db: Database, billing: FakeBilling
) -> None:
    from zoneinfo import ZoneInfo

    await _seed(db)
    http = HttpBilling(
        BillingSettings(type="http", url=billing.url, token=TOKEN, retries=0, cache_seconds=0),
        db,
        TariffSettings(single=Decimal("6.43")),
    )
    try:
        audience = Audience(db, http, {"tg": "telegram"}, RemindersSettings(), ZoneInfo(TZ_NAME))
        campaign = ReminderCampaign(
            kind="payment_due",
            min_balance=Decimal("100"),
            due_within_days=7,
            channel=None,
            whatsapp_template=None,
        )
        found = [r async for page in audience.pages(campaign, NOW) for r in page]
    finally:
        await http.close()
    # Due in 5 days, and the one whose date billing does not know; not the one due in
    # 20 days, the small debt, nor the overpaid account.
    assert sorted(r.account.number for r in found) == ["3000000001", "3000000004"]
    assert all(r.skip is None and r.mode == "text" for r in found)
    ivan = next(r for r in found if r.account.number == "3000000001")
    assert ivan.values["due_date"] == "15.12.2026"
    assert ivan.values["amount"] == "1\u00a0520,40\u00a0₽"
    asked = {r.path for r in billing.requests if r.path.startswith("/accounts/")}
    assert asked == {f"/accounts/300000000{i}" for i in range(1, 6)}  # once each
