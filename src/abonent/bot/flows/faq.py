"""Answers from the knowledge base, with tracked links, and the honest fallback.

Every link goes out as ``/r/<token>``: the token row remembers the conversation, the
topic and the channel, so a click can be counted against them (the redirect lives in
``web/links.py``). Without a public URL the links go out as they are.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.clock import utcnow
from abonent.core import events
from abonent.core.types import Button
from abonent.db.models import TrackedLink
from abonent.nlu.base import Interpretation

# Topics whose answer depends on the customer's own records: with specifics in the
# message (an account number, an amount) the bot hands over instead of guessing.
PERSONAL_INTENTS = frozenset({"payment_missing", "recalculation", "disconnection_debt"})
_SPECIFICS = re.compile(r"\d{3,}")
_URL = re.compile(r"https?://[^\s<>\"»)]+")
MAX_TOPICS = 3


def _url_in_text(text: str) -> list[str]:
    return [m.group().rstrip(".,;:!?") for m in _URL.finditer(text)]


async def answer(d: Dialog, intent: str, *, text: str = "") -> bool:
    """Say the knowledge base's answer for ``intent``; False when it has none."""
    kb = d.services.kb()
    if kb is None or intent not in kb.intents or kb.intents[intent].answer is None:
        return False
    rendered = kb.render(intent, d.services.placeholders)
    # Every link, in the text or listed under it, goes out tracked.
    in_text = list(dict.fromkeys(_url_in_text(rendered.text)))
    links = [(link.title, link.url) for link in rendered.links]
    tracked = await _track(d, intent, [(url, url) for url in in_text] + links)
    body = rendered.text
    for url, (_, short) in zip(in_text, tracked, strict=False):
        body = re.sub(re.escape(url) + r"(?![\w/])", short, body)
    lines = [body]
    if links:
        lines.append("")
        lines.extend(f"{title}: {url}" for title, url in tracked[len(in_text) :])
    buttons = [Button(b.title, b.payload) for b in rendered.buttons]
    personal = intent in PERSONAL_INTENTS and _SPECIFICS.search(text) is not None
    if personal:
        d.say("\n".join(lines).strip())
        d.say(t.PERSONAL_CASE)
        d.handoff = True
        d.meta["personal_case"] = True
        return True
    if t.BTN_MENU not in buttons:
        buttons.append(t.BTN_MENU)
    d.say("\n".join(lines).strip(), *buttons)
    d.meta["answered"] = intent
    return True


async def _track(d: Dialog, intent: str, links: list[tuple[str, str]]) -> list[tuple[str, str]]:
    base = d.settings.public_url.rstrip("/")
    if not base or not links:
        return links
    rows: list[dict[str, Any]] = []
    result = []
    for title, url in links:
        token = secrets.token_urlsafe(9)
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
        result.append((title, f"{base}/r/{token}"))
    async with d.services.db.transaction() as session:
        session.add_all(TrackedLink(**row) for row in rows)
    for row in rows:
        d.record(events.LINK_SENT, token=row["token"], url=row["url"], intent=intent)
    d.meta["links"] = len(rows)
    return result


def fallback(d: Dialog, meaning: Interpretation) -> None:
    """First miss: ask to rephrase, offering the closest topics; second: the ways out."""
    d.misses += 1
    if d.misses >= 2:
        d.misses = 0
        d.say(d.fmt(t.GIVE_UP), t.BTN_OPERATOR, t.BTN_APPEAL, t.BTN_MENU)
        d.meta["fallback"] = "give_up"
        return
    kb = d.services.kb()
    topics: list[Button] = []
    if kb is not None:
        for intent, _score in meaning.alternatives:
            if intent in kb.intents and len(topics) < MAX_TOPICS:
                topics.append(Button(kb.title(intent), t.P_INTENT + intent))
    d.say(t.REPHRASE, *topics, t.BTN_OPERATOR)
    d.meta["fallback"] = "rephrase"
