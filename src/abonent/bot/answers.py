"""Answers filled from the company's own data: one small handler per topic, used by the FAQ.

The knowledge base keeps the general answer of a topic (what any customer may be told);
a handler registered here for the topic may say something better from the configuration
or the billing, such as the configured prices for the tariffs question. It returns None
when it has nothing it is sure of, and the general text is said instead, so a handler can
never make the bot state what the company did not configure.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from abonent.billing.base import PLANS, ZONE_TITLES, ZONES, AccountInfo, BillingError
from abonent.billing.readings import format_hours, format_tariff, tariff_for, tariff_hours
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.bot.flows.account import current_account

# The text a topic's answer says instead of the knowledge base's, or None.
Filler = Callable[[Dialog], Awaitable[str | None]]
FILLERS: dict[str, Filler] = {}


def filler(intent: str) -> Callable[[Filler], Filler]:
    """Register the handler of a topic: the topic's data (its YAML) stays an editor's."""

    def register(handler: Filler) -> Filler:
        FILLERS[intent] = handler
        return handler

    return register


async def fill(d: Dialog, intent: str) -> str | None:
    """The topic's answer filled from the company's data, when a handler has one."""
    handler = FILLERS.get(intent)
    return None if handler is None else await handler(d)


def _plan_prices(d: Dialog, plan: str) -> tuple[list[str], bool] | None:
    """Lines naming each zone's price (and hours, if configured) of a plan; None unpriced.

    The flag tells whether hours were shown (then the answer says they are local time).
    """
    tariffs = d.settings.tariffs
    lines: list[str] = []
    hours_shown = False
    for zone in ZONES[plan]:
        price = tariff_for(plan, zone, tariffs)
        if price is None:
            return None
        if plan == "single":
            lines.append(format_tariff(price))
            continue
        hours = tariff_hours(plan, zone, tariffs)
        when = f" ({format_hours(hours)})" if hours else ""
        hours_shown = hours_shown or bool(hours)
        lines.append(
            t.TARIFF_ZONE_LINE.format(
                zone=ZONE_TITLES[zone], hours=when, price=format_tariff(price)
            )
        )
    return lines, hours_shown


def _plan_block(name: str, prices: list[str], plan: str) -> str:
    if plan == "single":
        return t.TARIFF_SINGLE.format(plan=name, price=prices[0])
    return "\n".join([t.TARIFF_ZONES.format(plan=name), *prices])


async def _conversation_account(d: Dialog) -> AccountInfo | None:
    """The account this conversation is about, if the customer named one in it."""
    try:
        return await current_account(d)
    except BillingError:
        return None


@filler("tariffs")
async def tariffs(d: Dialog) -> str | None:
    """The configured prices per plan and zone; the customer's own plan first when known."""
    priced = {plan: p for plan in PLANS if (p := _plan_prices(d, plan)) is not None}
    if not priced:
        return None
    account = await _conversation_account(d)
    own = account.plan if account is not None and account.plan in priced else None
    lines = [t.TARIFFS_HEADER.format(company=d.settings.company.name)]
    if own is not None:
        prices, _ = priced[own]
        lines.append(_plan_block(t.TARIFF_YOURS.format(plan=t.PLAN_NAMES[own]), prices, own))
        others = [plan for plan in priced if plan != own]
        if others:
            lines.extend(["", t.TARIFF_OTHERS])
    else:
        others = list(priced)
    for plan in others:
        prices, _ = priced[plan]
        lines.append(_plan_block(t.PLAN_NAMES[plan].capitalize(), prices, plan))
    lines.append("")
    if any(shown for _, shown in priced.values()):
        lines.append(t.TARIFF_LOCAL_TIME)
    lines.extend([t.TARIFF_VOLUME, t.TARIFF_SWITCH])
    return "\n".join(lines)
