"""«Передать показания»: account → confirm the holder → readings per zone → saved.

Steps and their order are data (``PREVIOUS`` drives «назад»); each step is a small
handler. Readings may come in one message («12500 5300») or zone by zone; values
below the last accepted ones are refused, an implausible jump is asked about, and
the reply gives the consumption and its cost per zone.
"""

from __future__ import annotations

from decimal import Decimal

from abonent.billing.accounts import mask_address, mask_holder
from abonent.billing.base import ZONE_TITLES, AccountInfo, BillingError, ReadingsRejected
from abonent.billing.readings import (
    check_readings,
    format_date,
    format_kwh,
    format_rub,
    in_window,
    parse_readings,
)
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.bot.flows.account import current_account, prompt_account, take_account
from abonent.core import events
from abonent.core.types import Button

FLOW = "readings"
PREVIOUS = {"confirm": "account", "values": "confirm", "jump": "values"}
EXAMPLES = {"single": "12500", "two_zone": "12500 5300", "three_zone": "4200 6100 5300"}


async def begin(d: Dialog) -> None:
    d.record(events.FLOW_STARTED, flow=FLOW)
    cfg = d.settings.readings
    if not in_window(d.today(), cfg):
        d.say(
            t.READINGS_WINDOW_CLOSED.format(
                first=cfg.first_day, last=cfg.last_day, today=format_date(d.today())
            ),
            t.BTN_BALANCE,
            t.BTN_MENU,
        )
        d.meta["readings_window"] = "closed"
        d.end()
        return
    d.goto(FLOW, "account")
    d.data = {}
    await prompt_account(d)


async def prompt(d: Dialog, step: str) -> None:
    if step == "account":
        await prompt_account(d)
        return
    account = await _account_or_restart(d)
    if account is None:
        return
    if step == "confirm":
        _ask_confirm(d, account)
    else:
        d.data.pop("values", None)
        _ask_values(d, account)


async def handle(d: Dialog, text: str, payload: str | None) -> None:
    if d.step == "account":
        account = await take_account(d, text, payload)
        if account is not None:
            d.goto(FLOW, "confirm")
            _ask_confirm(d, account)
        return
    account = await _account_or_restart(d)
    if account is None:
        return
    if d.step == "confirm":
        answer = _yes_no(text, payload)
        if answer is True:
            await d.services.contacts.confirm_account(d.turn.contact_id, account.number)
            d.goto(FLOW, "values")
            _ask_values(d, account)
        elif answer is False:
            d.goto(FLOW, "account")
            d.data.pop("account", None)
            await prompt_account(d)
        else:
            _ask_confirm(d, account)
    elif d.step == "values":
        await _take_values(d, account, text)
    elif d.step == "jump":
        answer = _yes_no(text, payload)
        if answer is True:
            await _save(d, account, [Decimal(v) for v in d.data.get("pending", [])])
        elif answer is False:
            d.goto(FLOW, "values")
            d.data.pop("values", None)
            _ask_values(d, account)
        else:
            # New numbers instead of an answer: take them as a fresh attempt.
            d.goto(FLOW, "values")
            d.data.pop("values", None)
            await _take_values(d, account, text)


async def _account_or_restart(d: Dialog) -> AccountInfo | None:
    """The account chosen earlier in this dialog; if it is gone, ask for one again."""
    account = await current_account(d)
    if account is None:
        d.goto(FLOW, "account")
        await prompt_account(d)
    return account


def _yes_no(text: str, payload: str | None) -> bool | None:
    if payload in (t.P_YES, t.P_NO):
        return payload == t.P_YES
    word = text.strip().lower().rstrip("!.")
    if word in {
        "да",
        "верно",
        "да верно",
        "да, верно",
        "ок",
        "ok",
        "yes",
        "подтверждаю",
        "все верно",
        "всё верно",
        "да, всё верно",
        "да, все верно",
        "правильно",
    }:
        return True
    if word in {
        "нет",
        "не",
        "нет, другой счёт",
        "нет, другой счет",
        "no",
        "неверно",
        "ввести заново",
        "заново",
    }:
        return False
    return None


def _ask_confirm(d: Dialog, account: AccountInfo) -> None:
    d.say(
        t.CONFIRM_ACCOUNT.format(
            number=account.number,
            holder=mask_holder(account.holder),
            address=mask_address(account.address),
        ),
        Button(t.CONFIRM_YES, t.P_YES),
        Button(t.CONFIRM_NO, t.P_NO),
        t.BTN_CANCEL,
    )


def _zone_list(account: AccountInfo) -> str:
    return ", ".join(f"«{ZONE_TITLES[z]}»" for z in account.zones)


def _previous_text(account: AccountInfo) -> str:
    if account.readings_date is None:
        return "нет данных"
    when = format_date(account.readings_date)
    if account.plan == "single":
        return f"{format_kwh(account.last_readings[0])} кВт·ч от {when}"
    parts = [
        f"{ZONE_TITLES[z]} {format_kwh(v)}"
        for z, v in zip(account.zones, account.last_readings, strict=True)
    ]
    return f"{', '.join(parts)} кВт·ч от {when}"


