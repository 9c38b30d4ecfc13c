"""Fixtures for messenger channel tests: the real server wired to fake platforms.

Each platform's channel settings and its running fake are here once, for both its own
tests and its files' tests (``test_<platform>_attachments``)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from abonent.clock import utcnow
from abonent.db.models import Attachment, Contact, Message, OutboxItem
from fakes import max as max_api
from fakes import telegram as telegram_api
from fakes import vk as vk_api
from fakes import whatsapp as whatsapp_api
from fakes.base import FakePlatform
from fakes.max import FakeMax
from fakes.telegram import FakeTelegram
from fakes.viber import FakeViber
from fakes.vk import FakeVk
from fakes.whatsapp import FakeWhatsApp
from support import LiveServer, Operator, make_settings, on_server, seed_demo, seed_users

StartServer = Callable[..., LiveServer]
StartFiles = Callable[[dict[str, Any]], LiveServer]
P = TypeVar("P", bound=FakePlatform)


def platform_fixture(cls: type[P]) -> Any:
    """The ``fake`` fixture of a platform's test module (``fake = platform_fixture(FakeVk)``):
    the fake platform running for one test."""

    @pytest.fixture
    def fake() -> Iterator[P]:
        platform = cls()
        platform.start()
        try:
            yield platform
        finally:
            platform.stop()

    return fake


# --------------------------------------------------------------------------- channels
def telegram_config(fake: FakeTelegram, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "tg",
        "type": "telegram",
        "token": telegram_api.TOKEN,
        "secret": telegram_api.SECRET,
        "username": "@energo_test_bot",
        "api_base": fake.url,
        **overrides,
    }


def whatsapp_config(fake: FakeWhatsApp, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "wa",
        "type": "whatsapp",
        "token": whatsapp_api.TOKEN,
        "secret": whatsapp_api.APP_SECRET,
        "verify_token": whatsapp_api.VERIFY_TOKEN,
        "phone_number_id": whatsapp_api.PHONE_NUMBER_ID,
        "phone": "+7 800 123-45-67",
        "api_base": fake.url,
        **overrides,
    }


def viber_config(fake: FakeViber, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "viber",
        "type": "viber",
        "token": fake.token,
        "name": "ЭнергоСбыт",
        "uri": "energosbyt_test",
        "api_base": f"{fake.url}/pa",
        **overrides,
    }


def vk_config(fake: FakeVk, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "vk",
        "type": "vk",
        "token": vk_api.TOKEN,
        "secret": vk_api.SECRET,
        "confirmation": vk_api.CONFIRMATION,
        "group_id": vk_api.GROUP_ID,
        "api_base": fake.url,
        **overrides,
    }


def max_config(fake: FakeMax, **overrides: Any) -> dict[str, Any]:
    return {
        "id": "max",
        "type": "max",
        "token": max_api.TOKEN,
        "secret": max_api.SECRET,
        "username": max_api.BOT_USERNAME,
        "api_base": fake.url,
        **overrides,
    }


@pytest.fixture
def channel_server(fresh_database_url: str) -> Iterator[StartServer]:
    """``start(channels=[{...}], **settings)``: the real app with these ``[[channels]]``,
    demo accounts loaded (``server.accounts`` maps plan → number)."""
    servers: list[LiveServer] = []
    accounts = seed_demo(fresh_database_url)

    def start(channels: list[dict[str, Any]], **overrides: Any) -> LiveServer:
        overrides.setdefault("public_url", "https://cc.example.ru")
        server = LiveServer(make_settings(fresh_database_url, channels=channels, **overrides))
        server.accounts = accounts
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()


async def _rows(server: LiveServer, query: Any) -> list[Any]:
    async with server.runtime.db.session() as session:
        return list((await session.scalars(query)).all())


def messages(server: LiveServer, channel_id: str | None = None) -> list[Message]:
    """Every stored message (of one channel), oldest first, read on the server's loop."""
    query = select(Message).order_by(Message.id)
    if channel_id is not None:
        query = query.where(Message.channel_id == channel_id)
    result: list[Message] = server.call(_rows(server, query))
    return result


