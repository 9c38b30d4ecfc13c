"""Examples the prompts show, day counts, prices and zone hours as a customer reads them."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from pydantic import ValidationError

from abonent.billing.base import AccountInfo, Plan
from abonent.billing.readings import (
    check_readings,
    days_text,
    example_readings,
    example_text,
    format_hours,
    format_tariff,
    parse_readings,
    period_start,
    tariff_for,
    tariff_hours,
)
from abonent.config import TariffSettings

D = Decimal


def account(plan: Plan, *readings: str, on: date | None = date(2026, 10, 25)) -> AccountInfo:
    return AccountInfo(
        number="1000000001",
        holder="Иванов Иван",
        address="г. Энск",
        plan=plan,
        last_readings=tuple(D(r) for r in readings),
        readings_date=on,
        balance=D("0"),
    )


@pytest.mark.parametrize(
    "acc",
    [
        account("single", "8500.5"),
        account("two_zone", "12345", "5210"),
        account("three_zone", "4000", "6000", "5000.99"),
        account("two_zone", "12345", "5210", on=date(2026, 11, 22)),  # yesterday
        account("single", "100", on=date(2026, 11, 23)),  # today
        account("two_zone", "0", "0", on=None),
    ],
)
@pytest.mark.parametrize("max_daily", [D("60"), D("1"), D("0.1")])
def test_examples_typed_back_are_accepted(acc: AccountInfo, max_daily: Decimal) -> None:
    today = date(2026, 11, 23)
    values = example_readings(acc, today, max_daily)
    typed = parse_readings(example_text(values))
    assert typed == list(values)
    assert check_readings(acc, typed, today, max_daily).ok


def test_examples_are_last_readings_plus_a_typical_month() -> None:
    acc = account("two_zone", "12345", "5210")
    # 29 days: 3.5 and 1.5 kWh a day.
    assert example_readings(acc, date(2026, 11, 23), D("60")) == (D("12446"), D("5253"))
    # A year without readings still shows about a month, not a year.
    long_ago = account("single", "100", on=date(2025, 11, 1))
    assert example_readings(long_ago, date(2026, 11, 23), D("60")) == (D("250"),)
    assert example_text([D("12446"), D("5253.5")]) == "12446 5253.5"


@pytest.mark.parametrize(
    ("days", "text"),
    [
        (1, "1 день"),
        (2, "2 дня"),
        (4, "4 дня"),
        (5, "5 дней"),
        (11, "11 дней"),
        (12, "12 дней"),
        (21, "21 день"),
        (29, "29 дней"),
        (101, "101 день"),
        (112, "112 дней"),
    ],
)
def test_days_text(days: int, text: str) -> None:
    assert days_text(days) == text


def test_period_is_the_calendar_month() -> None:
    assert period_start(date(2026, 11, 23)) == date(2026, 11, 1)
    assert period_start(date(2026, 12, 1)) == date(2026, 12, 1)


def test_prices_the_russian_way() -> None:
    assert format_tariff(D("5.12")) == "5,12\u00a0₽/кВт·ч"
    assert format_tariff(D("6.4")) == "6,40\u00a0₽/кВт·ч"
    assert format_tariff(D("5.125")) == "5,125\u00a0₽/кВт·ч"
    assert format_tariff(D("7")) == "7,00\u00a0₽/кВт·ч"


def test_zone_hours() -> None:
    assert format_hours("07:00-10:00, 17:00-21:00") == "07:00–10:00 и 17:00–21:00"
    assert format_hours("23:00-07:00") == "23:00–07:00"
    tariffs = TariffSettings.model_validate(
        {
            "two_zone": {
                "day": "7.36",
                "night": "3.79",
                "hours": {"day": "07:00-23:00", "night": " 23:00 - 07:00 "},
            }
        }
    )
    assert tariff_hours("two_zone", "day", tariffs) == "07:00-23:00"
    assert tariff_hours("two_zone", "night", tariffs) == "23:00 - 07:00"
    assert tariff_hours("three_zone", "night", tariffs) is None


def test_unconfigured_prices_are_none() -> None:
    tariffs = TariffSettings.model_validate({"two_zone": {"day": "7.36", "night": "3.79"}})
    assert tariff_for("two_zone", "night", tariffs) == D("3.79")
    assert tariff_for("single", "single", tariffs) is None
    assert tariff_for("three_zone", "peak", tariffs) is None
    assert TariffSettings().model_dump() == {"single": None, "two_zone": None, "three_zone": None}


@pytest.mark.parametrize(
    "bad",
    [
        {"single": "0"},
        {"single": "-1"},
        {"two_zone": {"day": "7", "night": "3", "hours": {"peak": "07:00-10:00"}}},
        {"two_zone": {"day": "7", "night": "3", "hours": {"day": "7-23"}}},
        {"two_zone": {"day": "7", "night": "3", "hours": {"day": "07:00-25:00"}}},
    ],
)
def test_bad_tariffs_fail_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        TariffSettings.model_validate(bad)
