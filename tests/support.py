"""Test helpers: settings, a real server on a free port, and a web-chat customer."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import socket
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
import uvicorn
from PIL import Image
from sqlalchemy import select

from abonent.app import Runtime, Understanding, create_app, load_understanding
from abonent.config import Settings
from abonent.db.models import Account, Conversation, ReadingsRecord
from abonent.db.session import Database
from abonent.operators.users import add_user

# The second pass of the suite (scripts/test.sh) points these at PostgreSQL and Redis.
PG_URL = os.environ.get("ABONENT_TEST_DATABASE_URL", "")


def _worker_redis(url: str) -> str:
    """Under pytest-xdist each worker gets a Redis database of its own (gw0 → 1, gw1 → 2 …),
    so its keys and its bus channel (named after the database) meet no other worker's."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not url or not worker.startswith("gw"):
        return url
    return urlunsplit(urlsplit(url)._replace(path=f"/{int(worker[2:]) + 1}"))


REDIS_URL = _worker_redis(os.environ.get("ABONENT_TEST_REDIS_URL", ""))
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(reason: str, needed: str = "this service") -> NoReturn:
    """Skip a test that lacks ``needed`` (a service, the browser): under ``CI=true``, fail."""
    if IN_CI:
        pytest.fail(f"CI requires {needed}: {reason}")
    pytest.skip(reason)


TEST_COMPANY: dict[str, Any] = {
    "name": "ЭнергоСбыт Тест",
    "emergency_phone": "8 800 111-11-11",
    "call_center_phone": "8 800 222-22-22",
    "timezone": "Europe/Moscow",
    "working_hours": {"mon-fri": "08:00-20:00", "sat": "09:00-15:00"},
    "links": {
        "payment": "https://pay.example/energo",
        "virtual_reception": "https://energo.example/reception",
    },
    "messengers": [
        {"type": "telegram", "title": "Telegram", "url": "https://t.me/energo_test_bot"},
        {"type": "vk", "title": "ВКонтакте", "url": "https://vk.me/energo_test"},
    ],
}
# Open round the clock: a test that asks for an operator is queued, never told to wait.
ALWAYS_OPEN: dict[str, Any] = {**TEST_COMPANY, "working_hours": {"mon-sun": "00:00-24:00"}}


def make_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "company": TEST_COMPANY,
        "tariffs": {
            "single": "6.43",
            "two_zone": {"day": "7.36", "night": "3.79"},
            "three_zone": {"peak": "8.85", "half_peak": "6.43", "night": "3.79"},
        },
        "readings": {"first_day": 1, "last_day": 31, "max_daily_kwh": "60"},
        "operators": {"api_token": "test-operator-token"},
    }
    values.update(overrides)
    return Settings(**values)


_understanding: Understanding | None = None


