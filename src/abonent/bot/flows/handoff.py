"""Handing the conversation to a human: queue position in working hours, the
call centre and the written virtual reception outside them."""

from __future__ import annotations

from abonent.bot import links
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.core import events
from abonent.core.conversations import queue_length


async def begin(d: Dialog) -> None:
    d.record(events.FLOW_STARTED, flow="operator")
    company = d.settings.company
    if company.working_hours.is_open(d.now()):
        position = await queue_length(d.services.db) + 1
        d.say(d.fmt(t.HANDOFF_OPEN, position=position))
    else:
        lines = [d.fmt(t.HANDOFF_CLOSED)]
        reception = company.links.get("virtual_reception")
        if reception:
            sent = await links.linkify(d, "operator", reception)
            lines.append(t.HANDOFF_RECEPTION.format(link=sent))
        lines.append(d.fmt(t.HANDOFF_EMERGENCY))
        d.say("\n".join(lines))
    d.end()
    d.handoff = True
