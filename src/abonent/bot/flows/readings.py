"""«Передать показания»: account → confirm the holder → readings per zone → saved.

Steps and their order are data (``PREVIOUS`` drives «назад»); each step is a small
handler. Readings may come in one message («12500 5300») or zone by zone; values
below the last accepted ones are refused (in one bubble naming the zone), an
implausible jump is asked about, and the reply gives the consumption and, where the
company configured prices, its cost per zone. Examples in the prompts are built from
the account's own readings, so an example typed back is accepted.

A billing period is billed by its last readings: when this period's were already
submitted, the customer is asked whether to replace them («Заменить?»), and a
replacement is checked against the readings before the period.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from abonent.billing.accounts import mask_address, mask_holder
from abonent.billing.base import (
    ZONE_TITLES,
    AccountInfo,
    BillingError,
    PeriodSubmission,
    ReadingsAlreadySubmitted,
    ReadingsRejected,
    submission_key,
)
from abonent.billing.readings import (
    ReadingsCheck,
    check_readings,
    days_text,
    example_readings,
    example_text,
    format_date,
    format_kwh,
    format_rub,
    in_window,
    parse_readings,
)
from abonent.bot import attempts
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog, Expect, Shape
from abonent.bot.flows.account import current_account, prompt_account, take_account
from abonent.config import Settings
from abonent.core import events
from abonent.core.types import Button

FLOW = "readings"
PREVIOUS = {"confirm": "account", "replace": "confirm", "values": "confirm", "jump": "values"}
# What an answer to each waiting step looks like (anything else is a question aside).
WAITS: dict[str, Expect] = {
    "account": attempts.ACCOUNT,
    "confirm": attempts.CONFIRM_ACCOUNT,
    "values": attempts.READINGS,
    "jump": attempts.CONFIRM_READINGS,
}
RESUME = t.WHAT_READINGS


def _replace_shape(text: str, settings: Settings) -> Shape:
    """At «Заменить?» the words of the buttons, yes/no, or new readings (a replacement)."""
    if _replace_answer(text, None) is not None:
        return "attempt"
    return attempts.yes_no_or_readings(text, settings)


WAITS["replace"] = Expect(_replace_shape, t.HINT_REPLACE_READINGS)


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
    elif step == "replace":
        await _offer_replace(d, account)
    elif step == "jump" and d.data.get("pending"):
        basis, _ = await _basis(d, account)
        values = [Decimal(v) for v in d.data["pending"]]
        _ask_jump(d, check_readings(basis, values, d.today(), d.settings.readings.max_daily_kwh))
    else:
        d.goto(FLOW, "values")
        d.data.pop("values", None)
        d.data.pop("pending", None)
        await _ask_values(d, account)


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
            await _offer_replace(d, account)
        elif answer is False:
            d.goto(FLOW, "account")
            d.data.pop("account", None)
            await prompt_account(d)
        else:
            _ask_confirm(d, account)
    elif d.step == "replace":
        await _take_replace(d, account, text, payload)
    elif d.step == "values":
        await _take_values(d, account, text)
    elif d.step == "jump":
        answer = _yes_no(text, payload)
        if answer is True:
            await _save(d, account, [Decimal(v) for v in d.data.get("pending", [])])
        elif answer is False:
            d.goto(FLOW, "values")
            d.data.pop("values", None)
            d.data.pop("pending", None)
            await _ask_values(d, account)
        else:
            # New numbers instead of an answer: take them as a fresh attempt.
            d.goto(FLOW, "values")
            d.data.pop("values", None)
            d.data.pop("pending", None)
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
    if word in attempts.YES_WORDS:
        return True
    if word in attempts.NO_WORDS:
        return False
    return None


def _replace_answer(text: str, payload: str | None) -> bool | None:
    """«Заменить» / «Оставить прежние», typed or pressed, or a plain yes / no."""
    if payload in (t.P_YES, t.P_NO):
        return payload == t.P_YES
    word = text.strip().lower().rstrip("!.")
    if word in t.REPLACE_YES_WORDS:
        return True
    if word in t.REPLACE_NO_WORDS:
        return False
    return _yes_no(text, payload)


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


# --- a second submission in one billing period


async def _period_submission(d: Dialog, account: AccountInfo) -> PeriodSubmission | None:
    return await d.services.billing.period_submission(account.number, d.today())


async def _basis(d: Dialog, account: AccountInfo) -> tuple[AccountInfo, PeriodSubmission | None]:
    """What new readings are checked against, and the submission they replace if any.

    Once the customer chose to replace this period's readings, the readings accepted
    before the period: a correction of a too-high reading may be lower than it.
    """
    if not d.data.get("replace"):
        return account, None
    try:
        earlier = await _period_submission(d, account)
    except BillingError:
        # The billing decides under lock when saving (it asks again, or is down then).
        return account, None
    if earlier is None:  # gone meanwhile (the company's export replaced it): a plain one
        return account, None
    return earlier.as_base(account), earlier


async def _offer_replace(d: Dialog, account: AccountInfo) -> None:
    """After the holder is confirmed: ask before replacing this period's readings, if any."""
    try:
        earlier = await _period_submission(d, account)
    except BillingError:
        _billing_down(d)
        return
    if earlier is None:
        d.data.pop("replace", None)
        d.goto(FLOW, "values")
        await _ask_values(d, account)
        return
    _ask_replace(d, account, earlier)


