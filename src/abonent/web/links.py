"""``/r/<token>``: record a click on a link the bot sent, then send the customer on.

The click is an event (``link.clicked``) and nothing else: what it counts towards
(click-through, the most followed links) is the statistics consumer's business.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from abonent.core import eventlog, events
from abonent.core.events import Event
from abonent.db.models import TrackedLink
from abonent.web.deps import RuntimeDep

router = APIRouter(tags=["links"])

_GONE = """<!doctype html><html lang="ru"><meta charset="utf-8"><title>Ссылка не найдена</title>
<body style="font-family:sans-serif;max-width:32rem;margin:4rem auto">
<h1>Ссылка не найдена</h1><p>Возможно, она устарела. Вернитесь в чат и спросите ещё раз.</p>
</body></html>"""


@router.get("/r/{token}", response_class=RedirectResponse, status_code=302)
async def follow(token: str, runtime: RuntimeDep) -> Response:
    if len(token) > 24:
        return HTMLResponse(_GONE, status_code=404)
    async with runtime.db.session() as session:
        link = await session.get(TrackedLink, token)
        if link is None:
            return HTMLResponse(_GONE, status_code=404)
        click = Event(
            events.LINK_CLICKED,
            {
                "token": token,
                "conversation_id": link.conversation_id,
                "intent": link.intent,
                "channel_id": link.channel_id,
                "url": link.url,
            },
        )
        url = link.url
    await eventlog.record_now(runtime.db, runtime.bus, [click])
    return RedirectResponse(url, status_code=302)
