"""Fixtures for messenger channel tests: the real server wired to fake platforms."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import select

from abonent.db.models import Contact, Message
from abonent.db.session import Database
from support import LiveServer, make_settings

StartServer = Callable[..., LiveServer]


@pytest.fixture
def channel_server(fresh_database_url: str) -> Iterator[StartServer]:
    """``start(channels=[{...}], **settings)``: the real app with these ``[[channels]]``,
    demo accounts loaded (``server.accounts`` maps plan → number)."""
    from abonent.demo import seed_demo_accounts

    servers: list[LiveServer] = []

    async def seed() -> dict[str, str]:
        database = Database(fresh_database_url)
        accounts = await seed_demo_accounts(database)
        await database.dispose()
        return {a.plan: a.number for a in accounts}

    accounts = asyncio.run(seed())

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


def settle(server: LiveServer) -> None:
    """Wait (from a plain test) until every bot turn and due send is done."""
    asyncio.run(server.settle())
