"""Readings out of a message, their checks, and the money: exact to the kopeck."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from abonent.billing.base import AccountInfo, Plan
from abonent.billing.readings import (
    Jump,
    LowerZone,
    check_readings,
    compute_zones,
    format_date,
    format_kwh,
    format_rub,
    in_window,
    parse_readings,
    plain_decimal,
    tariff_for,
    total_consumption,
    total_cost,
    window_bounds,
)
from abonent.config import ReadingsSettings, TariffSettings

# The demo company's prices: TariffSettings has none of its own.
TARIFFS = TariffSettings.model_validate(
    {
        "single": "6.43",
        "two_zone": {"day": "7.36", "night": "3.79"},
        "three_zone": {"peak": "8.85", "half_peak": "6.43", "night": "3.79"},
    }
)

D = Decimal
NB = "\u00a0"


def account(plan: Plan, *readings: str, on: date | None = date(2026, 10, 25)) -> AccountInfo:
    return AccountInfo(
        number="1000234561",
        holder="Иванов Иван Иванович",
        address="г. Энск, ул. Ленина, д. 15, кв. 7",
        plan=plan,
        last_readings=tuple(D(r) for r in readings),
        readings_date=on,
        balance=D("0.00"),
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12500", ["12500"]),
        ("12500 5300", ["12500", "5300"]),
        ("  12500\n5300  ", ["12500", "5300"]),
        ("12500,5 5300.2", ["12500.5", "5300.2"]),
        ("12500,55", ["12500.55"]),
        ("день 12500 ночь 5300", ["12500", "5300"]),
        ("День: 12500, Ночь: 5300", ["12500", "5300"]),
        ("Т1 12500 Т2 5300", ["12500", "5300"]),
        ("t1=12500; t2=5300", ["12500", "5300"]),
        ("пик 4200 полупик 6100 ночь 5300", ["4200", "6100", "5300"]),
        ("12500 кВт·ч", ["12500"]),
        ("12500кВтч", ["12500"]),
        ("12500 квт*ч", ["12500"]),
        ("показания 12500", ["12500"]),
        ("12500.", ["12500"]),
        ("день-12500 ночь-5300", ["12500", "5300"]),
        ("день - 12500", ["12500"]),
        ("12500/5300", ["12500", "5300"]),
        # Whitespace always separates: "12 500" is two numbers.
        ("12 500", ["12", "500"]),
        # A comma followed by three or more digits separates numbers.
        ("12500,5300", ["12500", "5300"]),
        ("12500,5,5300", ["12500.5", "5300"]),
        ("12500,123", ["12500", "123"]),
        ("12500-5300", ["12500", "5300"]),
        ("0", ["0"]),
    ],
)
def test_parse_readings(text: str, expected: list[str]) -> None:
    assert parse_readings(text) == [D(v) for v in expected]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "день ночь",
        "привет",
        "мой счёт 1234567890",
        "хочу передать 12500",
        "12500 рублей",
        "оплатил 1500 вчера",
        # A dot followed by three digits: thousands or a date, not readings.
        "12.500",
        "25.10.2026",
        "12500.5300",
        # Negative numbers.
        "-12500",
        "12500 -5300",
        "день -12500",
        "−12500",
        "12500 @ 5300",
        "т12500",
    ],
)
def test_parse_readings_rejects(text: str) -> None:
    assert parse_readings(text) is None


def test_check_readings_ok_and_lower() -> None:
    acc = account("two_zone", "15230", "6120")
    ok = check_readings(acc, [D("15400"), D("6200")], date(2026, 11, 22), D("60"))
    assert ok.ok and ok.lower == [] and ok.jump is None

    low = check_readings(acc, [D("15400"), D("6100")], date(2026, 11, 22), D("60"))
    assert low.lower == [LowerZone("night", D("6120"), D("6100"))]
    assert not low.ok

    both = check_readings(acc, [D("15000"), D("6000")], date(2026, 11, 22), D("60"))
    assert [z.zone for z in both.lower] == ["day", "night"]


def test_check_readings_jump() -> None:
    acc = account("single", "12500")  # readings of 2026-10-25; 28 days to 2026-11-22
    at_limit = check_readings(acc, [D("14180")], date(2026, 11, 22), D("60"))
    assert at_limit.jump is None  # exactly 28 × 60 = 1680 kWh is allowed
    over = check_readings(acc, [D("14180.001")], date(2026, 11, 22), D("60"))
    assert over.jump == Jump(total=D("1680.001"), days=28, allowed=D("1680"))


def test_check_readings_same_day_allows_a_day_and_says_zero_days() -> None:
    acc = account("single", "12500")
    same_day = check_readings(acc, [D("12561")], date(2026, 10, 25), D("60"))
    # A day's use is allowed, but the customer is told it is 0 days, never "1 day".
    assert same_day.jump == Jump(total=D("61"), days=0, allowed=D("60"))
    assert check_readings(acc, [D("12560")], date(2026, 10, 25), D("60")).jump is None
    # A readings date in the future (a clock off somewhere) counts as today.
    before = check_readings(acc, [D("12561")], date(2026, 10, 20), D("60"))
    assert before.jump is not None and before.jump.days == 0


def test_check_readings_jump_counts_only_rising_zones() -> None:
    acc = account("two_zone", "15230", "6120")
    result = check_readings(acc, [D("15300"), D("100")], date(2026, 10, 26), D("60"))
    assert result.jump == Jump(total=D("70"), days=1, allowed=D("60"))
    assert len(result.lower) == 1


def test_check_readings_without_previous_date_has_no_jump() -> None:
    acc = account("single", "0", on=None)
    assert check_readings(acc, [D("99999")], date(2026, 11, 22), D("60")).jump is None


def test_check_readings_wrong_count() -> None:
    with pytest.raises(ValueError):
        check_readings(account("two_zone", "1", "2"), [D("3")], date(2026, 11, 22), D("60"))
    with pytest.raises(ValueError):
        compute_zones(account("single", "1"), [D("3"), D("4")], TARIFFS)


def test_tariff_for() -> None:
    tariffs = TARIFFS
    assert tariff_for("single", "single", tariffs) == D("6.43")
    assert tariff_for("two_zone", "day", tariffs) == D("7.36")
    assert tariff_for("two_zone", "night", tariffs) == D("3.79")
    assert tariff_for("three_zone", "peak", tariffs) == D("8.85")
    assert tariff_for("three_zone", "half_peak", tariffs) == D("6.43")
    assert tariff_for("three_zone", "night", tariffs) == D("3.79")
    with pytest.raises(ValueError):
        tariff_for("single", "night", tariffs)
    with pytest.raises(ValueError):
        tariff_for("two_zone", "peak", tariffs)


def test_cost_single_rounds_half_up() -> None:
    # 245.5 kWh × 6.43 = 1578.565 → 1578.57 (banker's rounding would give 1578.56).
    zones = compute_zones(account("single", "12500"), [D("12745.5")], TARIFFS)
    (zone,) = zones
    assert (zone.zone, zone.previous, zone.current) == ("single", D("12500"), D("12745.5"))
    assert zone.consumption == D("245.5")
    assert zone.tariff == D("6.43")
    assert zone.cost == D("1578.57")
    assert total_cost(zones) == D("1578.57")


def test_cost_two_zone() -> None:
    zones = compute_zones(
        account("two_zone", "15230", "6120"), [D("15410.25"), D("6201.4")], TARIFFS
    )
    # day: 180.25 × 7.36 = 1326.64; night: 81.4 × 3.79 = 308.506 → 308.51
    assert [(z.zone, z.consumption, z.cost) for z in zones] == [
        ("day", D("180.25"), D("1326.64")),
        ("night", D("81.4"), D("308.51")),
    ]
    assert total_consumption(zones) == D("261.65")
    assert total_cost(zones) == D("1635.15")


def test_cost_three_zone_total_is_sum_of_rounded_zones() -> None:
    zones = compute_zones(
        account("three_zone", "4215", "6130", "5342"),
        [D("4300.5"), D("6250"), D("5437.3")],
        TARIFFS,
    )
    # peak 85.5 × 8.85 = 756.675 → 756.68; half-peak 120 × 6.43 = 771.60;
    # night 95.3 × 3.79 = 361.187 → 361.19. Total 1889.47 (unrounded sum 1889.462 → 1889.46).
    assert [z.cost for z in zones] == [D("756.68"), D("771.60"), D("361.19")]
    assert total_cost(zones) == D("1889.47")
    assert total_consumption(zones) == D("300.8")


def test_cost_with_custom_tariffs() -> None:
    tariffs = TariffSettings.model_validate(
        {"single": "5.005", "two_zone": {"day": "1", "night": "1"}}
    )
    (zone,) = compute_zones(account("single", "100"), [D("101")], tariffs)
    assert zone.cost == D("5.01")  # 5.005 → 5.01, half-up


@pytest.mark.parametrize(
    ("today", "first", "last", "expected"),
    [
        (date(2026, 11, 15), 15, 25, True),
        (date(2026, 11, 25), 15, 25, True),
        (date(2026, 11, 14), 15, 25, False),
        (date(2026, 11, 26), 15, 25, False),
        # A last day beyond the month's length means its last day.
        (date(2026, 2, 28), 20, 31, True),
        (date(2028, 2, 29), 20, 31, True),
        (date(2026, 4, 30), 20, 31, True),
        (date(2026, 2, 28), 30, 31, True),
        (date(2026, 2, 27), 30, 31, False),
        (date(2026, 1, 31), 1, 31, True),
    ],
)
def test_in_window(today: date, first: int, last: int, expected: bool) -> None:
    settings = ReadingsSettings(first_day=first, last_day=last)
    assert in_window(today, settings) is expected


def test_window_bounds() -> None:
    settings = ReadingsSettings(first_day=20, last_day=31)
    assert window_bounds(2026, 2, settings) == (date(2026, 2, 20), date(2026, 2, 28))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("12500", f"12{NB}500"),
        ("12500.5", f"12{NB}500,5"),
        ("12500.500", f"12{NB}500,5"),
        ("1234567.125", f"1{NB}234{NB}567,125"),
        ("999", "999"),
        ("0", "0"),
        ("0.000", "0"),
        ("1E+4", f"10{NB}000"),
        ("-1500", f"-1{NB}500"),
    ],
)
def test_format_kwh(value: str, expected: str) -> None:
    assert format_kwh(D(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("1234.56", f"1{NB}234,56{NB}₽"),
        ("0", f"0,00{NB}₽"),
        ("7.36", f"7,36{NB}₽"),
        ("1000000", f"1{NB}000{NB}000,00{NB}₽"),
        ("-350", f"-350,00{NB}₽"),
        ("1578.565", f"1{NB}578,57{NB}₽"),
        ("-0.001", f"0,00{NB}₽"),
    ],
)
def test_format_rub(value: str, expected: str) -> None:
    assert format_rub(D(value)) == expected


def test_format_date_and_plain_decimal() -> None:
    assert format_date(date(2026, 10, 25)) == "25.10.2026"
    assert format_date(date(2026, 1, 5)) == "05.01.2026"
    assert plain_decimal(D("120.500")) == "120.5"
    assert plain_decimal(D("1E+4")) == "10000"
    assert plain_decimal(D("0.000")) == "0"