def contacts(server: LiveServer) -> list[Contact]:
    result: list[Contact] = server.call(_rows(server, select(Contact).order_by(Contact.id)))
    return result


async def _sends_in_flight(server: LiveServer) -> int:
    async with server.runtime.db.session() as session:
        due = (OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= utcnow())
        query = (
            select(func.count())
            .select_from(OutboxItem)
            .where((OutboxItem.status == "sending") | due)
        )
        return int(await session.scalar(query) or 0)


def settle(server: LiveServer, timeout: float = 10.0) -> None:
    """Wait (from a plain test) until every bot turn and due send is done.

    ``LiveServer.settle`` waits for the sender's pass in flight, but when that pass
    found work the background loop starts the next one at once (the conversation's
    following message, held back while the earlier one was sending): so check that
    no send is due or in flight, and settle again until none is."""
    deadline = time.monotonic() + timeout
    while True:
        asyncio.run(server.settle())
        if not server.call(_sends_in_flight(server)):
            return
        if time.monotonic() > deadline:
            raise AssertionError("outbox sends still in flight")
        time.sleep(0.02)


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll until ``check()`` holds (a retry after a platform's delay, say)."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def delivered(server: LiveServer, channel_id: str, state: str) -> list[Message]:
    """The channel's bot replies, once the outbox has recorded ``state`` on every one."""

    def done() -> bool:
        settle(server)
        replies = [m for m in messages(server, channel_id) if m.author == "bot"]
        return bool(replies) and all(m.delivery == state for m in replies)

    eventually(done)
    return [m for m in messages(server, channel_id) if m.author == "bot"]


# --------------------------------------------------------------------------- files
@pytest.fixture
def files_server(
    channel_server: StartServer, fresh_database_url: str, tmp_path: Path
) -> StartFiles:
    """``start(channel)``: the server with this one channel, a file store in the test's
    folder, and the operator Анна (``anna``) to send files from the workspace."""
    seed_users(fresh_database_url, {"anna": {"name": "Анна"}})

    def start(channel: dict[str, Any]) -> LiveServer:
        return channel_server([channel], attachments={"dir": str(tmp_path / "files")})

    return start


def stored(server: LiveServer) -> list[Attachment]:
    """Every attachment row, oldest first."""

    async def load() -> list[Attachment]:
        async with server.runtime.db.session() as session:
            return list((await session.scalars(select(Attachment).order_by(Attachment.id))).all())

    result: list[Attachment] = server.call(load())
    return result


def all_stored(server: LiveServer, count: int) -> list[Attachment]:
    """The rows, once there are ``count`` and the fetcher has stored every one."""
    eventually(
        lambda: len(stored(server)) == count and all(r.status == "stored" for r in stored(server))
    )
    return stored(server)


async def operator_chat(server: LiveServer, channel_id: str) -> tuple[Operator, int]:
    """Анна signed in and on the line, and the channel's conversation, which the desk
    gives her (the customer has asked for an operator)."""
    anna = Operator(server, "anna")
    await anna.login()
    await anna.online()
    return anna, next(m.conversation_id for m in messages(server, channel_id))


async def send_file(
    anna: Operator,
    conv_id: int,
    name: str,
    data: bytes,
    text: str = "",
    mime: str = "application/octet-stream",
) -> Any:
    """A file from the workspace, as its page uploads one; the server settled after it."""
    r = await anna.http.post(
        f"/api/workspace/v1/conversations/{conv_id}/attachments",
        headers={"X-CSRF-Token": anna.csrf},
        files={"file": (name, data, mime)},
        data={"text": text},
    )
    assert r.status_code == 201, r.text
    await anna.server.settle()
    return r.json()


async def operator_deliveries(server: LiveServer) -> list[str | None]:
    """The delivery state of every operator message."""

    async def load() -> list[str | None]:
        async with server.runtime.db.session() as session:
            rows = await session.scalars(select(Message).where(Message.author == "operator"))
            return [m.delivery for m in rows]

    result: list[str | None] = await on_server(server, load())
    return result