def _ask_replace(d: Dialog, account: AccountInfo, earlier: PeriodSubmission) -> None:
    d.goto(FLOW, "replace")
    d.meta["readings_problem"] = "already_submitted"
    d.say(
        t.READINGS_ALREADY.format(
            date=format_date(earlier.taken_on), values=_values_text(account, earlier.values)
        ),
        Button(t.REPLACE_YES, t.P_YES),
        Button(t.REPLACE_NO, t.P_NO),
        t.BTN_CANCEL,
    )


async def _take_replace(d: Dialog, account: AccountInfo, text: str, payload: str | None) -> None:
    answer = _replace_answer(text, payload)
    if answer is None and payload is None and parse_readings(text):
        # New readings instead of an answer: the customer means to replace.
        d.data["replace"] = True
        d.data.pop("pending", None)
        d.goto(FLOW, "values")
        await _take_values(d, account, text)
        return
    if answer is None:
        await _offer_replace(d, account)
        return
    try:
        earlier = await _period_submission(d, account)
    except BillingError:
        _billing_down(d)
        return
    if answer is False:
        d.data.pop("pending", None)
        if earlier is not None:
            d.say(
                t.READINGS_KEPT.format(
                    date=format_date(earlier.taken_on),
                    values=_values_text(account, earlier.values),
                ),
                t.BTN_BALANCE,
                t.BTN_MENU,
            )
        else:
            d.say(t.CANCELLED, *t.MENU_BUTTONS)
        d.meta["readings_kept"] = True
        d.end()
        return
    d.data["replace"] = True
    d.goto(FLOW, "values")
    pending = d.data.pop("pending", None)
    if pending:
        # The values were typed before the earlier submission came to light.
        await _check_and_save(d, account, [Decimal(v) for v in pending])
    else:
        await _ask_values(d, account)


# --- the readings themselves


def _zone_list(account: AccountInfo) -> str:
    return ", ".join(f"«{ZONE_TITLES[z]}»" for z in account.zones)


def _values_text(account: AccountInfo, values: Sequence[Decimal]) -> str:
    """«12 500 кВт·ч» or «день 12 500, ночь 5 300,5 кВт·ч»."""
    if account.plan == "single":
        return f"{format_kwh(values[0])} кВт·ч"
    parts = [
        f"{ZONE_TITLES[z]} {format_kwh(v)}" for z, v in zip(account.zones, values, strict=True)
    ]
    return f"{', '.join(parts)} кВт·ч"


def _previous_text(account: AccountInfo) -> str:
    if account.readings_date is None and not any(account.last_readings):
        return "нет данных"
    values = _values_text(account, account.last_readings)
    if account.readings_date is None:
        return values
    return f"{values} от {format_date(account.readings_date)}"


