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
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from abonent.billing.base import ZONES, AccountInfo, ZoneResult
from abonent.config import ReadingsSettings, TariffSettings

# What a household uses per day in each zone, for the examples in the bot's prompts: an
# example built from the account's own last readings plus about a month of this is what the
# customer's meter plausibly shows now, so typed back it is accepted.
TYPICAL_DAILY_KWH: dict[str, dict[str, Decimal]] = {
    "single": {"single": Decimal(5)},
    "two_zone": {"day": Decimal("3.5"), "night": Decimal("1.5")},
    "three_zone": {"peak": Decimal("1.5"), "half_peak": Decimal("2.5"), "night": Decimal("1.5")},
}
# Shown when an account has no readings yet (any values are accepted then).
FIRST_EXAMPLES: dict[str, tuple[int, ...]] = {
    "single": (12500,),
    "two_zone": (12500, 5300),
    "three_zone": (4200, 6100, 5300),
}

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
        # Readings taken earlier today still allow a day's use; the customer is told the
        # real count (0 days is "today", never "1 day").
        days = max((today - account.readings_date).days, 0)
        allowed = max_daily_kwh * max(days, 1)
        if consumption > allowed:
            jump = Jump(total=consumption, days=days, allowed=allowed)
    return ReadingsCheck(lower=lower, jump=jump)


def example_readings(
    account: AccountInfo, today: date, max_daily_kwh: Decimal
) -> tuple[Decimal, ...]:
    """Readings the customer's meter plausibly shows today, for a prompt's «например».

    The last accepted readings plus a typical month's use per zone (or the days since, if
    fewer), in whole kWh; always values ``check_readings`` accepts, so an example typed back
    is never refused as lower than last time or as an implausible jump.
    """
    if account.readings_date is None:
        return tuple(Decimal(v) for v in FIRST_EXAMPLES[account.plan])
    days = min(max((today - account.readings_date).days, 1), 30)
    rates = TYPICAL_DAILY_KWH[account.plan]
    allowed = max_daily_kwh * days
    month = sum((rates[z] * days for z in account.zones), Decimal(0))
    # Scaled down if a deployment's jump bound is below a typical household's use.
    scale = min(Decimal(1), allowed / month) if month > 0 else Decimal(1)
    values = tuple(
        (previous + rates[zone] * days * scale).to_integral_value(rounding=ROUND_FLOOR)
        for zone, previous in zip(account.zones, account.last_readings, strict=True)
    )
    if check_readings(account, values, today, max_daily_kwh).ok:
        return values
    return tuple(v.to_integral_value(rounding=ROUND_CEILING) for v in account.last_readings)


def example_text(values: Sequence[Decimal]) -> str:
    """Readings as the customer should type them: plain digits, a space between zones.

    Not ``format_kwh``: its thousands separator would make "12 500" two numbers.
    """
    return " ".join(plain_decimal(v) for v in values)


def days_text(days: int) -> str:
    """«1 день», «3 дня», «29 дней»."""
    tens, ones = days % 100, days % 10
    if ones == 1 and tens != 11:
        word = "день"
    elif 2 <= ones <= 4 and not 12 <= tens <= 14:
        word = "дня"
    else:
        word = "дней"
    return f"{days} {word}"


def period_start(day: date) -> date:
    """The first day of the billing period ``day`` falls in: a calendar month, the period a
    utility bills by one set of readings."""
    return day.replace(day=1)


def tariff_for(plan: str, zone: str, tariffs: TariffSettings) -> Decimal | None:
    """Rubles per kWh for a zone of a plan, None when the company configured no price for
    the plan; ValueError for a zone the plan does not have."""
    if zone not in ZONES.get(plan, ()):
        raise ValueError(f"plan {plan!r} has no zone {zone!r}")
    if plan == "single":
        return tariffs.single
    if plan == "two_zone":
        two = tariffs.two_zone
        return None if two is None else two.day if zone == "day" else two.night
    three = tariffs.three_zone
    if three is None:
        return None
    return {"peak": three.peak, "half_peak": three.half_peak, "night": three.night}[zone]


def tariff_hours(plan: str, zone: str, tariffs: TariffSettings) -> str | None:
    """The zone's hours as configured (``"07:00-10:00, 17:00-21:00"``), if they are."""
    if plan == "two_zone" and tariffs.two_zone is not None:
        return tariffs.two_zone.hours.get(zone)
    if plan == "three_zone" and tariffs.three_zone is not None:
        return tariffs.three_zone.hours.get(zone)
    return None


def compute_zones(
    account: AccountInfo, values: Sequence[Decimal], tariffs: TariffSettings
) -> tuple[ZoneResult, ...]:
    """Consumption and cost per zone; each cost is rounded to the kopeck half-up on its own.

    The total a customer sees is the sum of the rounded zone costs, so the lines of the reply
    always add up to its total. Without a configured price the cost is None.
    """
    _expect_count(account, values)
    results: list[ZoneResult] = []
    for zone, previous, current in zip(account.zones, account.last_readings, values, strict=True):
        tariff = tariff_for(account.plan, zone, tariffs)
        consumption = current - previous
        cost = None if tariff is None else (consumption * tariff).quantize(KOPECK, ROUND_HALF_UP)
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


def total_cost(zones: Sequence[ZoneResult]) -> Decimal | None:
    """The sum of the zone costs; None if a zone has no price (half a sum would mislead)."""
    costs = [z.cost for z in zones]
    if any(c is None for c in costs):
        return None
    return sum((c for c in costs if c is not None), Decimal("0.00"))


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


def format_tariff(value: Decimal) -> str:
    """A price per kWh the Russian way, "5,12 ₽/кВт·ч": kopecks always, more digits only when
    the tariff has them (some regions set 5,125)."""
    exponent = value.normalize().as_tuple().exponent
    places = max(2, -exponent) if isinstance(exponent, int) else 2
    text = format(value.quantize(Decimal(1).scaleb(-places)), "f")
    whole, _, fraction = text.partition(".")
    return f"{_group_thousands(whole)},{fraction}{NBSP}₽/кВт·ч"


def format_hours(hours: str) -> str:
    """Configured zone hours as a customer reads them: "07:00–10:00 и 17:00–21:00"."""
    spans = [
        "–".join(part.strip() for part in span.split("-")) for span in hours.split(",") if span
    ]
    if len(spans) > 1:
        return ", ".join(spans[:-1]) + " и " + spans[-1]
    return spans[0] if spans else ""


def format_date(value: date) -> str:
    return value.strftime("%d.%m.%Y")
