"""``/r/<token>``: count a click on a link the bot sent, then send the customer on."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from abonent.core import events
from abonent.core.events import Event
from abonent.db.models import LinkClick, TrackedLink
from abonent.web.deps import RuntimeDep

router = APIRouter(tags=["links"])

_GONE = """<!doctype html><html lang="ru"><meta charset="utf-8"><title>Ссылка не найдена</title>
<body style="font-family:sans-serif;max-width:32rem;margin:4rem auto">
<h1>Ссылка не найдена</h1><p>Возможно, она устарела. Вернитесь в чат и спросите ещё раз.</p>
</body></html>"""


@router.get("/r/{token}", response_class=RedirectResponse, status_code=302)
async def follow(token: str, runtime: RuntimeDep) -> Response:
    async with runtime.db.transaction() as session:
        link = await session.get(TrackedLink, token)
        if link is None:
            return HTMLResponse(_GONE, status_code=404)
        session.add(LinkClick(token=token))
        url, conversation_id, intent, channel_id = (
            link.url,
            link.conversation_id,
            link.intent,
            link.channel_id,
        )
    await runtime.bus.publish(
        Event(
            events.LINK_CLICKED,
            {"conversation_id": conversation_id, "intent": intent, "channel_id": channel_id},
        )
    )
    return RedirectResponse(url, status_code=302)
