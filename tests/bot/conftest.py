"""Fixtures for the bot through the real server: a web chat on the test's own accounts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from abonent import clock
from abonent.billing.csv_import import import_accounts
from abonent.db.session import Database
from support import LiveServer, make_settings, moscow

StartBot = Callable[..., LiveServer]

# Monday 23 November 2026, noon in Moscow: inside working hours, 29 days after the
# readings of the tests' accounts.
NOON = moscow(2026, 11, 23, 12, 0)


@pytest.fixture
def accounts_server(fresh_database_url: str, tmp_path: Path) -> Iterator[StartBot]:
    """``start(accounts_csv, now=…, own_public_url=False, **settings)``: the real server
    on these accounts (every row must load), the clock at ``now`` (``NOON`` unless told);
    ``own_public_url`` gives the links the bot writes the server's own address."""
    servers: list[LiveServer] = []

    def start(
        accounts_csv: str,
        *,
        now: Callable[[], datetime] = lambda: NOON,
        own_public_url: bool = False,
        **settings: Any,
    ) -> LiveServer:
        csv = tmp_path / "accounts.csv"
        csv.write_text(accounts_csv, encoding="utf-8")

        async def seed() -> None:
            db = Database(fresh_database_url)
            report = await import_accounts(db, csv)
            assert report.loaded == len(accounts_csv.strip().splitlines()) - 1
            assert not report.errors
            await db.dispose()

        asyncio.run(seed())
        clock.set_clock(now)
        server = LiveServer(make_settings(fresh_database_url, **settings))
        if own_public_url:
            server.settings.public_url = server.url
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.stop()