def _ask_values(d: Dialog, account: AccountInfo) -> None:
    collected = d.data.get("values") or []
    if collected:
        zone = account.zones[len(collected)]
        prev = account.last_readings[len(collected)]
        d.say(
            t.ASK_NEXT_ZONE.format(zone=ZONE_TITLES[zone], previous=format_kwh(prev)),
            t.BTN_BACK,
            t.BTN_CANCEL,
        )
        return
    if account.plan == "single":
        d.say(t.ASK_SINGLE.format(previous=_previous_text(account)), t.BTN_BACK, t.BTN_CANCEL)
    else:
        d.say(
            t.ASK_ZONES.format(
                count={2: "двух", 3: "трёх"}[len(account.zones)],
                order=_zone_list(account),
                example=EXAMPLES[account.plan],
                previous=_previous_text(account),
            ),
            t.BTN_BACK,
            t.BTN_CANCEL,
        )


async def _take_values(d: Dialog, account: AccountInfo, text: str) -> None:
    parsed = parse_readings(text)
    if not parsed:
        d.misses += 1
        d.say(
            t.READINGS_UNREADABLE.format(example=EXAMPLES[account.plan]), t.BTN_BACK, t.BTN_CANCEL
        )
        if d.misses >= 3:
            d.say(d.fmt(t.NOT_UNDERSTOOD_AGAIN), t.BTN_OPERATOR, t.BTN_MENU)
            d.misses = 0
        return
    collected = [Decimal(v) for v in d.data.get("values") or []] + parsed
    need = len(account.zones)
    if len(collected) > need:
        d.data.pop("values", None)
        if need == 1:
            d.say(t.READINGS_TOO_MANY_ONE, t.BTN_BACK, t.BTN_CANCEL)
        else:
            d.say(
                t.READINGS_TOO_MANY.format(count=need, order=_zone_list(account)),
                t.BTN_BACK,
                t.BTN_CANCEL,
            )
        return
    if len(collected) < need:
        d.data["values"] = [str(v) for v in collected]
        _ask_values(d, account)
        return
    d.data.pop("values", None)
    check = check_readings(account, collected, d.today(), d.settings.readings.max_daily_kwh)
    if check.lower:
        for low in check.lower:
            d.say(
                t.READINGS_LOWER.format(
                    zone=f" «{ZONE_TITLES[low.zone]}»" if account.plan != "single" else "",
                    given=format_kwh(low.given),
                    previous=format_kwh(low.previous),
                    date=format_date(account.readings_date) if account.readings_date else "—",
                ),
            )
        d.meta["readings_problem"] = "lower"
        _ask_values(d, account)
        return
    if check.jump is not None:
        d.data["pending"] = [str(v) for v in collected]
        d.goto(FLOW, "jump")
        d.meta["readings_problem"] = "jump"
        d.say(
            t.READINGS_JUMP.format(total=format_kwh(check.jump.total), days=check.jump.days),
            Button(t.JUMP_YES, t.P_YES),
            Button(t.JUMP_NO, t.P_NO),
            t.BTN_CANCEL,
        )
        return
    await _save(d, account, collected)


async def _save(d: Dialog, account: AccountInfo, values: list[Decimal]) -> None:
    try:
        result = await d.services.billing.submit_readings(
            account.number,
            values,
            d.today(),
            source="bot",
            conversation_id=d.turn.conversation_id,
        )
    except ReadingsRejected as exc:
        d.say(t.READINGS_ERROR.format(reason=exc.reason), t.BTN_OPERATOR, t.BTN_MENU)
        d.end()
        return
    except BillingError:
        d.say(t.BILLING_DOWN, t.BTN_OPERATOR, t.BTN_MENU)
        d.end()
        return
    lines = [t.READINGS_ACCEPTED.format(number=account.number, date=format_date(d.today()))]
    since = format_date(result.previous_date) if result.previous_date else None
    for zone in result.zones:
        title = ZONE_TITLES[zone.zone].capitalize() if account.plan != "single" else "Показание"
        if since is None:
            lines.append(
                t.READINGS_ZONE_LINE_FIRST.format(zone=title, current=format_kwh(zone.current))
            )
            continue
        lines.append(
            t.READINGS_ZONE_LINE.format(
                zone=title,
                current=format_kwh(zone.current),
                consumption=format_kwh(zone.consumption),
                since=since,
                tariff=format_rub(zone.tariff),
                cost=format_rub(zone.cost),
            )
        )
    if since is not None:
        lines.append(
            t.READINGS_TOTAL.format(
                consumption=format_kwh(result.total_consumption), cost=format_rub(result.total_cost)
            )
        )
    d.say("\n".join(lines), t.BTN_BALANCE, t.BTN_MENU)
    d.meta["readings_saved"] = [str(v) for v in values]
    d.record(
        events.READINGS_SUBMITTED,
        account=account.number,
        plan=account.plan,
        consumption=str(result.total_consumption),
        cost=str(result.total_cost),
    )
    d.end()
