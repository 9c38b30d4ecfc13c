"""Asking for the personal account number, shared by the readings and balance flows.

Typos are forgiven where they are unambiguous (spaces, dashes, the letter О for a
zero); otherwise the customer is told exactly what is wrong and where the number is
printed. After three failures the bot stops insisting and offers a human (the engine
sends only attempts at the number here: a question asked instead is answered aside).

A named account is this conversation's (kept on the customer's message, ``meta.account``)
and goes on this contact's own list, to be offered next time. Naming it, or saying «да»
to its masked holder, proves nothing about who writes: it never joins the contact to
anyone else who named the same number.
"""

from __future__ import annotations

from rapidfuzz.distance import DamerauLevenshtein

from abonent.billing.accounts import check_account_number, find_account_in_text, mask_account
from abonent.billing.base import AccountInfo, BillingError
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.core.types import Button

MAX_FAILURES = 3


async def prompt_account(d: Dialog) -> None:
    known = await d.services.contacts.known_accounts(d.turn.contact_id)
    if known:
        buttons = [Button(f"Счёт {mask_account(n)}", t.P_ACCOUNT + n) for n in known]
        d.say(d.fmt(t.ASK_ACCOUNT_KNOWN), *buttons, t.BTN_CANCEL)
    else:
        d.say(d.fmt(t.ASK_ACCOUNT), t.BTN_CANCEL)


async def take_account(d: Dialog, text: str, payload: str | None) -> AccountInfo | None:
    """The account the customer named, or None after explaining what went wrong."""
    raw = payload[len(t.P_ACCOUNT) :] if payload and payload.startswith(t.P_ACCOUNT) else text
    length = d.settings.billing.account_length
    check = check_account_number(raw, length)
    if not check.ok and (found := find_account_in_text(raw, length)) is not None:
        check = check_account_number(found, length)  # «мой л/с 1000000001, проверьте»
    account: AccountInfo | None = None
    if check.problem == "not_digits":
        problem = d.fmt(t.ACCOUNT_NOT_DIGITS)
    elif check.problem == "wrong_length":
        problem = d.fmt(t.ACCOUNT_WRONG_LENGTH, digits=check.digits)
    else:
        assert check.number is not None
        try:
            account = await d.services.billing.get_account(check.number)
        except BillingError:
            d.say(t.BILLING_DOWN, t.BTN_OPERATOR, t.BTN_MENU)
            d.end()
            return None
        problem = d.fmt(t.ACCOUNT_UNKNOWN, number=check.number)
        if account is None:
            guess = await _likely_typo(d, check.number)
            if guess is not None:
                d.meta["account_problem"] = "typo"
                d.say(
                    t.ACCOUNT_TYPO.format(number=check.number, guess=guess),
                    Button(f"Да, {guess}", t.P_ACCOUNT + guess),
                    t.BTN_CANCEL,
                )
                return None
    if account is not None:
        d.data.pop("account_failures", None)
        d.data["account"] = account.number
        d.meta["account"] = account.number
        await d.services.contacts.link_account(d.turn.contact_id, account.number)
        return account
    failures = int(d.data.get("account_failures", 0)) + 1
    d.data["account_failures"] = failures
    d.meta["account_problem"] = check.problem or "unknown"
    if failures >= MAX_FAILURES:
        d.say(problem)
        d.say(d.fmt(t.ACCOUNT_GIVE_UP), t.BTN_OPERATOR, t.BTN_MENU)
        d.data["account_failures"] = 0
    else:
        d.say(problem, t.BTN_CANCEL)
    return None


async def _likely_typo(d: Dialog, number: str) -> str | None:
    """One of the customer's own accounts that the unknown number differs from by one slip
    (a wrong, missing or swapped digit). Only their own: never hint at strangers' accounts."""
    known = await d.services.contacts.known_accounts(d.turn.contact_id, limit=10)
    close = [n for n in known if DamerauLevenshtein.distance(n, number) == 1]
    return close[0] if len(close) == 1 else None


async def current_account(d: Dialog) -> AccountInfo | None:
    number = d.data.get("account")
    if not number:
        return None
    return await d.services.billing.get_account(str(number))
