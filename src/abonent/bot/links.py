"""Links the bot sends go out tracked, once per address in a turn.

Every link goes out as ``/r/<token>``: the token row remembers the conversation, the
topic and the channel, so a click can be counted against them (the redirect lives in
``web/links.py``). One reply may be made of parts that name the same address (an
answer's text and its list of links, the answer and the offer after it): the address
gets one token per turn, and a part that only repeats it drops it. Without a public URL
the links go out as they are.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from abonent.bot.dialog import Dialog
from abonent.clock import utcnow
from abonent.core import events
from abonent.db.models import TrackedLink

_URL = re.compile(r"https?://[^\s<>\"»)]+")


def urls_in(text: str) -> list[str]:
    """The addresses in a text, each once, in order (trailing punctuation is not theirs)."""
    return list(dict.fromkeys(m.group().rstrip(".,;:!?") for m in _URL.finditer(text)))


async def track(d: Dialog, intent: str, links: list[tuple[str, str]]) -> list[str]:
    """The address to send for each (title, url): tracked, and the same one for a URL
    already tracked in this turn."""
    base = d.settings.public_url.rstrip("/")
    if not base:
        return [url for _, url in links]
    rows: list[dict[str, Any]] = []
    for title, url in links:
        if url in d.links:
            continue
        token = secrets.token_urlsafe(9)
        d.links[url] = f"{base}/r/{token}"
        rows.append(
            {
                "token": token,
                "url": url,
                "title": title,
                "conversation_id": d.turn.conversation_id,
                "intent": intent,
                "channel_id": d.turn.channel_id,
                "created_at": utcnow(),
            }
        )
    if rows:
        async with d.services.db.transaction() as session:
            session.add_all(TrackedLink(**row) for row in rows)
        for row in rows:
            d.record(events.LINK_SENT, token=row["token"], url=row["url"], intent=intent)
        d.meta["links"] = int(d.meta.get("links", 0)) + len(rows)
    return [d.links[url] for _, url in links]


async def linkify(d: Dialog, intent: str, text: str) -> str:
    """The text with each of its addresses replaced by the tracked one."""
    found = urls_in(text)
    if not found:
        return text
    for url, sent in zip(found, await track(d, intent, [(url, url) for url in found]), strict=True):
        text = re.sub(re.escape(url) + r"(?![\w/])", sent, text)
    return text