def understanding() -> Understanding:
    """One consultant for every test server of the session: loading (or training, on a
    cold cache) it once keeps each server's start fast."""
    global _understanding
    if _understanding is None:
        _understanding = load_understanding()
    return _understanding


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def moscow(year: int, month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    """A moment given in Moscow time, as an aware UTC datetime for the clock."""
    local = datetime(year, month, day, hour, minute, tzinfo=ZoneInfo("Europe/Moscow"))
    return local.astimezone(UTC)


class Clock:
    """Moscow time standing still until the test moves it."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass
class LiveServer:
    """The real app under uvicorn, in a thread with its own event loop."""

    settings: Settings
    extra: dict[str, Any] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    accounts: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(self.settings, extra=self.extra, understanding=understanding())
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
        self.server = uvicorn.Server(config)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.server.serve())

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def call(self, coro: Any) -> Any:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self.loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout=30)

    async def settle(self) -> None:
        """Wait until the server has finished every scheduled bot turn and send."""

        async def idle() -> None:
            await self.runtime.pipeline.drain_all()
            while await self.runtime.sender.run_once():
                pass
            # A send the background loop had already claimed is recorded too.
            await self.runtime.sender.idle()

        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(idle(), self.loop))  # type: ignore[arg-type]


async def _seed_demo(database_url: str) -> dict[str, str]:
    from abonent.demo import seed_demo_accounts

    database = Database(database_url)
    try:
        accounts = await seed_demo_accounts(database)
    finally:
        await database.dispose()
    return {a.plan: a.number for a in accounts}


def seed_demo(database_url: str) -> dict[str, str]:
    """Load the demo accounts into this database: plan → account number."""
    return asyncio.run(_seed_demo(database_url))


def seed_users(database_url: str, users: dict[str, dict[str, Any]]) -> None:
    """Workspace users, each with ``PASSWORD``: login → ``add_user``'s keywords (name,
    role, groups, max_chats), added before the server starts."""

    async def seed() -> None:
        db = Database(database_url)
        for login, details in users.items():
            await add_user(db, login, PASSWORD, **details)
        await db.dispose()

    asyncio.run(seed())


async def account_history(database_url: str, number: str) -> tuple[Account, list[ReadingsRecord]]:
    """The account as stored now and its readings, oldest first (on a connection of its own,
    so it sees what the server committed)."""
    db = Database(database_url)
    async with db.session() as session:
        account = await session.get(Account, number)
        history = list(
            await session.scalars(
                select(ReadingsRecord)
                .where(ReadingsRecord.account_number == number)
                .order_by(ReadingsRecord.id)
            )
        )
    await db.dispose()
    assert account is not None
    return account, history


class Customer:
    """A web-chat customer speaking the client API, as the widget or an app would."""

    def __init__(self, server: LiveServer, client: httpx.AsyncClient) -> None:
        self.server = server
        self.client = client
        self.token = ""
        self.conversation_id = 0
        self.last_id = 0

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def start(self) -> list[dict[str, Any]]:
        r = await self.client.post(f"{self.server.url}/api/client/v1/conversations", json={})
        assert r.status_code == 201, r.text
        self.token = r.json()["token"]
        self.conversation_id = r.json()["conversation_id"]
        return await self.replies()

    async def say(self, text: str) -> list[dict[str, Any]]:
        r = await self.client.post(
            f"{self.server.url}/api/client/v1/messages", json={"text": text}, headers=self.headers
        )
        assert r.status_code == 202, r.text
        return await self.replies()

    async def press(self, payload: str) -> list[dict[str, Any]]:
        r = await self.client.post(
            f"{self.server.url}/api/client/v1/messages",
            json={"payload": payload},
            headers=self.headers,
        )
        assert r.status_code == 202, r.text
        return await self.replies()

    async def replies(self) -> list[dict[str, Any]]:
        """Everything the bot said since the last call (customer echoes excluded)."""
        await self.server.settle()
        r = await self.client.get(
            f"{self.server.url}/api/client/v1/messages",
            params={"after": self.last_id},
            headers=self.headers,
        )
        assert r.status_code == 200, r.text
        messages = r.json()["messages"]
        if messages:
            self.last_id = messages[-1]["id"]
        return [m for m in messages if m["author"] != "customer"]


@contextlib.asynccontextmanager
async def web_chat(server: LiveServer) -> AsyncIterator[Customer]:
    """A new web-chat customer, greeted, on a client of its own for the block."""
    async with httpx.AsyncClient(timeout=30) as http:
        me = Customer(server, http)
        await me.start()
        yield me


async def to_values(me: Customer, number: str) -> list[dict[str, Any]]:
    """Readings for ``number`` up to the values step, the account confirmed: its prompt."""
    await me.press("readings")
    await me.say(number)
    return await me.press("yes")


# The smallest PDF the store takes for one (it checks content, not names).
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"


def picture(size: tuple[int, int], color: tuple[int, int, int], kind: str = "JPEG") -> bytes:
    """A real image (Pillow opens it), so the store accepts it as one."""
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, kind)
    return out.getvalue()


def texts(replies: list[dict[str, Any]]) -> str:
    return "\n".join(m["text"] for m in replies)


def payloads(replies: list[dict[str, Any]]) -> list[str]:
    return [b["payload"] for m in replies for b in m["buttons"]]


def serve_env(
    database_url: str, redis_url: str, config: str, folder: Path, **extra: str
) -> dict[str, str]:
    """The environment of ``abonent serve`` processes sharing this database and Redis,
    configured by ``config`` (TOML, written to ``folder/abonent.toml``); ``extra`` adds
    variables."""
    path = folder / "abonent.toml"
    path.write_text(config, encoding="utf-8")
    return {
        **os.environ,
        "ABONENT_DATABASE_URL": database_url,
        "ABONENT_REDIS_URL": redis_url,
        "ABONENT_CONFIG": str(path),
        **extra,
    }


class ServeProcesses:
    """Real ``abonent serve`` processes on one database (and Redis): the scale-out set-up.

    Unlike ``LiveServer`` (a thread of the test process), these are separate OS
    processes, so whatever reaches one of them from another went through the database
    and Redis, as in production.
    """

    def __init__(self, count: int, env: dict[str, str], logs_dir: Any) -> None:
        self.env = env
        self.ports = [free_port() for _ in range(count)]
        self.urls = [f"http://127.0.0.1:{p}" for p in self.ports]
        self.logs = [logs_dir / f"server{i}.log" for i in range(count)]
        self.procs = [self._spawn(i, "wb") for i in range(count)]

    def _spawn(self, i: int, mode: str) -> Any:
        import subprocess
        import sys

        # The pid is the Python server itself (no shell), so a signal reaches it.
        return subprocess.Popen(
            [sys.executable, "-m", "abonent", "serve", "--port", str(self.ports[i])],
            env=self.env,
            stdout=self.logs[i].open(mode),
            stderr=subprocess.STDOUT,
        )

    def _wait(self, i: int, limit: float) -> None:
        url, proc, log = self.urls[i], self.procs[i], self.logs[i]
        deadline = time.monotonic() + limit
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited: {log.read_text()}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"server not ready: {log.read_text()}")
            time.sleep(0.1)

    def wait_ready(self, limit: float = 60) -> ServeProcesses:
        for i in range(len(self.procs)):
            self._wait(i, limit)
        return self

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=15)

    def kill(self, i: int) -> int:
        """SIGKILL process ``i``, as a crash or the OOM killer would: no shutdown, no
        draining, whatever it had in flight is cut off. Returns the pid it had."""
        import signal

        proc = self.procs[i]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
        return int(proc.pid)

    def restart(self, i: int, limit: float = 60) -> None:
        """Start process ``i`` again on its port, its log continued, and wait until it is
        ready."""
        if self.procs[i].poll() is None:
            raise RuntimeError(f"server {i} is still running")
        with self.logs[i].open("ab") as out:
            out.write(b"\n--- restarted ---\n")
        self.procs[i] = self._spawn(i, "ab")
        self._wait(i, limit)


PASSWORD = "correct horse 1"


async def on_server(server: LiveServer, coro: Any) -> Any:
    """Run on the server's loop: its database connections belong to that loop."""
    assert server.loop is not None
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, server.loop))


