"""LocalBilling over the accounts tables: what is stored, and what is refused without a trace."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import select

from abonent.billing.base import (
    Billing,
    BillingError,
    ReadingsAlreadySubmitted,
    ReadingsRejected,
)
from abonent.billing.local import LocalBilling
from abonent.config import TariffSettings
from abonent.db.models import Account, ReadingsRecord
from abonent.db.session import Database

# The demo company's prices: TariffSettings has none of its own.
TARIFFS = TariffSettings.model_validate(
    {
        "single": "6.43",
        "two_zone": {"day": "7.36", "night": "3.79"},
        "three_zone": {"peak": "8.85", "half_peak": "6.43", "night": "3.79"},
    }
)

D = Decimal


async def add_accounts(db: Database) -> None:
    async with db.transaction() as session:
        session.add_all(
            [
                Account(
                    number="1000234561",
                    holder="Иванов Иван Иванович",
                    address="г. Энск, ул. Ленина, д. 15, кв. 7",
                    plan="single",
                    t1=D("12500"),
                    readings_date=date(2026, 10, 25),
                    balance=D("1234.56"),
                    phone="+79123456789",
                ),
                Account(
                    number="1000234585",
                    holder="Сидоров Алексей Петрович",
                    address="г. Энск, пр. Мира, д. 42, кв. 118",
                    plan="two_zone",
                    t1=D("15230"),
                    t2=D("6120.1"),
                    readings_date=date(2026, 10, 25),
                    balance=D("-350.00"),
                    phone="+79123456789",
                ),
                Account(
                    number="1000234592",
                    holder="Кузнецова Елена Викторовна",
                    address="г. Энск, ул. Заречная, д. 8",
                    plan="three_zone",
                    t1=D("4215"),
                    t2=D("6130"),
                    t3=D("5342"),
                    readings_date=date(2026, 10, 23),
                    balance=D("0"),
                ),
                Account(
                    number="1000234600",
                    holder="Новый Абонент",
                    address="г. Энск, ул. Новая, д. 1",
                    plan="two_zone",
                    balance=D("0"),
                ),
            ]
        )


@pytest.fixture
async def billing(db: Database) -> LocalBilling:
    await add_accounts(db)
    return LocalBilling(db, TARIFFS)


async def history(db: Database, number: str) -> list[ReadingsRecord]:
    async with db.session() as session:
        rows = await session.scalars(
            select(ReadingsRecord)
            .where(ReadingsRecord.account_number == number)
            .order_by(ReadingsRecord.id)
        )
        return list(rows)


async def stored(db: Database, number: str) -> Account:
    async with db.session() as session:
        row = await session.get(Account, number)
        assert row is not None
        return row


def test_local_billing_is_a_billing(db: Database) -> None:
    backend: Billing = LocalBilling(db, TARIFFS)
    assert backend is not None


async def test_get_account(billing: LocalBilling) -> None:
    acc = await billing.get_account("1000234585")
    assert acc is not None
    assert acc.plan == "two_zone"
    assert acc.zones == ("day", "night")
    assert acc.last_readings == (D("15230.000"), D("6120.100"))
    assert acc.readings_date == date(2026, 10, 25)
    assert acc.balance == D("-350.00")
    assert acc.phone == "+79123456789"
    # Typed forms of the number are normalised.
    again = await billing.get_account("л/с 1000-234-585")
    assert again == acc
    assert await billing.get_account("9999999999") is None


async def test_account_without_readings(billing: LocalBilling) -> None:
    acc = await billing.get_account("1000234600")
    assert acc is not None
    assert acc.last_readings == (D("0"), D("0"))
    assert acc.readings_date is None


async def test_find_accounts_by_phone(billing: LocalBilling) -> None:
    found = await billing.find_accounts_by_phone("8 (912) 345-67-89")
    assert [a.number for a in found] == ["1000234561", "1000234585"]
    assert await billing.find_accounts_by_phone("+79990000000") == []
    assert await billing.find_accounts_by_phone("не телефон") == []


async def test_submit_single(billing: LocalBilling, db: Database) -> None:
    result = await billing.submit_readings(
        "1000234561", [D("12745.5")], date(2026, 11, 22), source="bot"
    )
    assert result.previous_date == date(2026, 10, 25)
    assert result.total_consumption == D("245.5")
    assert result.total_cost == D("1578.57")
    (zone,) = result.zones
    assert (zone.previous, zone.current, zone.tariff, zone.cost) == (
        D("12500"),
        D("12745.5"),
        D("6.43"),
        D("1578.57"),
    )
    assert result.account.last_readings == (D("12745.5"),)
    assert result.account.readings_date == date(2026, 11, 22)

    row = await stored(db, "1000234561")
    assert (row.t1, row.t2, row.t3) == (D("12745.5"), None, None)
    assert row.readings_date == date(2026, 11, 22)
    assert row.balance == D("1234.56")  # readings do not change the balance
    (record,) = await history(db, "1000234561")
    assert record.t1 == D("12745.5") and record.t2 is None
    assert record.taken_on == date(2026, 11, 22)
    assert record.source == "bot"
    assert record.consumption == {"single": "245.5"}
    assert record.cost == D("1578.57")
    assert record.conversation_id is None


async def test_submit_three_zone(billing: LocalBilling, db: Database) -> None:
    result = await billing.submit_readings(
        "1000234592",
        [D("4300.5"), D("6250"), D("5437.3")],
        date(2026, 11, 22),
        source="operator",
    )
    assert [z.cost for z in result.zones] == [D("756.68"), D("771.60"), D("361.19")]
    assert result.total_cost == D("1889.47")
    row = await stored(db, "1000234592")
    assert (row.t1, row.t2, row.t3) == (D("4300.5"), D("6250"), D("5437.3"))
    (record,) = await history(db, "1000234592")
    assert record.consumption == {"peak": "85.5", "half_peak": "120", "night": "95.3"}
    assert record.cost == D("1889.47")
    assert record.source == "operator"


async def test_submit_in_the_next_period_prices_from_the_last_readings(
    billing: LocalBilling, db: Database
) -> None:
    await billing.submit_readings("1000234561", [D("12600")], date(2026, 11, 20), source="bot")
    second = await billing.submit_readings(
        "1000234561", [D("12730")], date(2026, 12, 18), source="bot"
    )
    assert second.previous_date == date(2026, 11, 20)
    assert second.total_consumption == D("130")
    assert second.total_cost == D("835.90")
    assert second.replaced is None
    assert [r.t1 for r in await history(db, "1000234561")] == [D("12600"), D("12730")]


async def test_submit_for_account_without_readings(billing: LocalBilling, db: Database) -> None:
    result = await billing.submit_readings(
        "1000234600", [D("10"), D("5")], date(2026, 11, 22), source="bot"
    )
    assert result.previous_date is None
    row = await stored(db, "1000234600")
    assert (row.t1, row.t2, row.readings_date) == (D("10"), D("5"), date(2026, 11, 22))


async def test_submit_equal_readings_are_accepted(billing: LocalBilling) -> None:
    result = await billing.submit_readings(
        "1000234561", [D("12500")], date(2026, 11, 22), source="bot"
    )
    assert result.total_consumption == 0 and result.total_cost == 0


@pytest.mark.parametrize(
    ("number", "values", "zone", "reason"),
    [
        (
            "1000234585",
            ["15300", "6120"],
            "night",
            "показание «ночь» (6\u00a0120) меньше последнего принятого (6\u00a0120,1)",
        ),
        (
            "1000234561",
            ["12499.999"],
            "single",
            "показание (12\u00a0499,999) меньше последнего принятого (12\u00a0500)",
        ),
        ("1000234561", ["-1"], "single", "показание не может быть отрицательным"),
        ("1000234585", ["15300"], None, "для тарифа нужно показаний: 2, передано: 1"),
        ("1000234561", ["12600", "1"], None, "для тарифа нужно показаний: 1, передано: 2"),
        ("9999999999", ["1"], None, "лицевой счёт не найден"),
    ],
)
async def test_rejected_submission_changes_nothing(
    billing: LocalBilling,
    db: Database,
    number: str,
    values: list[str],
    zone: str | None,
    reason: str,
) -> None:
    async with db.session() as session:
        before = [
            (a.number, a.t1, a.t2, a.t3, a.readings_date)
            for a in await session.scalars(select(Account).order_by(Account.number))
        ]
    with pytest.raises(ReadingsRejected) as caught:
        await billing.submit_readings(
            number, [D(v) for v in values], date(2026, 11, 22), source="bot"
        )
    assert caught.value.zone == zone
    assert caught.value.reason == reason
    async with db.session() as session:
        after = [
            (a.number, a.t1, a.t2, a.t3, a.readings_date)
            for a in await session.scalars(select(Account).order_by(Account.number))
        ]
        assert after == before
        assert list(await session.scalars(select(ReadingsRecord))) == []


async def test_concurrent_submissions_never_go_backwards(
    billing: LocalBilling, db: Database
) -> None:
    """Monthly submissions racing: each is priced against the one accepted just before it."""
    values = [D("12600"), D("12550"), D("12700"), D("12650"), D("12580")]
    days = [date(2026, 11, 22), date(2026, 12, 22), date(2027, 1, 22), date(2027, 2, 22)]
    results = await asyncio.gather(
        *(
            billing.submit_readings("1000234561", [v], day, source="bot")
            for v, day in zip(values, [*days, days[-1]], strict=True)
        ),
        return_exceptions=True,
    )
    accepted = [r for r in results if not isinstance(r, BaseException)]
    assert all(
        isinstance(r, (ReadingsRejected, ReadingsAlreadySubmitted))
        for r in results
        if isinstance(r, BaseException)
    )
    records = await history(db, "1000234561")
    assert len(records) == len(accepted) >= 1
    previous = D("12500")
    for record in records:
        assert record.t1 is not None and record.t1 >= previous
        assert record.consumption == {"single": str(record.t1 - previous).rstrip("0").rstrip(".")}
        previous = record.t1
    assert (await stored(db, "1000234561")).t1 == previous


async def test_concurrent_submissions_of_one_period_ask_before_replacing(
    billing: LocalBilling, db: Database
) -> None:
    """Two family members at once: one is stored, the other is told readings were just sent
    (never two "first" submissions of one period)."""
    results = await asyncio.gather(
        *(
            billing.submit_readings("1000234561", [v], date(2026, 11, 22), source="bot")
            for v in (D("12600"), D("12650"))
        ),
        return_exceptions=True,
    )
    assert sorted(type(r).__name__ for r in results) == [
        "ReadingsAlreadySubmitted",
        "SubmissionResult",
    ]
    (record,) = await history(db, "1000234561")
    refused = next(r for r in results if isinstance(r, ReadingsAlreadySubmitted))
    assert refused.earlier.values == (record.t1,)
    assert refused.earlier.base == (D("12500"),)


async def test_unreachable_database_is_a_billing_error(tmp_path: Path) -> None:
    """The bot answers BillingError with an apology; a raw driver error would be a crash."""
    missing = tmp_path / "no such dir" / "x.db"
    backend = LocalBilling(Database(f"sqlite+aiosqlite:///{missing}"), TARIFFS)
    try:
        with pytest.raises(BillingError):
            await backend.get_account("1000234561")
        with pytest.raises(BillingError):
            await backend.submit_readings("1000234561", [D("1")], date(2026, 11, 22), source="bot")
    finally:
        await backend.db.dispose()
