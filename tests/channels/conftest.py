"""Fixtures for messenger channel tests: the real server wired to fake platforms."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import func, select

from abonent.clock import utcnow
from abonent.db.models import Contact, Message, OutboxItem
from support import LiveServer, make_settings, seed_demo

StartServer = Callable[..., LiveServer]


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
