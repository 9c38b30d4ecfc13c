"""The end of a chat with an operator always leaves the customer a way on: the rating
buttons and then the menu, or the menu at once when the survey is off; the same for
"back to the bot" and leaving the queue."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import httpx
import pytest

from abonent.bot import texts as t
from abonent.db.session import Database
from abonent.operators.users import add_user
from support import PASSWORD, Customer, LiveServer, Operator, make_settings, payloads

MENU = [b.payload for b in t.MENU_BUTTONS]


@pytest.fixture
def start(fresh_database_url: str) -> Iterator[Callable[..., LiveServer]]:
    async def seed() -> None:
        db = Database(fresh_database_url)
        await add_user(db, "anna", PASSWORD, name="Анна")
        await db.dispose()

    asyncio.run(seed())
    servers: list[LiveServer] = []

    def run(**overrides: Any) -> LiveServer:
        server = LiveServer(make_settings(fresh_database_url, **overrides)).start()
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def with_operator(server: LiveServer, http: httpx.AsyncClient) -> tuple[Customer, Operator]:
    me = Customer(server, http)
    await me.start()
    await me.press("operator")
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    await me.replies()
    return me, anna


async def test_after_the_rating_the_menu_is_back(
    start: Callable[..., LiveServer], http: httpx.AsyncClient
) -> None:
    server = start()
    me, anna = await with_operator(server, http)
    r = await anna.post(f"/conversations/{me.conversation_id}/close", {"resolution": "Решено"})
    assert r.status_code == 200, r.text
    asked = await me.replies()
    assert payloads(asked)[-5:] == [f"csat:{n}" for n in range(1, 6)]
    thanks = await me.press("csat:4")
    assert payloads(thanks) == MENU
    # The menu works: a press starts the flow in a new conversation with the bot.
    flow = await me.press("balance")
    assert flow and flow[-1]["author"] == "bot"


async def test_without_the_survey_the_closing_notice_carries_the_menu(
    start: Callable[..., LiveServer], http: httpx.AsyncClient
) -> None:
    server = start(operators={"api_token": "x", "satisfaction_survey": False})
    me, anna = await with_operator(server, http)
    await anna.post(f"/conversations/{me.conversation_id}/close", {"resolution": "Решено"})
    [closed] = await me.replies()
    assert closed["author"] == "system" and closed["text"] == t.CONVERSATION_CLOSED
    assert payloads([closed]) == MENU


async def test_back_to_the_bot_and_leaving_the_queue_offer_the_menu(
    start: Callable[..., LiveServer], http: httpx.AsyncClient
) -> None:
    server = start()
    me, anna = await with_operator(server, http)
    await anna.post(f"/conversations/{me.conversation_id}/return")
    back = await me.replies()
    assert payloads(back)[-3:] == MENU
    # With nobody on the line a second customer waits in the queue, then changes their mind.
    assert (await anna.post("/status", {"status": "break"})).status_code == 200
    other = Customer(server, http)
    await other.start()
    await other.press("operator")
    left = await other.say("отмена")
    assert any(set(MENU) <= set(payloads([m])) for m in left)
