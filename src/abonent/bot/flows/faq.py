"""Answers from the knowledge base, with tracked links, and the honest fallback.

Links go out tracked (``bot.links``), each address once per reply: an answer that
names its link in the text and lists it under the text too prints it once.
"""

from __future__ import annotations

import re

from abonent.bot import answers, links
from abonent.bot import texts as t
from abonent.bot.dialog import Dialog
from abonent.core.types import Button
from abonent.nlu.base import Interpretation

# Topics whose answer depends on the customer's own records: with specifics in the
# message (an account number, an amount) the bot hands over instead of guessing.
PERSONAL_INTENTS = frozenset({"payment_missing", "recalculation", "disconnection_debt"})
_SPECIFICS = re.compile(r"\d{3,}")
MAX_TOPICS = 3
# Below this the "closest" topic is no closer than any other: offering it is noise.
MIN_TOPIC_SCORE = 0.02


async def answer(d: Dialog, intent: str, *, text: str = "") -> bool:
    """Say the knowledge base's answer for ``intent``; False when it has none."""
    kb = d.services.kb()
    if kb is None or intent not in kb.intents or kb.intents[intent].answer is None:
        return False
    rendered = kb.render(intent, d.services.placeholders)
    # A topic whose answer is filled from the company's data (prices) says that instead.
    filled = await answers.fill(d, intent)
    if filled is not None:
        rendered = rendered._replace(text=filled)
    body = await links.linkify(d, intent, rendered.text)
    in_text = set(links.urls_in(rendered.text))
    # A listed link the text already gives is not listed again.
    listed: list[tuple[str, str]] = []
    for link in rendered.links:
        if link.url not in in_text and all(link.url != url for _, url in listed):
            listed.append((link.title, link.url))
    lines = [body]
    if listed:
        lines.append("")
        sent = await links.track(d, intent, listed)
        lines.extend(f"{title}: {url}" for (title, _), url in zip(listed, sent, strict=True))
    buttons = [Button(b.title, b.payload) for b in rendered.buttons]
    personal = intent in PERSONAL_INTENTS and _SPECIFICS.search(text) is not None
    if personal:
        d.say("\n".join(lines).strip())
        d.say(t.PERSONAL_CASE)
        d.handoff = True
        d.meta["personal_case"] = True
        return True
    d.say("\n".join(lines).strip(), *buttons, t.BTN_MENU)
    d.meta["answered"] = intent
    return True


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
        # Only real topics: a greeting or a thank-you is no answer to a question.
        for intent, score in meaning.alternatives:
            if kb.is_topic(intent) and score >= MIN_TOPIC_SCORE and len(topics) < MAX_TOPICS:
                topics.append(Button(kb.title(intent), t.P_INTENT + intent))
    d.say(t.REPHRASE, *topics, t.BTN_OPERATOR)
    d.meta["fallback"] = "rephrase"
