"""One reply, each link and each button once (issue 10.3).

A reply is composed of parts — an answer's text and its list of links, the answer and
the offer to go on with a step, a calm word and the menu — and the parts may name the
same thing. The customer sees it once: one tracked link per address, one button per
action. Checked over every answer of the knowledge base, with every link configured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from abonent import clock
from abonent.db.models import TrackedLink
from abonent.db.session import Database
from abonent.nlu.kb import KnowledgeBase
from support import TEST_COMPANY, Customer, LiveServer, make_settings, moscow, payloads, texts

LINKS = {
    name: f"https://energo.example/{name}"
    for name in (
        "site",
        "cabinet",
        "payment",
        "virtual_reception",
        "tariffs",
        "offices",
        "outages",
        "grid_emergency",
        "vacancies",
        "procurement",
        "disclosure",
        "connection",
        "app",
    )
}


@pytest.fixture
def server(fresh_database_url: str) -> Iterator[LiveServer]:
    company = {**TEST_COMPANY, "working_hours": {"mon-fri": "08:00-20:00"}, "links": LINKS}
    srv = LiveServer(make_settings(fresh_database_url, company=company))
    srv.settings.public_url = srv.url
    srv.start()
    yield srv
    srv.stop()


async def _links(url: str) -> list[TrackedLink]:
    db = Database(url)
    async with db.session() as session:
        rows = list(await session.scalars(select(TrackedLink)))
    await db.dispose()
    return rows


def _no_repeats(reply: list[dict[str, Any]], base: str) -> None:
    said = texts(reply)
    tracked = [w.rstrip(".,;") for w in said.split() if w.startswith(f"{base}/r/")]
    assert len(tracked) == len(set(tracked)), said
    shown = payloads(reply)
    assert len(shown) == len(set(shown)), shown
    titles = [b["title"] for m in reply for b in m["buttons"]]
    assert len(titles) == len(set(titles)), titles


async def test_the_appeal_answer_gives_the_reception_link_once(server: LiveServer) -> None:
    clock.set_clock(lambda: moscow(2026, 11, 23, 12, 0))
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        reply = await me.press("intent:appeal")
        said = texts(reply)
        assert said.count("Виртуальная приёмная") == 1
        assert said.count(f"{server.url}/r/") == 1
        [link] = await _links(server.settings.database_url)
        assert link.url == LINKS["virtual_reception"] and link.token in said


async def test_an_obscene_message_offers_the_operator_once(server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        reply = await me.say("да вы там охуели совсем")
        assert "Понимаю, ситуация неприятная" in texts(reply)
        assert payloads(reply).count("operator") == 1
        _no_repeats(reply, server.url)


async def test_no_answer_of_the_knowledge_base_repeats_a_link_or_a_button(
    server: LiveServer,
) -> None:
    """Every topic, asked on its own and in the middle of a flow (answer + «Продолжить»)."""
    clock.set_clock(lambda: moscow(2026, 11, 23, 12, 0))
    kb = KnowledgeBase.load()
    topics = [i.id for i in kb.intents.values() if i.answer is not None and i.kind == "faq"]
    assert len(topics) > 15
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        for intent in topics:
            reply = await me.press(f"intent:{intent}")
            assert reply, intent
            _no_repeats(reply, server.url)
        per_topic = Counter(
            (link.intent, link.url) for link in await _links(server.settings.database_url)
        )
        assert per_topic and max(per_topic.values()) == 1, per_topic

        await me.press("readings")
        for intent in topics:
            reply = await me.press(f"intent:{intent}")
            assert payloads(reply)[-2:] == ["resume", "menu"], intent
            _no_repeats(reply, server.url)


async def test_outside_hours_the_handoff_tracks_the_reception_link_once(
    server: LiveServer,
) -> None:
    clock.set_clock(lambda: moscow(2026, 11, 22, 23, 30))  # Sunday night
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        reply = await me.press("operator")
        said = texts(reply)
        assert "Сейчас операторы не работают" in said
        assert LINKS["virtual_reception"] not in said  # tracked, like every link
        [link] = await _links(server.settings.database_url)
        assert (link.url, link.intent) == (LINKS["virtual_reception"], "operator")
        assert said.count(f"{server.url}/r/{link.token}") == 1