def _example(d: Dialog, basis: AccountInfo, first: int = 0, count: int = 3) -> str:
    """An example the checks would accept, for ``count`` zones from ``first`` on."""
    values = example_readings(basis, d.today(), d.settings.readings.max_daily_kwh)
    return example_text(values[first : first + count])


def _values_prompt(d: Dialog, basis: AccountInfo, earlier: PeriodSubmission | None) -> str:
    collected = d.data.get("values") or []
    if collected:
        zone = basis.zones[len(collected)]
        return t.ASK_NEXT_ZONE.format(
            zone=ZONE_TITLES[zone],
            example=_example(d, basis, len(collected), 1),
            previous=format_kwh(basis.last_readings[len(collected)]),
        )
    if basis.plan == "single":
        text = t.ASK_SINGLE.format(example=_example(d, basis), previous=_previous_text(basis))
    else:
        text = t.ASK_ZONES.format(
            count={2: "двух", 3: "трёх"}[len(basis.zones)],
            order=_zone_list(basis),
            example=_example(d, basis),
            previous=_previous_text(basis),
        )
    if earlier is not None:
        text += "\n" + t.READINGS_REPLACING.format(
            date=format_date(earlier.taken_on), values=_values_text(basis, earlier.values)
        )
    return text


async def _ask_values(d: Dialog, account: AccountInfo) -> None:
    basis, earlier = await _basis(d, account)
    d.say(_values_prompt(d, basis, earlier), t.BTN_BACK, t.BTN_CANCEL)


async def _take_values(d: Dialog, account: AccountInfo, text: str) -> None:
    basis, _ = await _basis(d, account)
    parsed = parse_readings(text)
    if not parsed:
        d.misses += 1
        d.say(t.READINGS_UNREADABLE.format(example=_example(d, basis)), t.BTN_BACK, t.BTN_CANCEL)
        if d.misses >= 3:
            d.say(d.fmt(t.NOT_UNDERSTOOD_AGAIN), t.BTN_OPERATOR, t.BTN_MENU)
            d.misses = 0
        return
    collected = [Decimal(v) for v in d.data.get("values") or []] + parsed
    need = len(basis.zones)
    if len(collected) > need:
        d.data.pop("values", None)
        if need == 1:
            d.say(
                t.READINGS_TOO_MANY_ONE.format(example=_example(d, basis)),
                t.BTN_BACK,
                t.BTN_CANCEL,
            )
        else:
            d.say(
                t.READINGS_TOO_MANY.format(
                    count=need, order=_zone_list(basis), example=_example(d, basis)
                ),
                t.BTN_BACK,
                t.BTN_CANCEL,
            )
        return
    if len(collected) < need:
        d.data["values"] = [str(v) for v in collected]
        await _ask_values(d, account)
        return
    d.data.pop("values", None)
    await _check_and_save(d, account, collected)


async def _check_and_save(d: Dialog, account: AccountInfo, values: list[Decimal]) -> None:
    if not d.data.get("replace"):
        try:
            earlier = await _period_submission(d, account)
        except BillingError:
            _billing_down(d)
            return
        if earlier is not None:
            # Sent from elsewhere (a relative, an operator) since this dialog began: ask
            # first, and check against last month's readings, not against those.
            d.data["pending"] = [str(v) for v in values]
            _ask_replace(d, account, earlier)
            return
    basis, _ = await _basis(d, account)
    check = check_readings(basis, values, d.today(), d.settings.readings.max_daily_kwh)
    if check.lower:
        # One bubble: what is wrong, zone by zone, and what to type instead.
        lines = [
            t.READINGS_LOWER.format(
                zone=f" «{ZONE_TITLES[low.zone]}»" if basis.plan != "single" else "",
                given=format_kwh(low.given),
                previous=format_kwh(low.previous),
                since=f" (от {format_date(basis.readings_date)})" if basis.readings_date else "",
            )
            for low in check.lower
        ]
        if basis.plan == "single":
            lines.append(t.READINGS_LOWER_AGAIN_ONE.format(example=_example(d, basis)))
        else:
            lines.append(
                t.READINGS_LOWER_AGAIN.format(order=_zone_list(basis), example=_example(d, basis))
            )
        d.say("\n".join(lines), t.BTN_BACK, t.BTN_CANCEL)
        d.meta["readings_problem"] = "lower"
        return
    # The company's own checks (automation.hooks): a veto is its message, and the step waits.
    company = d.services.readings_checks
    veto = (
        await company.veto_readings(
            basis,
            values,
            d.today(),
            conversation_id=d.turn.conversation_id,
            contact_id=d.turn.contact_id,
            channel_id=d.turn.channel_id,
            replacing=bool(d.data.get("replace")),
        )
        if company
        else None
    )
    if veto is not None:
        d.say(veto, t.BTN_BACK, t.BTN_CANCEL)
        d.meta["readings_problem"] = "company_check"
        return
    if check.jump is not None:
        d.data["pending"] = [str(v) for v in values]
        d.goto(FLOW, "jump")
        d.meta["readings_problem"] = "jump"
        _ask_jump(d, check)
        return
    await _save(d, account, values)


