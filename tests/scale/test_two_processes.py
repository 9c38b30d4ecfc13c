"""Several server processes on one PostgreSQL + Redis act as one chat centre.

Two real ``abonent serve`` processes: a customer talks to the first, a WebSocket is
connected to the second, and everything the first writes arrives on the second.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from conftest import require_postgres, require_redis
from support import ServeProcesses, serve_env

pytestmark = pytest.mark.services

CONFIG = """
[company]
name = "ЭнергоСбыт Тест"
working_hours = { "mon-sun" = "00:00-24:00" }
[readings]
first_day = 1
last_day = 31
[operators]
api_token = "t"
"""


@pytest.fixture
def two_servers(fresh_database_url: str, tmp_path: Path) -> Iterator[list[str]]:
    require_postgres()
    redis_url = require_redis()
    env = serve_env(fresh_database_url, redis_url, CONFIG, tmp_path, ABONENT_LOG_LEVEL="WARNING")
    servers = ServeProcesses(2, env, tmp_path)
    try:
        yield servers.wait_ready().urls
    finally:
        servers.stop()


async def _until_bot(ws: Any, seen: list[dict[str, Any]], after: int = 0) -> None:
    """Collect pushed messages until a bot message newer than ``after`` arrives."""
    while not any(m["author"] == "bot" and m["id"] > after for m in seen):
        seen.append(json.loads(await asyncio.wait_for(ws.recv(), timeout=15)))


async def test_a_message_sent_through_one_process_appears_on_the_others_websocket(
    two_servers: list[str],
) -> None:
    first, second = two_servers
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{first}/api/client/v1/conversations", json={})
        token = r.json()["token"]
        ws_url = second.replace("http", "ws") + f"/api/client/v1/ws?token={token}"
        auth = {"Authorization": f"Bearer {token}"}
        async with websockets.connect(ws_url) as ws:
            # let the greeting (written by the first process) be stored first, then talk
            greeted = await http.get(
                f"{second}/api/client/v1/messages", params={"wait": 20}, headers=auth
            )
            assert greeted.json()["messages"][0]["author"] == "bot"
            sent = await http.post(
                f"{first}/api/client/v1/messages",
                json={"text": "хочу передать показания"},
                headers=auth,
            )
            seen: list[dict[str, Any]] = []
            await _until_bot(ws, seen, after=sent.json()["id"])
        mine = [m for m in seen if m["id"] == sent.json()["id"]]
        assert mine and mine[0]["author"] == "customer"
        bot = [m for m in seen if m["author"] == "bot"]
        assert "10 цифр" in bot[-1]["text"]

        # the long poll on the second process is woken by the first one's write too
        after = max(m["id"] for m in seen)
        poll = asyncio.create_task(
            http.get(
                f"{second}/api/client/v1/messages",
                params={"after": after, "wait": 20},
                headers={"Authorization": f"Bearer {token}"},
            )
        )
        await asyncio.sleep(0.3)
        started = time.monotonic()
        await http.post(
            f"{first}/api/client/v1/messages",
            json={"text": "меню"},
            headers={"Authorization": f"Bearer {token}"},
        )
        result = await poll
        assert time.monotonic() - started < 5
        assert result.json()["messages"][0]["text"] == "меню"
