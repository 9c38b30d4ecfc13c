"""An example company package of Abonent hooks (docs/hooks.md).

Three hooks a utility runs in production, each small enough to read in a minute:

* ``crm_phone``: when a customer is handed to an operator, the phone the company's CRM
  has for the customer's account is put on the operator's card, with a note.
* ``no_power``: a customer who writes that there is no power («нет света», «отключили
  электричество») is told the emergency number, and the conversation goes to the
  operators' queue tagged «нет света» with a note naming the district, so the duty
  supervisor sees outages as they are reported.
* ``meter_digits``: a readings check that refuses a value with more whole digits than
  the customer's meter shows (an extra digit, or a lost decimal comma: «126805» for
  12680,5), before it is stored and before the bot asks about an implausible jump.

Load it with ``[hooks] modules = ["company_hooks"]`` (and ``paths = ["examples/hooks"]``
when it is not pip-installed), or install it: its pyproject.toml declares the
``abonent.hooks`` entry point.
"""

from __future__ import annotations

import os
import re

from abonent.automation.hooks import HookApi, HookEvent, HookSet, ReadingsCheck
from abonent.billing.base import ZONE_TITLES

hooks = HookSet("company")

# The tag that marks an outage report (also how the hook knows it has seen this chat).
NO_POWER_TAG = "нет света"
# The operators' group on duty for outages; empty: the common queue.
OUTAGE_GROUP = os.environ.get("COMPANY_HOOKS_OUTAGE_GROUP", "")
# Household meters show at least this many whole digits (a reading of 950 on a new
# meter is «00950»): a value longer than the meter's display is a typo.
MIN_METER_DIGITS = int(os.environ.get("COMPANY_HOOKS_MIN_METER_DIGITS", "5"))

_NO_POWER = re.compile(
    r"\b(?:нет|пропал[аои]?|отключили|отключено|отключают|вырубили|без)\s+"
    r"(?:у\s+нас\s+|опять\s+|снова\s+)?"
    r"(?:свет[аи]?|электричеств[оа]|электроэнерги[ияю]|напряжени[яе])\b",
    re.IGNORECASE,
)
# «в Заречном районе», «Заречный район», «район Заречный», «в посёлке Сосновка».
_DISTRICT = (
    re.compile(r"\b([А-ЯЁ][а-яё-]+)\s+(?:район|микрорайон)", re.IGNORECASE),
    re.compile(r"\b(?:район[еа]?|микрорайон[еа]?)\s+([А-ЯЁ][а-яё-]+)", re.IGNORECASE),
    re.compile(
        r"\b(?:в|во)\s+(?:посёлке|поселке|селе|деревне|городе|пос\.|с\.|д\.)\s+([А-ЯЁ][а-яё-]+)",
        re.IGNORECASE,
    ),
)


def reports_no_power(text: str) -> bool:
    return bool(_NO_POWER.search(text))


def district_of(text: str) -> str | None:
    """The district a customer names, as written («Заречном» stays «Заречном»: operators
    read it, nobody parses it further)."""
    for pattern in _DISTRICT:
        found = pattern.search(text)
        if found:
            return found.group(1)
    return None


@hooks.on("conversation.queued")
async def crm_phone(event: HookEvent, api: HookApi) -> None:
    """Put the CRM's phone for the customer's account on the card, once per contact."""
    if event.data.get("reason", "handoff") != "handoff":
        return  # back in the queue because an operator left: the card has been seen
    if await api.contact_phone():
        return  # the messenger gave one, or an earlier run put one there
    for account in (await api.accounts())[:3]:
        # A CrmError (the CRM is down) fails the run: it is tried again later.
        person = await api.crm.find(None, account)
        if person is None or not person.phones:
            continue
        phone = await api.set_card_phone(person.phones[0])
        who = person.name or "без имени"
        await api.note(f"Телефон из CRM по счёту {account}: {phone} ({who})")
        return


@hooks.on("message.received")
async def no_power(event: HookEvent, api: HookApi) -> None:
    """An outage report: the emergency number to the customer, the chat to the queue."""
    text = event.text or ""
    if not reports_no_power(text):
        return
    if NO_POWER_TAG in await api.tags():
        return  # already reported in this conversation (or a repeated run)
    district = district_of(text)
    place = f"район «{district}»" if district else "район не назван"
    phone = api.company.emergency_phone
    await api.reply(
        f"Если у вас нет света, позвоните в аварийную службу: {phone} (круглосуточно). "
        "Я передал ваше сообщение дежурному специалисту — он ответит здесь же."
    )
    await api.handoff(f"нет света, {place}", group=OUTAGE_GROUP or None)
    await api.note(
        f"Сообщение об отключении электроэнергии: {place}. "
        "Проверьте аварийные отключения и сообщите дежурному диспетчеру."
    )
    # Last: it marks the report handled, so a repeated run redoes the steps before it.
    await api.tag(NO_POWER_TAG)


@hooks.readings_check
async def meter_digits(ctx: ReadingsCheck) -> str | None:
    """Refuse a value longer than the meter's display (taken from the last reading)."""
    if ctx.account.readings_date is None:
        return None  # nothing known of this meter yet
    for zone, value, previous in zip(ctx.account.zones, ctx.values, ctx.previous, strict=True):
        allowed = max(MIN_METER_DIGITS, len(str(int(previous))))
        digits = len(str(int(value)))
        if digits <= allowed:
            continue
        where = "" if ctx.account.plan == "single" else f" (зона «{ZONE_TITLES[zone]}»)"
        return (
            f"Показание {int(value)}{where} длиннее, чем может показать ваш счётчик: "
            f"в нём не больше {allowed} цифр до запятой. Возможно, введена лишняя цифра "
            "или пропущена запятая. Проверьте показания на счётчике и введите их ещё раз."
        )
    return None
