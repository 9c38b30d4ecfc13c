"""Text the databases cannot store, on every way in, answered alike on SQLite and PostgreSQL.

A NUL character (PostgreSQL refuses it in text and JSON, SQLite keeps it) and a lone
UTF-16 surrogate (valid in JSON, unencodable for both drivers) used to be a plain-text
500 on PostgreSQL. Now an API client gets a 422 in the API's error format naming the
field, and a messenger platform's webhook is acknowledged with the text stored cleaned,
so the platform does not deliver it again and again. The suite runs on both databases.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from abonent.core.text import clean, clean_inbound, fit_id, problem
from abonent.core.types import InboundMessage, RemoteFile
from abonent.db.models import ChannelIdentity, Message, Template
from abonent.db.session import Database
from abonent.operators.users import add_user
from channels.conftest import StartServer, channel_server, settle
from fakes.max import FakeMax
from fakes.telegram import FakeTelegram
from fakes.viber import FakeViber
from fakes.vk import FakeVk
from fakes.whatsapp import FakeWhatsApp
from support import PASSWORD, LiveServer, Operator, make_settings

__all__ = ["channel_server"]  # the fixture, shared with the channel tests

NUL_TEXT = "как оплатить\x00 картой"
SURROGATE = "\ud83d"  # the first half of an emoji's surrogate pair, alone


def raw_json(body: dict[str, Any]) -> bytes:
    """JSON as a client may send it: ASCII escapes, so a lone surrogate survives."""
    return json.dumps(body, ensure_ascii=True).encode()


def assert_invalid(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert [d["field"] for d in error["details"]] == [field], error
    reason = error["details"][0]["problem"]
    assert "NUL" in reason or "unicode" in reason.lower(), reason


# ---------------------------------------------------------------- the rules themselves
def test_problem_and_clean_agree() -> None:
    for bad in ("a\x00b", f"a{SURROGATE}b", "\x00"):
        assert problem(bad) is not None
        assert problem(clean(bad)) is None
    for good in ("", "Привет 👋", "tab\tand\nlines\r\n", "\x07bell"):
        assert problem(good) is None and clean(good) == good
    assert clean("a\x00b") == "ab" and clean(f"a{SURROGATE}b") == "a\ufffdb"


def test_platform_message_is_made_storable_field_by_field() -> None:
    msg = InboundMessage(
        channel_id="tg",
        external_user_id="7" * 300,
        text=NUL_TEXT,
        payload="p" * 300 + "\x00",
        external_id="e" * 200,
        display_name="Иван\x00" + "я" * 300,
        phone="+7\x00" + "9" * 40,
        files=(RemoteFile("image", {"file_id": "f\x00"}, name=f"счёт{SURROGATE}.jpg"),),
    )
    cleaned = clean_inbound(msg)
    assert cleaned.text == "как оплатить картой"
    assert cleaned.payload == "p" * 256
    assert cleaned.display_name is not None and cleaned.display_name.startswith("Иваня")
    assert len(cleaned.display_name) == 200
    assert cleaned.phone is not None and len(cleaned.phone) == 32 and "\x00" not in cleaned.phone
    # Over-long ids become a stable digest: a redelivery still finds the first copy.
    assert cleaned.external_id == fit_id("e" * 200) == clean_inbound(msg).external_id
    assert cleaned.external_id is not None and len(cleaned.external_id) <= 128
    assert len(cleaned.external_user_id) <= 128
    assert cleaned.files[0].ref == {"file_id": "f"}
    assert cleaned.files[0].name == "счёт\ufffd.jpg"


# ---------------------------------------------------------------- client API
@pytest.fixture
def server(fresh_database_url: str) -> Iterator[LiveServer]:
    async def seed() -> None:
        db = Database(fresh_database_url)
        try:
            await add_user(db, "anna", PASSWORD, name="Анна")
            await add_user(db, "sveta", PASSWORD, name="Светлана", role="supervisor")
        finally:
            await db.dispose()

    asyncio.run(seed())
    live = LiveServer(make_settings(fresh_database_url)).start()
    try:
        yield live
    finally:
        live.stop()


def count(server: LiveServer, model: Any) -> int:
    async def run() -> int:
        async with server.runtime.db.session() as session:
            return int(await session.scalar(select(func.count()).select_from(model)) or 0)

    result: int = server.call(run())
    return result


async def test_client_api_refuses_nul_and_surrogates(server: LiveServer) -> None:
    api = f"{server.url}/api/client/v1"
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{api}/conversations", json={"name": "Ива\x00н"})
        assert_invalid(r, "name")
        r = await http.post(f"{api}/conversations", json={})
        assert r.status_code == 201
        auth = {"Authorization": f"Bearer {r.json()['token']}", "Content-Type": "application/json"}
        await asyncio.to_thread(settle, server)
        before = count(server, Message)
        for body, field in (
            ({"text": NUL_TEXT}, "text"),
            ({"payload": "menu\x00"}, "payload"),
            ({"text": f"спасибо {SURROGATE}"}, "text"),
            ({"text": "ok", "client_message_id": "k\x00"}, "client_message_id"),
        ):
            r = await http.post(f"{api}/messages", content=raw_json(body), headers=auth)
            assert_invalid(r, field)
        assert count(server, Message) == before  # nothing stored
        # Out-of-range numbers and NUL in the query are the same 422, not a driver error.
        r = await http.get(f"{api}/messages", params={"after": 2**70}, headers=auth)
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_request"
        r = await http.get(f"{api}/messages?after=1%00", headers=auth)
        assert_invalid(r, "query")
        # The same text without the NUL goes through.
        r = await http.post(f"{api}/messages", json={"text": clean(NUL_TEXT)}, headers=auth)
        assert r.status_code == 202


async def test_paths_and_queries_with_nul_are_refused_everywhere(server: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
        assert_invalid(await http.get("/r/abc%00def"), "path")
        assert_invalid(await http.post("/webhooks/tg%00"), "path")
        token = {"Authorization": "Bearer test-operator-token"}
        r = await http.get("/api/stats/v1/report?channel_id=web%00", headers=token)
        assert_invalid(r, "query")
        r = await http.get("/api/operator/v1/conversations/99999999999999999999/messages")
        assert r.status_code in (401, 422) and r.headers["content-type"] == "application/json"


async def test_workspace_inputs_refuse_nul(server: LiveServer) -> None:
    api = f"{server.url}/api/client/v1"
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(f"{api}/conversations", json={})
        conv_id = r.json()["conversation_id"]
    await asyncio.to_thread(settle, server)
    anna = Operator(server, "anna")
    # The login form: a NUL in the login is a 422, not a database error.
    r = await anna.http.post(
        "/api/workspace/v1/login", json={"login": "an\x00na", "password": PASSWORD}
    )
    assert_invalid(r, "login")
    assert (await anna.login()).status_code == 200
    before = count(server, Message)
    for path, body, field in (
        (f"/conversations/{conv_id}/messages", {"text": NUL_TEXT}, "text"),
        (f"/conversations/{conv_id}/notes", {"text": f"заметка{SURROGATE}"}, "text"),
        (f"/conversations/{conv_id}/transfer", {"group": "g\x00", "note": "x"}, "group"),
        (f"/conversations/{conv_id}/close", {"resolution": "done\x00"}, "resolution"),
    ):
        r = await anna.http.post(
            f"/api/workspace/v1{path}",
            content=raw_json(body),
            headers={"X-CSRF-Token": anna.csrf, "Content-Type": "application/json"},
        )
        assert_invalid(r, field)
    assert count(server, Message) == before
    templates_before = count(server, Template)
    r = await anna.post("/templates", {"code": "pay", "title": "Оплата", "text": "Текст\x00"})
    assert_invalid(r, "text")
    r = await anna.post("/templates", {"code": "pa\x00y", "title": "Оплата", "text": "Текст"})
    assert_invalid(r, "code")
    assert count(server, Template) == templates_before
    # Over-long values get the service's readable 4xx on both databases, never a 500.
    r = await anna.post("/templates", {"code": "c" * 150, "title": "T", "text": "x"})
    assert 400 <= r.status_code < 500, r.text
    r = await anna.post("/templates", {"code": "ok", "title": "T" * 1500, "text": "x"})
    assert 400 <= r.status_code < 500, r.text
    await anna.http.aclose()


# ---------------------------------------------------------------- webhooks, all platforms
@pytest.fixture
def platforms() -> Iterator[dict[str, Any]]:
    fakes: dict[str, Any] = {
        "tg": FakeTelegram(),
        "wa": FakeWhatsApp(),
        "viber": FakeViber(),
        "vk": FakeVk(),
        "max": FakeMax(),
    }
    for fake in fakes.values():
        fake.start()
    try:
        yield fakes
    finally:
        for fake in fakes.values():
            fake.stop()


def channel_configs(fakes: dict[str, Any]) -> list[dict[str, Any]]:
    from fakes import max as max_fake
    from fakes import telegram as tg_fake
    from fakes import vk as vk_fake
    from fakes import whatsapp as wa_fake

    return [
        {
            "id": "tg",
            "type": "telegram",
            "token": tg_fake.TOKEN,
            "secret": tg_fake.SECRET,
            "username": "@energo_test_bot",
            "api_base": fakes["tg"].url,
        },
        {
            "id": "wa",
            "type": "whatsapp",
            "token": wa_fake.TOKEN,
            "secret": wa_fake.APP_SECRET,
            "verify_token": wa_fake.VERIFY_TOKEN,
            "phone_number_id": wa_fake.PHONE_NUMBER_ID,
            "phone": "+7 800 123-45-67",
            "api_base": fakes["wa"].url,
        },
        {
            "id": "viber",
            "type": "viber",
            "token": fakes["viber"].token,
            "name": "ЭнергоСбыт",
            "uri": "energosbyt_test",
            "api_base": f"{fakes['viber'].url}/pa",
        },
        {
            "id": "vk",
            "type": "vk",
            "token": vk_fake.TOKEN,
            "secret": vk_fake.SECRET,
            "confirmation": vk_fake.CONFIRMATION,
            "group_id": vk_fake.GROUP_ID,
            "api_base": fakes["vk"].url,
        },
        {
            "id": "max",
            "type": "max",
            "token": max_fake.TOKEN,
            "secret": max_fake.SECRET,
            "username": max_fake.BOT_USERNAME,
            "api_base": fakes["max"].url,
        },
    ]


def deliver_everywhere(server: LiveServer, fakes: dict[str, Any], text: str) -> None:
    """The same customer text, with a NUL and a lone surrogate, from every platform,
    sent as each platform sends it (escaped JSON, signed where the platform signs)."""
    url = f"{server.url}/webhooks"
    tg: FakeTelegram = fakes["tg"]
    sender = tg.user(first_name="Ив\x00ан", last_name=f"Петров{SURROGATE}")
    r = tg.deliver_update(f"{url}/tg", raw_json(tg.message(text=text, sender=sender)))
    assert r.status_code == 200, r.text
    wa: FakeWhatsApp = fakes["wa"]
    event = wa.event(wa.value(wa.message("text", {"body": text}), name="Ив\x00ан"))
    assert wa.post_event(f"{url}/wa", raw_json(event)).status_code == 200
    viber: FakeViber = fakes["viber"]
    body = raw_json(
        viber.message_event("01234567890A=", {"type": "text", "text": text}, name="Ив\x00ан")
    )
    r = viber.deliver(f"{url}/viber", body, {"X-Viber-Content-Signature": viber.sign(body)})
    assert r.status_code == 200, r.text
    vk: FakeVk = fakes["vk"]
    r = vk.deliver(f"{url}/vk", raw_json(vk.message_new(510000001, text)))
    assert r.status_code == 200 and r.text == "ok", r.text
    mx: FakeMax = fakes["max"]
    r = mx.deliver_update(f"{url}/max", raw_json(mx.message_update(123456789, text)))
    assert r.status_code == 200, r.text


def test_webhooks_acknowledge_and_store_the_text_cleaned(
    channel_server: StartServer, platforms: dict[str, Any]
) -> None:
    server = channel_server(channel_configs(platforms))
    deliver_everywhere(server, platforms, f"как {SURROGATE}оплатить\x00 картой")
    settle(server)

    async def stored() -> tuple[list[Message], list[ChannelIdentity]]:
        async with server.runtime.db.session() as session:
            messages = list(
                await session.scalars(
                    select(Message).where(Message.author == "customer").order_by(Message.id)
                )
            )
            identities = list(await session.scalars(select(ChannelIdentity)))
            return messages, identities

    messages, identities = server.call(stored())
    assert sorted(m.channel_id for m in messages) == ["max", "tg", "viber", "vk", "wa"]
    assert {m.text for m in messages} == {"как \ufffdоплатить картой"}
    names = {i.channel_id: i.display_name for i in identities}
    assert names["tg"] == "Иван Петров\ufffd"
    assert names["wa"] == "Иван" and names["viber"] == "Иван"

    # Each customer got the bot's answer on their own platform: the turn ran normally.
    async def answered() -> set[str]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(select(Message.channel_id).where(Message.author == "bot"))
            return set(rows)

    assert server.call(answered()) == {"max", "tg", "viber", "vk", "wa"}
