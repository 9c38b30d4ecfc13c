"""A second submission in one billing period replaces the first, in the local backend.

What a utility does: the period is billed by its last readings. The earlier row stays in
the history; the new one is checked and priced against the readings before the period.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from abonent.billing.base import PeriodSubmission, ReadingsAlreadySubmitted, ReadingsRejected
from abonent.billing.csv_import import HEADER, import_accounts
from abonent.billing.local import LocalBilling
from abonent.config import TariffSettings
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database

D = Decimal
TARIFFS = TariffSettings.model_validate(
    {
        "single": "6.43",
        "two_zone": {"day": "7.36", "night": "3.79"},
        "three_zone": {"peak": "8.85", "half_peak": "6.43", "night": "3.79"},
    }
)
SINGLE = "1000000001"
TWO = "1000000002"
# Readings of this month, from the company's own export (a controller's visit).
CONTROLLER = "1000000003"
ROWS = [
    f"{SINGLE},Иванов Иван,г. Энск,single,12500,,,2026-10-25,0,",
    f"{TWO},Петрова Анна,г. Энск,two_zone,15230,6120.5,,2026-10-25,0,",
    f"{CONTROLLER},Сидоров Пётр,г. Энск,single,9000,,,2026-11-05,0,",
]


@pytest.fixture
async def billing(db: Database, tmp_path: Path) -> LocalBilling:
    csv = tmp_path / "accounts.csv"
    csv.write_text("\n".join([",".join(HEADER), *ROWS]) + "\n", encoding="utf-8")
    report = await import_accounts(db, csv)
    assert report.loaded == 3 and not report.errors
    return LocalBilling(db, TARIFFS)


async def history(db: Database, number: str) -> list[ReadingsRecord]:
    async with db.session() as session:
        return list(
            await session.scalars(
                select(ReadingsRecord)
                .where(ReadingsRecord.account_number == number)
                .order_by(ReadingsRecord.id)
            )
        )


async def stored(db: Database, number: str) -> Account:
    async with db.session() as session:
        row = await session.get(Account, number)
        assert row is not None
        return row


async def test_second_submission_of_a_period_is_refused_unless_replacing(
    billing: LocalBilling, db: Database
) -> None:
    assert await billing.period_submission(SINGLE, date(2026, 11, 20)) is None
    await billing.submit_readings(SINGLE, [D("12800")], date(2026, 11, 20), source="bot")
    earlier = PeriodSubmission(
        taken_on=date(2026, 11, 20),
        values=(D("12800"),),
        base=(D("12500"),),
        base_date=date(2026, 10, 25),
    )
    assert await billing.period_submission(SINGLE, date(2026, 11, 22)) == earlier
    with pytest.raises(ReadingsAlreadySubmitted) as caught:
        await billing.submit_readings(SINGLE, [D("12900")], date(2026, 11, 22), source="bot")
    assert caught.value.earlier == earlier
    assert len(await history(db, SINGLE)) == 2  # the import's and the first submission
    assert (await stored(db, SINGLE)).t1 == D("12800")


async def test_replacement_counts_from_before_the_period_and_keeps_the_history(
    billing: LocalBilling, db: Database
) -> None:
    await billing.submit_readings(SINGLE, [D("12800")], date(2026, 11, 20), source="bot")
    # A typo corrected: lower than the first submission, above last month's readings.
    result = await billing.submit_readings(
        SINGLE, [D("12580")], date(2026, 11, 20), source="bot", replace=True
    )
    assert result.replaced is not None and result.replaced.values == (D("12800"),)
    assert result.previous_date == date(2026, 10, 25)
    assert result.total_consumption == D("80")
    assert result.total_cost == D("514.40")
    row = await stored(db, SINGLE)
    assert (row.t1, row.readings_date) == (D("12580"), date(2026, 11, 20))
    rows = await history(db, SINGLE)
    assert [(r.source, r.t1, r.consumption) for r in rows] == [
        ("import", D("12500"), None),
        ("bot", D("12800"), {"single": "300"}),
        ("bot", D("12580"), {"single": "80"}),
    ]
    # A third one still replaces against last month, not against the replaced rows.
    third = await billing.submit_readings(
        SINGLE, [D("12600")], date(2026, 11, 24), source="operator", replace=True
    )
    assert third.replaced is not None and third.replaced.values == (D("12580"),)
    assert third.total_consumption == D("100")
    # Next month is a period of its own: counted from the period's last readings.
    december = await billing.submit_readings(SINGLE, [D("12750")], date(2026, 12, 20), source="bot")
    assert december.replaced is None
    assert (december.previous_date, december.total_consumption) == (date(2026, 11, 24), D("150"))


async def test_replacement_below_last_periods_readings_is_rejected(
    billing: LocalBilling, db: Database
) -> None:
    await billing.submit_readings(TWO, [D("15400"), D("6200")], date(2026, 11, 20), source="bot")
    with pytest.raises(ReadingsRejected) as caught:
        await billing.submit_readings(
            TWO, [D("15300"), D("6100")], date(2026, 11, 21), source="bot", replace=True
        )
    assert caught.value.zone == "night"
    assert caught.value.reason == (
        "показание «ночь» (6\u00a0100) меньше последнего принятого (6\u00a0120,5)"
    )
    assert ((await stored(db, TWO)).t1, (await stored(db, TWO)).t2) == (D("15400"), D("6200"))
    assert len(await history(db, TWO)) == 2


async def test_the_companys_own_readings_are_not_replaced(
    billing: LocalBilling, db: Database
) -> None:
    """A controller's reading of this month, imported: the customer's counts from it."""
    assert await billing.period_submission(CONTROLLER, date(2026, 11, 20)) is None
    result = await billing.submit_readings(
        CONTROLLER, [D("9100")], date(2026, 11, 20), source="bot"
    )
    assert result.replaced is None
    assert (result.previous_date, result.total_consumption) == (date(2026, 11, 5), D("100"))


async def test_account_loaded_without_history_replaces_from_the_stored_consumption(
    db: Database,
) -> None:
    async with db.transaction() as session:
        session.add(
            Account(
                number="1000000009",
                holder="Без Истории",
                address="г. Энск",
                plan="single",
                t1=D("500"),
                readings_date=date(2026, 10, 25),
                balance=D("0"),
            )
        )
    billing = LocalBilling(db, TARIFFS)
    await billing.submit_readings("1000000009", [D("700")], date(2026, 11, 20), source="bot")
    earlier = await billing.period_submission("1000000009", date(2026, 11, 21))
    assert earlier is not None and earlier.base == (D("500"),) and earlier.base_date is None
    result = await billing.submit_readings(
        "1000000009", [D("650")], date(2026, 11, 21), source="bot", replace=True
    )
    assert result.total_consumption == D("150")


async def test_unconfigured_prices_store_no_cost(db: Database, tmp_path: Path) -> None:
    csv = tmp_path / "accounts.csv"
    csv.write_text("\n".join([",".join(HEADER), ROWS[0]]) + "\n", encoding="utf-8")
    await import_accounts(db, csv)
    billing = LocalBilling(db, TariffSettings())
    result = await billing.submit_readings(SINGLE, [D("12600")], date(2026, 11, 20), source="bot")
    assert result.total_consumption == D("100")
    assert result.total_cost is None and result.zones[0].tariff is None
    (_, record) = await history(db, SINGLE)
    assert record.consumption == {"single": "100"} and record.cost is None
