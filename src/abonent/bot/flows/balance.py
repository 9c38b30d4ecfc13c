"""«Узнать баланс»: account number → what is owed or overpaid, and where to pay."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from abonent.billing.accounts import mask_address, mask_holder
from abonent.billing.base import AccountInfo
from abonent.billing.readings import format_rub
from abonent.bot import attempts, links
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog, Expect
from abonent.bot.flows.account import prompt_account, take_account
from abonent.core import events
from abonent.operators.formats import MONTHS_GENITIVE

FLOW = "balance"
PREVIOUS: dict[str, str] = {}
# What an answer to each waiting step looks like (anything else is a question aside).
WAITS: dict[str, Expect] = {"account": attempts.ACCOUNT}
RESUME = t.WHAT_BALANCE


async def begin(d: Dialog) -> None:
    d.record(events.FLOW_STARTED, flow=FLOW)
    d.goto(FLOW, "account")
    d.data = {}
    await prompt_account(d)


async def prompt(d: Dialog, step: str) -> None:
    await prompt_account(d)


async def handle(d: Dialog, text: str, payload: str | None) -> None:
    account = await take_account(d, text, payload)
    if account is None:
        return
    await report(d, account)
    d.end()


async def report(d: Dialog, account: AccountInfo) -> None:
    lines = [
        t.BALANCE_HEADER.format(
            number=account.number,
            holder=mask_holder(account.holder),
            address=mask_address(account.address),
        )
    ]
    if account.as_of is not None:
        # Billing did not answer: this is what it said then, and may be out of date.
        seen = account.as_of.astimezone(d.settings.company.tz)
        lines.append(
            t.BALANCE_AS_OF.format(
                time=seen.strftime("%H:%M"), date=_day_text(seen.date(), d.today())
            )
        )
    if account.balance > 0:
        amount = format_rub(account.balance)
        if account.due_date is None:
            lines.append(t.BALANCE_DEBT.format(amount=amount))
        else:
            text = t.BALANCE_DEBT_DUE if account.due_date >= d.today() else t.BALANCE_DEBT_OVERDUE
            lines.append(text.format(amount=amount, due=_day_text(account.due_date, d.today())))
        link = d.settings.company.links.get("payment")
        if link:
            sent = await links.linkify(d, "balance", link)
            lines.append(t.BALANCE_PAY.format(link=sent))
    elif account.balance < 0:
        lines.append(t.BALANCE_OVERPAID.format(amount=format_rub(-account.balance)))
    else:
        lines.append(t.BALANCE_ZERO)
    d.meta["balance"] = str(account.balance.quantize(Decimal("0.01")))
    d.record(events.BALANCE_ASKED, account=account.number)
    d.say("\n".join(lines), t.BTN_READINGS, t.BTN_MENU)


def _day_text(day: date, today: date) -> str:
    """«25 декабря», with the year only when it is not this one («15 января 2027»)."""
    text = f"{day.day} {MONTHS_GENITIVE[day.month - 1]}"
    return text if day.year == today.year else f"{text} {day.year}"
