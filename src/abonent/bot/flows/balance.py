"""«Узнать баланс»: account number → what is owed or overpaid, and where to pay."""

from __future__ import annotations

from decimal import Decimal

from abonent.billing.accounts import mask_address, mask_holder
from abonent.billing.base import AccountInfo
from abonent.billing.readings import format_rub
from abonent.bot import attempts, links
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog, Expect
from abonent.bot.flows.account import prompt_account, take_account
from abonent.core import events

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
    if account.balance > 0:
        lines.append(t.BALANCE_DEBT.format(amount=format_rub(account.balance)))
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
