"""Turning reminders off and on: «стоп», «отписаться», the reminder's «Отписаться»
button, and «подписаться».

The refusal is written in the turn (with the reply that confirms it), so a reminder
already queued for this contact is skipped by the sender's check before it goes out.
«стоп» in the middle of a flow still cancels the flow (it always has): only outside a
flow, or with «отписаться» and the button, is it a refusal of reminders.
"""

from __future__ import annotations

from abonent.automation.reminders import consent
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.core import events
from abonent.nlu.normalize import normalize

OFF_ALWAYS = frozenset(
    {
        "отписаться",
        "отпишите",
        "отписаться от напоминаний",
        "отключить напоминания",
        "не присылайте напоминания",
        "unsubscribe",
    }
)
OFF_OUTSIDE_FLOWS = frozenset({"стоп", "stop", "хватит"})
ON = frozenset({"подписаться", "включить напоминания", "подписаться на напоминания"})


def wanted(d: Dialog, text: str, payload: str | None) -> str | None:
    """``P_REMINDERS_OFF`` / ``P_REMINDERS_ON`` when the customer asks that, else None."""
    if payload in (t.P_REMINDERS_OFF, t.P_REMINDERS_ON):
        return payload
    if payload:
        return None
    said = normalize(text).removeprefix("/")
    if said in OFF_ALWAYS or (said in OFF_OUTSIDE_FLOWS and d.flow is None):
        return t.P_REMINDERS_OFF
    if said in ON:
        return t.P_REMINDERS_ON
    return None


async def handle(d: Dialog, what: str, payload: str | None) -> None:
    off = what == t.P_REMINDERS_OFF
    how = "button" if payload else "message"
    await consent.set_state(
        d.services.db, d.turn.contact_id, "out" if off else "in", how, d.turn.channel_id
    )
    d.record(
        events.REMINDER_OPTED_OUT if off else events.REMINDER_OPTED_IN,
        contact_id=d.turn.contact_id,
        how=how,
    )
    d.meta["reminders"] = "off" if off else "on"
    d.end()
    if off:
        d.say(t.REMINDERS_OFF, t.BTN_REMINDERS_ON, t.BTN_MENU)
    else:
        d.say(t.REMINDERS_ON, t.BTN_MENU)