class Operator:
    """A workspace user over the JSON API, with the cookie and CSRF token a page keeps."""

    def __init__(self, server: LiveServer, login: str) -> None:
        self.server = server
        self.login_name = login
        self.http = httpx.AsyncClient(base_url=server.url, timeout=10)
        self.csrf = ""
        self.id = 0

    async def login(self, password: str = PASSWORD) -> httpx.Response:
        r = await self.http.post(
            "/api/workspace/v1/login", json={"login": self.login_name, "password": password}
        )
        if r.status_code == 200:
            self.csrf = r.json()["csrf_token"]
            self.id = r.json()["user"]["id"]
        return r

    async def post(self, path: str, body: dict[str, Any] | None = None) -> httpx.Response:
        return await self.http.post(
            f"/api/workspace/v1{path}", json=body or {}, headers={"X-CSRF-Token": self.csrf}
        )

    async def get(self, path: str) -> httpx.Response:
        return await self.http.get(f"/api/workspace/v1{path}")

    async def online(self) -> None:
        assert (await self.post("/status", {"status": "online"})).status_code == 200
        # The desk assigns in the background when someone comes online; one pass here
        # (serialised with the background one) makes the outcome certain before asserting.
        await on_server(self.server, self.server.runtime.desk.assign_waiting())
        await self.server.settle()


async def conversation(server: LiveServer, conv_id: int) -> Conversation:
    """The conversation as the server stored it."""

    async def load() -> Conversation | None:
        async with server.runtime.db.session() as session:
            return await session.get(Conversation, conv_id)

    conv = await on_server(server, load())
    assert conv is not None
    return conv
