"""Two real server processes on PostgreSQL + Redis count every fact once, even when one
of them is killed (``kill -9``) in the middle of the traffic and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import distinct, func, select

from abonent.db.models import EventRecord, Message
from abonent.db.session import Database
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
AUTH = {"Authorization": "Bearer t"}
QUESTIONS = ("как оплатить свет без комиссии", "фывапролдж олдж", "какие тарифы на электричество")


class Chat:
    """A web-chat customer who falls back to the other process when one is down."""

    def __init__(self, http: httpx.AsyncClient, urls: list[str], first: int) -> None:
        self.http, self.urls, self.turn = http, urls, first
        self.token = ""
        self.sent = 0

    async def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        for _ in range(40):
            url = self.urls[self.turn % len(self.urls)]
            self.turn += 1
            try:
                headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
                r = await self.http.post(f"{url}{path}", json=body, headers=headers)
            except httpx.HTTPError:
                await asyncio.sleep(0.1)
                continue
            if r.status_code < 500:
                return r
        raise AssertionError(f"no process took {path}")

    async def talk(self) -> None:
        r = await self._post("/api/client/v1/conversations", {})
        self.token = r.json()["token"]
        for i, text in enumerate(QUESTIONS):
            r = await self._post(
                "/api/client/v1/messages", {"text": text, "client_message_id": f"m{i}"}
            )
            assert r.status_code == 202, r.text
            self.sent += 1


async def _truth(url: str) -> dict[str, int]:
    db = Database(url)
    try:
        async with db.read() as conn:

            async def count(query: Any) -> int:
                return int(await conn.scalar(query) or 0)

            return {
                "customer": await count(
                    select(func.count()).select_from(Message).where(Message.author == "customer")
                ),
                "bot": await count(
                    select(func.count()).select_from(Message).where(Message.author == "bot")
                ),
                "conversations": await count(
                    select(func.count(distinct(Message.conversation_id))).where(
                        Message.author == "customer"
                    )
                ),
                "free_text": await count(
                    select(func.count())
                    .select_from(EventRecord)
                    .where(EventRecord.type.in_(("text.recognised", "text.fallback")))
                ),
                "unanswered": await count(
                    select(func.count())
                    .select_from(Message)
                    .where(Message.author == "customer", Message.handled.is_(False))
                ),
            }
    finally:
        await db.dispose()


def _restart(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "abonent", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


async def test_each_fact_is_counted_once_by_two_processes_one_killed_midway(
    fresh_database_url: str, tmp_path: Path
) -> None:
    require_postgres()
    redis_url = require_redis()
    env = serve_env(fresh_database_url, redis_url, CONFIG, tmp_path, ABONENT_LOG_LEVEL="WARNING")
    servers = ServeProcesses(2, env, tmp_path).wait_ready()
    restarted: subprocess.Popen[bytes] | None = None
    try:
        async with httpx.AsyncClient(timeout=15) as http:
            chats = [Chat(http, servers.urls, i) for i in range(40)]
            talking = [asyncio.create_task(chat.talk()) for chat in chats[:20]]
            await asyncio.sleep(1.0)
            # In the middle of the traffic: the first process dies without a goodbye.
            os.kill(servers.procs[0].pid, signal.SIGKILL)
            servers.procs[0].wait(timeout=10)
            talking += [asyncio.create_task(chat.talk()) for chat in chats[20:]]
            await asyncio.gather(*talking)
            # Started again, it finishes the turns it had accepted but not answered.
            port = servers.ports[0]
            restarted = await asyncio.to_thread(_restart, env, port, servers.logs[0])
            deadline = time.monotonic() + 60
            while True:
                truth = await _truth(fresh_database_url)
                r = await http.get(f"{servers.urls[1]}/metrics")
                behind = [
                    line
                    for line in r.text.splitlines()
                    if line.startswith('abonent_events_unprocessed{consumer="statistics"}')
                ]
                if not truth["unanswered"] and behind and behind[0].endswith(" 0.0"):
                    break
                assert time.monotonic() < deadline, (truth, behind)
                await asyncio.sleep(0.5)
            summary = (
                await http.get(f"{servers.urls[1]}/api/stats/v1/summary", headers=AUTH)
            ).json()
    finally:
        servers.stop()
        if restarted is not None:
            restarted.terminate()
            restarted.wait(timeout=15)

    assert sum(chat.sent for chat in chats) == 40 * len(QUESTIONS)
    assert truth["customer"] == 40 * len(QUESTIONS)
    webchat = summary["messages"]["webchat"]
    assert webchat["customer"] == truth["customer"]
    assert webchat["bot"] == truth["bot"]
    assert summary["conversations"]["total"] == truth["conversations"] == 40
    assert summary["bot"]["free_text"] == truth["free_text"] == 40 * len(QUESTIONS)
    assert summary["customers"]["unique"] == 40
