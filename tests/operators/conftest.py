"""Fixtures for the workspace's tests: the real server with a small team of operators."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from support import LiveServer, make_settings, seed_users

StartDesk = Callable[[int], LiveServer]


@pytest.fixture
def desk_team(fresh_database_url: str) -> Iterator[StartDesk]:
    """``start(anna_chats)``: the server with Анна (up to ``anna_chats`` chats at a time),
    Борис of the billing group and Светлана, a supervisor; all with ``PASSWORD``."""
    servers: list[LiveServer] = []

    def start(anna_chats: int) -> LiveServer:
        seed_users(
            fresh_database_url,
            {
                "anna": {"name": "Анна", "max_chats": anna_chats},
                "boris": {"name": "Борис", "groups": ["billing"]},
                "sveta": {"name": "Светлана", "role": "supervisor"},
            },
        )
        server = LiveServer(make_settings(fresh_database_url)).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
