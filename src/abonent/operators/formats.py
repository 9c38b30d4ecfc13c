"""Words and formats an operator reads: plan names, money, dates, topics.

The API keeps the raw values (``three_zone``, ``-350.00``, ``2026-12-03``) for programs;
next to them it sends these texts, so every page of the workspace says the same thing in
the same words, and a page never has to know what a billing code means.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal

from abonent.billing.readings import format_rub

PLAN_TITLES: dict[str, str] = {
    "single": "однотарифный",
    "two_zone": "двухзонный (день, ночь)",
    "three_zone": "трёхзонный (пик, полупик, ночь)",
}
MONTHS_GENITIVE = (
    "января",
    "февраля",
    "марта",
    "апреля",
    "мая",
    "июня",
    "июля",
    "августа",
    "сентября",
    "октября",
    "ноября",
    "декабря",
)
# What the bot records when it did not understand a message; operators read this instead.
FALLBACK_INTENT = "fallback"
FALLBACK_TITLE = "не распознано"


def plan_title(plan: str | None) -> str | None:
    """The plan as customers name it; an unknown code (a billing's own) is shown as is."""
    if not plan:
        return None
    return PLAN_TITLES.get(plan, plan)


def balance_text(balance: Decimal | None) -> str | None:
    """Billing keeps one signed number (positive: the customer owes; negative: paid
    ahead); an operator reads a minus sign as a debt, so say which it is in words."""
    if balance is None:
        return None
    if balance > 0:
        return f"задолженность {format_rub(balance)}"
    if balance < 0:
        return f"переплата {format_rub(-balance)}"
    return "задолженности нет"


def date_text(value: date | None) -> str | None:
    """«3 декабря 2026»: the way a date is said, not the ISO form of the API."""
    if value is None:
        return None
    return f"{value.day} {MONTHS_GENITIVE[value.month - 1]} {value.year}"


def intent_title(intent: str | None, titles: Callable[[str], str] | None = None) -> str | None:
    """A topic's title from the knowledge base; «не распознано» for the bot's fallback."""
    if not intent:
        return None
    if intent == FALLBACK_INTENT:
        return FALLBACK_TITLE
    return titles(intent) if titles is not None else intent