def _ask_jump(d: Dialog, check: ReadingsCheck) -> None:
    if check.jump is None:
        return
    total = format_kwh(check.jump.total)
    text = (
        t.READINGS_JUMP.format(total=total, days=days_text(check.jump.days))
        if check.jump.days > 0
        else t.READINGS_JUMP_TODAY.format(total=total)
    )
    d.say(text, Button(t.JUMP_YES, t.P_YES), Button(t.JUMP_NO, t.P_NO), t.BTN_CANCEL)


def _billing_down(d: Dialog) -> None:
    d.say(t.BILLING_DOWN, t.BTN_OPERATOR, t.BTN_MENU)
    d.end()


async def _save(d: Dialog, account: AccountInfo, values: list[Decimal]) -> None:
    try:
        result = await d.services.billing.submit_readings(
            account.number,
            values,
            d.today(),
            source="bot",
            conversation_id=d.turn.conversation_id,
            replace=bool(d.data.get("replace")),
            submission_id=submission_key(d.turn.conversation_id, d.turn.message_id),
        )
    except ReadingsAlreadySubmitted as exc:
        # Someone sent this period's readings since the customer started: ask first.
        d.data["pending"] = [str(v) for v in values]
        _ask_replace(d, account, exc.earlier)
        return
    except ReadingsRejected as exc:
        d.say(t.READINGS_ERROR.format(reason=exc.reason), t.BTN_OPERATOR, t.BTN_MENU)
        d.end()
        return
    except BillingError:
        _billing_down(d)
        return
    header = t.READINGS_REPLACED if result.replaced is not None else t.READINGS_ACCEPTED
    if result.queued:  # billing is down: kept by us, passed on when it is back
        header = t.READINGS_QUEUED
    lines = [header.format(number=account.number, date=format_date(d.today()))]
    since = format_date(result.previous_date) if result.previous_date else None
    for zone in result.zones:
        title = ZONE_TITLES[zone.zone].capitalize() if account.plan != "single" else "Показание"
        if since is None:
            lines.append(
                t.READINGS_ZONE_LINE_FIRST.format(zone=title, current=format_kwh(zone.current))
            )
        elif zone.tariff is None or zone.cost is None:
            lines.append(
                t.READINGS_ZONE_LINE_NO_PRICE.format(
                    zone=title,
                    current=format_kwh(zone.current),
                    consumption=format_kwh(zone.consumption),
                    since=since,
                )
            )
        else:
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
        consumption = format_kwh(result.total_consumption)
        if result.total_cost is None:
            lines.append(t.READINGS_TOTAL_NO_PRICE.format(consumption=consumption))
        else:
            lines.append(
                t.READINGS_TOTAL.format(consumption=consumption, cost=format_rub(result.total_cost))
            )
        if result.queued:
            lines.append(t.READINGS_QUEUED_ESTIMATE)
    d.say("\n".join(lines), t.BTN_BALANCE, t.BTN_MENU)
    d.meta["readings_saved"] = [str(v) for v in values]
    d.record(
        events.READINGS_SUBMITTED,
        account=account.number,
        plan=account.plan,
        consumption=str(result.total_consumption),
        cost=None if result.total_cost is None else str(result.total_cost),
        replaced=result.replaced is not None,
        queued=result.queued,
    )
    d.end()
