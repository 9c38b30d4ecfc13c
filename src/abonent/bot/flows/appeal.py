"""The virtual reception: a written appeal (name, contact, account, text) stored as a
ticket whose number the customer gets, for questions the chat cannot settle."""

from __future__ import annotations

import re

from abonent.billing.accounts import check_account_number
from abonent.bot import attempts
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog, Expect
from abonent.core import events
from abonent.core.types import Button
from abonent.db.models import Appeal

FLOW = "appeal"
PREVIOUS = {"contact": "name", "account": "contact", "text": "account", "confirm": "text"}
# What an answer to each waiting step looks like; the text step takes anything: there
# the customer's own words are the appeal.
WAITS: dict[str, Expect] = {
    "name": attempts.APPEAL_NAME,
    "contact": attempts.APPEAL_CONTACT,
    "account": attempts.APPEAL_ACCOUNT,
    "confirm": attempts.APPEAL_CONFIRM,
}
RESUME = t.WHAT_APPEAL
_EMAIL = re.compile(r"^[\w.+-]+@[\w-]+(\.[\w-]+)+$")
_PHONE_DIGITS = re.compile(r"\d")


async def begin(d: Dialog) -> None:
    d.record(events.FLOW_STARTED, flow=FLOW)
    d.goto(FLOW, "name")
    d.data = {}
    await prompt(d, "name")


async def prompt(d: Dialog, step: str) -> None:
    if step == "name":
        d.say(d.fmt(t.APPEAL_ASK_NAME), t.BTN_CANCEL)
    elif step == "contact":
        d.say(t.APPEAL_ASK_CONTACT, t.BTN_BACK, t.BTN_CANCEL)
    elif step == "account":
        d.say(d.fmt(t.APPEAL_ASK_ACCOUNT), Button(t.APPEAL_SKIP, "skip"), t.BTN_BACK, t.BTN_CANCEL)
    elif step == "text":
        d.say(t.APPEAL_ASK_TEXT, t.BTN_BACK, t.BTN_CANCEL)
    else:
        d.say(
            t.APPEAL_CONFIRM.format(
                name=d.data.get("name", ""),
                contact=d.data.get("contact", ""),
                account=d.data.get("account") or "—",
                text=d.data.get("text", ""),
            ),
            Button(t.APPEAL_SEND, t.P_YES),
            t.BTN_BACK,
            t.BTN_CANCEL,
        )


def _contact(text: str) -> str | None:
    value = text.strip()
    if _EMAIL.match(value):
        return value
    digits = "".join(_PHONE_DIGITS.findall(value))
    if 10 <= len(digits) <= 12 and re.fullmatch(r"[\d\s()+-]+", value):
        return value
    return None


async def handle(d: Dialog, text: str, payload: str | None) -> None:
    step = d.step
    if step == "name":
        if len(text.strip()) < 2:
            await prompt(d, "name")
            return
        d.data["name"] = text.strip()[:200]
        d.goto(FLOW, "contact")
    elif step == "contact":
        contact = _contact(text)
        if contact is None:
            d.say(t.APPEAL_BAD_CONTACT, t.BTN_BACK, t.BTN_CANCEL)
            return
        d.data["contact"] = contact
        d.goto(FLOW, "account")
    elif step == "account":
        skip = payload == "skip" or text.strip().lower().rstrip("!.") in t.APPEAL_SKIP_WORDS
        if not skip:
            check = check_account_number(text, d.settings.billing.account_length)
            if check.number is None:
                d.say(
                    d.fmt(t.ACCOUNT_WRONG_LENGTH, digits=check.digits),
                    Button(t.APPEAL_SKIP, "skip"),
                )
                return
            d.data["account"] = check.number
        d.goto(FLOW, "text")
    elif step == "text":
        if len(text.strip()) < 10:
            d.say(t.APPEAL_TOO_SHORT, t.BTN_BACK, t.BTN_CANCEL)
            return
        d.data["text"] = text.strip()
        d.goto(FLOW, "confirm")
    elif step == "confirm" and (
        payload == t.P_YES or text.strip().lower() in {"да", "отправить", "отправляй"}
    ):
        await _register(d)
        return
    await prompt(d, d.step or "name")


async def _register(d: Dialog) -> None:
    year = d.today().year
    async with d.services.db.transaction() as session:
        appeal = Appeal(
            conversation_id=d.turn.conversation_id,
            contact_id=d.turn.contact_id,
            name=str(d.data.get("name", "")),
            contact=str(d.data.get("contact", "")),
            account_number=d.data.get("account"),
            text=str(d.data.get("text", "")),
        )
        session.add(appeal)
        await session.flush()
        appeal.number = f"ВП-{year}-{appeal.id:06d}"
        number = appeal.number
    d.say(t.APPEAL_DONE.format(number=number, contact=d.data.get("contact", "")), t.BTN_MENU)
    d.record(events.APPEAL_CREATED, number=number)
    d.meta["appeal"] = number
    d.end()
