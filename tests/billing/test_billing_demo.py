"""The bundled demo accounts load cleanly, and re-seeding keeps what the demo chat changed."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import func, select

from abonent.billing.local import LocalBilling
from abonent.config import TariffSettings
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database
from abonent.demo import DEMO_ACCOUNTS_CSV, seed_demo_accounts

# The demo company's prices: TariffSettings has none of its own.
TARIFFS = TariffSettings.model_validate(
    {
        "single": "6.43",
        "two_zone": {"day": "7.36", "night": "3.79"},
        "three_zone": {"peak": "8.85", "half_peak": "6.43", "night": "3.79"},
    }
)


async def test_seed_demo_accounts(db: Database) -> None:
    shown = await seed_demo_accounts(db)
    assert [a.plan for a in shown] == ["single", "two_zone", "three_zone"]
    assert all(len(a.number) == 10 and a.number.isdigit() for a in shown)
    async with db.session() as session:
        rows = list(await session.scalars(select(Account)))
    assert len(rows) == len(DEMO_ACCOUNTS_CSV.read_text(encoding="utf-8").splitlines()) - 1
    assert {r.plan for r in rows} == {"single", "two_zone", "three_zone"}
    balances = [r.balance for r in rows]
    assert any(b > 0 for b in balances)
    assert sum(1 for b in balances if b < 0) == 1
    assert sum(1 for b in balances if b == 0) == 1
    assert all(r.readings_date is not None for r in rows)


async def test_reseeding_keeps_submitted_readings(db: Database) -> None:
    (single, *_) = await seed_demo_accounts(db)
    billing = LocalBilling(db, TARIFFS)
    new = single.last_readings[0] + Decimal("150")
    await billing.submit_readings(single.number, [new], date(2026, 11, 22), source="bot")
    async with db.session() as session:
        history_before = await session.scalar(select(func.count()).select_from(ReadingsRecord))

    await seed_demo_accounts(db)
    account = await billing.get_account(single.number)
    assert account is not None
    assert account.last_readings == (new,)
    assert account.readings_date == date(2026, 11, 22)
    async with db.session() as session:
        history_after = await session.scalar(select(func.count()).select_from(ReadingsRecord))
    assert history_after == history_before
