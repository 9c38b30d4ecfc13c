"""The client API against the real server: shapes, live delivery, bad input."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import func, select

from abonent.db.models import Message
from abonent.db.session import Database
from support import Customer, LiveServer

API = "/api/client/v1"


async def _count_messages(url: str) -> int:
    db = Database(url)
    async with db.session() as session:
        count = int(await session.scalar(select(func.count()).select_from(Message)) or 0)
    await db.dispose()
    return count


async def test_message_objects_have_the_contract_shape(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        greeting = await me.start()
        message = greeting[0]
        # The fixed fields, and ``attachments`` (files on the message), an addition.
        assert set(message) == {"id", "author", "text", "buttons", "created_at", "attachments"}
        assert message["attachments"] == []
        assert message["author"] == "bot"
        assert {"title": "Передать показания", "payload": "readings"} in message["buttons"]
        r = await http.get(f"{live_server.url}{API}/messages", headers=me.headers)
        assert [m["id"] for m in r.json()["messages"]] == sorted(
            m["id"] for m in r.json()["messages"]
        )


async def test_button_press_is_stored_with_its_title(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        after = me.last_id
        await me.press("balance")
        r = await http.get(
            f"{live_server.url}{API}/messages", params={"after": after}, headers=me.headers
        )
        customer = [m for m in r.json()["messages"] if m["author"] == "customer"]
        assert customer[0]["text"] == "Узнать баланс"


async def test_websocket_pushes_the_customers_and_the_bots_messages(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        ws_url = live_server.url.replace("http", "ws") + f"{API}/ws?token={me.token}"
        async with websockets.connect(ws_url) as ws:
            r = await http.post(
                f"{live_server.url}{API}/messages", json={"text": "меню"}, headers=me.headers
            )
            sent_id = r.json()["id"]
            seen: list[dict[str, Any]] = []
            while not any(m["author"] == "bot" for m in seen):
                seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=10)))
        assert seen[0] == {**seen[0], "id": sent_id, "author": "customer", "text": "меню"}
        bot = next(m for m in seen if m["author"] == "bot")
        assert bot["id"] > sent_id and bot["buttons"]


async def test_websocket_with_a_bad_token_is_refused(live_server: LiveServer) -> None:
    ws_url = live_server.url.replace("http", "ws") + f"{API}/ws?token=forged"
    with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
        async with websockets.connect(ws_url):
            pass
    assert refused.value.response.status_code == 403


async def test_long_poll_returns_as_soon_as_the_reply_is_written(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        poll = asyncio.create_task(
            http.get(
                f"{live_server.url}{API}/messages",
                params={"after": me.last_id, "wait": 20},
                headers=me.headers,
            )
        )
        await asyncio.sleep(0.3)
        assert not poll.done()
        started = time.monotonic()
        await http.post(
            f"{live_server.url}{API}/messages", json={"text": "меню"}, headers=me.headers
        )
        r = await poll
        assert time.monotonic() - started < 5
        assert r.json()["messages"][0]["text"] == "меню"


async def test_long_poll_times_out_with_an_empty_list(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        r = await http.get(
            f"{live_server.url}{API}/messages",
            params={"after": me.last_id, "wait": 0.5},
            headers=me.headers,
        )
        assert r.status_code == 200 and r.json() == {"messages": []}


async def test_a_retried_message_is_stored_once(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        body = {"text": "меню", "client_message_id": "retry-1"}
        first = await http.post(f"{live_server.url}{API}/messages", json=body, headers=me.headers)
        await live_server.settle()
        before = await _count_messages(live_server.settings.database_url)
        again = await http.post(f"{live_server.url}{API}/messages", json=body, headers=me.headers)
        await live_server.settle()
        assert first.status_code == again.status_code == 202
        assert first.json()["id"] == again.json()["id"]
        assert await _count_messages(live_server.settings.database_url) == before
        # the same key from another customer is another message
        other = Customer(live_server, http)
        await other.start()
        third = await http.post(
            f"{live_server.url}{API}/messages", json=body, headers=other.headers
        )
        assert third.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"[1, 2]", 422, "invalid_request"),
        (b'{"text": ""}', 422, "empty_message"),
        (b'{"text": "   "}', 422, "empty_message"),
        (b'{"text": 42}', 422, "invalid_request"),
        (json.dumps({"text": "я" * 4097}).encode(), 422, "message_too_long"),
        (json.dumps({"payload": "x" * 300}).encode(), 422, "payload_too_long"),
    ],
)
async def test_bad_messages_get_a_clear_4xx_and_store_nothing(
    live_server: LiveServer, body: bytes, status: int, code: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        before = await _count_messages(live_server.settings.database_url)
        r = await http.post(
            f"{live_server.url}{API}/messages",
            content=body,
            headers={**me.headers, "Content-Type": "application/json"},
        )
        assert r.status_code == status, r.text
        assert r.json()["error"]["code"] == code
        assert r.json()["error"]["message"]
        await live_server.settle()
        assert await _count_messages(live_server.settings.database_url) == before


async def test_a_message_of_exactly_4096_characters_is_accepted(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        r = await http.post(
            f"{live_server.url}{API}/messages", json={"text": "я" * 4096}, headers=me.headers
        )
        assert r.status_code == 202


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "missing_token"),
        ({"Authorization": "Bearer not-a-token"}, "invalid_token"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing_token"),
    ],
)
async def test_missing_or_invalid_tokens_are_refused(
    live_server: LiveServer, headers: dict[str, str], code: str
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        for method, path in (("POST", "/messages"), ("GET", "/messages")):
            r = await http.request(
                method, f"{live_server.url}{API}{path}", json={"text": "hi"}, headers=headers
            )
            assert r.status_code == 401, (method, r.text)
            assert r.json()["error"]["code"] == code


async def test_bad_query_parameters_are_refused(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        for params in ({"after": "x"}, {"after": -1}, {"wait": 999}):
            r = await http.get(
                f"{live_server.url}{API}/messages", params=params, headers=me.headers
            )
            assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"


async def test_widget_config_lists_the_companys_messengers(live_server: LiveServer) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.get(f"{live_server.url}{API}/widget")
        assert r.json()["company"]["name"] == "ЭнергоСбыт Тест"
        assert [m["type"] for m in r.json()["messengers"]] == ["telegram", "vk"]
        cors = await http.options(
            f"{live_server.url}{API}/conversations",
            headers={"Origin": "https://energo.example", "Access-Control-Request-Method": "POST"},
        )
        assert cors.headers["access-control-allow-origin"] == "*"


async def test_a_pressed_account_button_shows_its_title(live_server: LiveServer) -> None:
    account = live_server.accounts["single"]
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        await me.press("balance")
        await me.say(account)
        ask = await me.press("balance")
        button = next(b for m in ask for b in m["buttons"] if b["payload"].startswith("acct:"))
        after = me.last_id
        await me.press(button["payload"])
        r = await http.get(
            f"{live_server.url}{API}/messages", params={"after": after}, headers=me.headers
        )
        customer = [m for m in r.json()["messages"] if m["author"] == "customer"]
        assert customer[0]["text"] == button["title"] == f"Счёт ******{account[-4:]}"


# --- issue 15: bodies bounded before parsing -------------------------------------------
async def test_oversized_and_deeply_nested_bodies_are_refused_unparsed(
    live_server: LiveServer,
) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(live_server, http)
        await me.start()
        headers = {**me.headers, "Content-Type": "application/json"}
        url = f"{live_server.url}{API}/messages"
        before = await _count_messages(live_server.settings.database_url)
        for body, status, code in (
            (b'{"text": "' + b"a" * 70_000 + b'"}', 413, "body_too_large"),
            (b'{"text": "x", "extra": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 413, ""),
            (b'{"text": "x", "extra": ' + b"[" * 5_000 + b"]" * 5_000 + b"}", 400, "too_deep"),
            (b'{"payload": {"a": ' * 40 + b"1" + b"}" * 40, 400, "too_deep"),
        ):
            r = await http.post(url, content=body, headers=headers)
            assert r.status_code == status, r.text
            assert r.json()["error"]["code"] == (code or "body_too_large")
        await live_server.settle()
        assert await _count_messages(live_server.settings.database_url) == before
        # Brackets inside strings are text, not nesting.
        r = await http.post(url, json={"text": "[[[[" * 100 + "{" * 50}, headers=me.headers)
        assert r.status_code == 202, r.text
        metrics = (await http.get(f"{live_server.url}/metrics")).text
        assert 'abonent_inputs_refused_total{path="/api/client",reason="too_deep"} 2.0' in metrics
