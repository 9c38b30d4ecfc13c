"""Meter readings: reading them out of a message, checking them, pricing them, showing them.

Pure functions, no database: the bot checks a submission here before it asks the billing
backend to store it, and the backend prices with the same arithmetic, so what the customer is
told and what is stored agree to the kopeck.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from abonent.billing.base import ZONES, AccountInfo, ZoneResult
from abonent.config import ReadingsSettings, TariffSettings

KOPECK = Decimal("0.01")
WATT_HOUR = Decimal("0.001")
# Thousands separator in displayed numbers: a no-break space, so "12 500" never wraps in a
# chat bubble. Also between the sum and "₽".
NBSP = "\u00a0"

# Words a customer may put around readings without turning the message into free text.
_READING_WORDS = frozenset(
    {
        "день",
        "дневная",
        "дневной",
        "днем",
        "днём",
        "ночь",
        "ночная",
        "ночной",
        "ночью",
        "пик",
        "пиковая",
        "полупик",
        "полупиковая",
        "т1",
        "т2",
        "т3",
        "t1",
        "t2",
        "t3",
        "квт",
        "квтч",
        "kwh",
        "показания",
        "показание",
        "и",
    }
)
# "кВт·ч", "квт*ч", "квт.ч", "кВт/ч", "кВт ч" all become the one word "квтч".
_KWH_RE = re.compile(r"квт\s*[·*./]?\s*ч(?![а-яё])")
_TOKEN_RE = re.compile(
    r"(?P<space>\s+)"
    # A comma or dot followed by exactly one or two digits (and no third) is a decimal point.
    r"|(?P<number>\d+(?:[.,]\d{1,2}(?!\d))?)"
    r"|(?P<word>[тt][1-3](?!\d)|[^\W\d_]+)"
    r"|(?P<minus>[-−–—](?=\d))"
    r"|(?P<punct>[,;:=()/!.\-−–—])"
)


def parse_readings(text: str) -> list[Decimal] | None:
    """The numbers of a message that is only readings, or None for anything else.

    The rules, chosen so that an ambiguous message is never read as readings:

    * whitespace always separates numbers: "12 500" is two numbers, 12 and 500 (the zone-count
      and lower-than-last checks then make the bot ask again);
    * a comma or dot followed by exactly one or two digits is a decimal point: "12500,5";
    * a comma followed by three or more digits separates numbers: "12500,5300" is 12500 and
      5300; so do ";" and "/";
    * a dot followed by three or more digits ("12.500", "25.10.2026") makes the whole
      message not readings;
    * a minus sign before a number (after a space or at the start) makes it not readings; a
      dash between a zone name or a number and the next number is a separator ("день-12500");
    * words other than zone names, units and "показания" make it free text.
    """
    lowered = _KWH_RE.sub(" квтч ", text.lower())
    values: list[Decimal] = []
    previous: str | None = None  # kind of the last token, None at the start
    position = 0
    while position < len(lowered):
        match = _TOKEN_RE.match(lowered, position)
        if match is None:
            return None
        kind = match.lastgroup
        token = match.group()
        position = match.end()
        if kind == "space":
            previous = "space"
            continue
        if kind == "number":
            values.append(Decimal(token.replace(",", ".")))
        elif kind == "word":
            if token not in _READING_WORDS:
                return None
        elif kind == "minus":
            if previous in (None, "space", "punct"):
                return None
            kind = "punct"
        elif token == "." and position < len(lowered) and lowered[position].isdigit():
            return None
        previous = kind
    return values or None


@dataclass(frozen=True)
class LowerZone:
    zone: str
    previous: Decimal
    given: Decimal


@dataclass(frozen=True)
class Jump:
    """Consumption beyond what a household plausibly uses: a typo more often than a real bill."""

    # Consumption over all zones since the last readings.
    total: Decimal
    days: int
    allowed: Decimal


@dataclass(frozen=True)
class ReadingsCheck:
    lower: list[LowerZone]
    jump: Jump | None

    @property
    def ok(self) -> bool:
        return not self.lower and self.jump is None


def _expect_count(account: AccountInfo, values: Sequence[Decimal]) -> None:
    if len(values) != len(account.zones):
        raise ValueError(f"{account.plan} takes {len(account.zones)} readings, {len(values)} given")


def check_readings(
    account: AccountInfo, values: Sequence[Decimal], today: date, max_daily_kwh: Decimal
) -> ReadingsCheck:
    """What to ask the customer about before storing: zones gone down, and an implausible jump.

    The jump counts only zones that went up (zones gone down are reported on their own) over
    the days since the last readings, at least one. An account that has never had readings
    (``readings_date`` None) has no period to judge, so it never shows a jump.
    Raises ValueError when the number of values does not match the plan: the caller asks
    for the right count before checking.
    """
    _expect_count(account, values)
    lower = [
        LowerZone(zone=zone, previous=previous, given=given)
        for zone, previous, given in zip(account.zones, account.last_readings, values, strict=True)
        if given < previous
    ]
    jump: Jump | None = None
    if account.readings_date is not None:
        consumption = sum(
            (
                max(given - previous, Decimal(0))
                for previous, given in zip(account.last_readings, values, strict=True)
            ),
            Decimal(0),
        )
        days = max((today - account.readings_date).days, 1)
        allowed = max_daily_kwh * days
        if consumption > allowed:
            jump = Jump(total=consumption, days=days, allowed=allowed)
    return ReadingsCheck(lower=lower, jump=jump)


def tariff_for(plan: str, zone: str, tariffs: TariffSettings) -> Decimal:
    """Rubles per kWh for a zone of a plan; ValueError for a zone the plan does not have."""
    if zone not in ZONES.get(plan, ()):
        raise ValueError(f"plan {plan!r} has no zone {zone!r}")
    if plan == "single":
        return tariffs.single
    if plan == "two_zone":
        return tariffs.two_zone.day if zone == "day" else tariffs.two_zone.night
    three = tariffs.three_zone
    return {"peak": three.peak, "half_peak": three.half_peak, "night": three.night}[zone]


def compute_zones(
    account: AccountInfo, values: Sequence[Decimal], tariffs: TariffSettings
) -> tuple[ZoneResult, ...]:
    """Consumption and cost per zone; each cost is rounded to the kopeck half-up on its own.

    The total a customer sees is the sum of the rounded zone costs, so the lines of the reply
    always add up to its total.
    """
    _expect_count(account, values)
    results: list[ZoneResult] = []
    for zone, previous, current in zip(account.zones, account.last_readings, values, strict=True):
        tariff = tariff_for(account.plan, zone, tariffs)
        consumption = current - previous
        cost = (consumption * tariff).quantize(KOPECK, rounding=ROUND_HALF_UP)
        results.append(
            ZoneResult(
                zone=zone,
                previous=previous,
                current=current,
                consumption=consumption,
                tariff=tariff,
                cost=cost,
            )
        )
    return tuple(results)


def total_cost(zones: Sequence[ZoneResult]) -> Decimal:
    return sum((z.cost for z in zones), Decimal("0.00"))


def total_consumption(zones: Sequence[ZoneResult]) -> Decimal:
    return sum((z.consumption for z in zones), Decimal(0))


def window_bounds(year: int, month: int, settings: ReadingsSettings) -> tuple[date, date]:
    """The month's submission window; a day beyond the month's length means its last day.

    So ``last_day = 31`` reads "to the end of the month" in every month, and a window set to
    start on the 30th still exists in February (it is then the 28th/29th alone).
    """
    length = calendar.monthrange(year, month)[1]
    return (
        date(year, month, min(settings.first_day, length)),
        date(year, month, min(settings.last_day, length)),
    )


def in_window(today: date, settings: ReadingsSettings) -> bool:
    first, last = window_bounds(today.year, today.month, settings)
    return first <= today <= last


def plain_decimal(value: Decimal) -> str:
    """Decimals for JSON and text without trailing zeros or exponent: "120.5", "10000"."""
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def _group_thousands(digits: str) -> str:
    negative = digits.startswith("-")
    digits = digits.lstrip("-")
    parts: list[str] = []
    while len(digits) > 3:
        parts.insert(0, digits[-3:])
        digits = digits[:-3]
    parts.insert(0, digits)
    return ("-" if negative else "") + NBSP.join(parts)


def format_kwh(value: Decimal) -> str:
    """Russian style, "12 500,5": no-break space between thousands, decimal comma, no zeros."""
    text = plain_decimal(value.quantize(WATT_HOUR, rounding=ROUND_HALF_UP))
    whole, _, fraction = text.partition(".")
    return _group_thousands(whole) + ("," + fraction if fraction else "")


def format_rub(value: Decimal) -> str:
    """Russian style, "1 234,56 ₽": always kopecks; thousands and "₽" after no-break spaces."""
    text = format(value.quantize(KOPECK, rounding=ROUND_HALF_UP), "f")
    whole, _, fraction = text.partition(".")
    if whole == "-0" and fraction == "00":
        whole = "0"
    return f"{_group_thousands(whole)},{fraction}{NBSP}₽"


def format_date(value: date) -> str:
    return value.strftime("%d.%m.%Y")
