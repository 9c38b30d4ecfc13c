"""Reminder campaign benchmark: N debtors on Telegram, PostgreSQL, live chat alongside.

One process holds the whole world: a fake Telegram Bot API (aiohttp, loopback) that
answers ``sendMessage`` at once and notes when each arrives for which chat, and the
real server (``create_app`` under uvicorn) on a fresh PostgreSQL database
``abonent_bench_reminders_<pid>`` next to the one in ``--pg-url``, dropped afterwards.
The database is seeded in bulk with N contacts who wrote to the bot on Telegram, each
with a debt on an account of their own.

Phases:

1. **Live only** (``--live-seconds``): ``--live`` customers (not in the campaign) in a
   closed loop send «меню» through the webhook and wait for the bot's answer at the
   fake; their reply latency is the baseline.
2. **Campaign**: a payment-due campaign over every debtor is created and started with
   the same live customers still talking. Measured: the expansion (start → every send
   row written), sends per second at the fake against the configured rate (raise it
   with ``--rate``: Telegram's own limit is ~30/s, the default ``[reminders] rates``
   20/s), the live replies' latency while reminders go out, and the peak RSS of the
   process (server and bench together, so an upper bound of the server's).

    .venv/bin/python bench/reminders.py --recipients 10000
    .venv/bin/python bench/reminders.py                     # 100,000
    .venv/bin/python bench/reminders.py --recipients 10000 --rate 30

Checks printed at the end: every debtor got exactly one reminder, no live message went
unanswered.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import statistics
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import uvicorn
from aiohttp import ClientSession, ClientTimeout, web
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import create_async_engine

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from abonent.app import create_app, load_understanding  # noqa: E402
from abonent.automation.reminders import campaigns  # noqa: E402
from abonent.config import Settings  # noqa: E402
from abonent.db.migrate import upgrade  # noqa: E402
from abonent.db.models import (  # noqa: E402
    Account,
    ChannelIdentity,
    Contact,
    ContactAccount,
    Conversation,
    Message,
    ReminderCampaign,
    ReminderSend,
)
from abonent.db.session import Database  # noqa: E402

TOKEN = "987654321:BENCH-reminders_1"
SECRET = "bench-reminders-secret"
CHUNK = 5000
LIVE_BASE = 900_000_000  # live customers' chat ids; debtors are 1 … N
REMINDER_MARK = "задолженность"

log = logging.getLogger("bench.reminders")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


class FakeTelegram:
    """The Bot API, only as much as the server calls: answered at once."""

    def __init__(self) -> None:
        self.reminders: list[tuple[float, int]] = []  # (monotonic, chat)
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self._ids = itertools.count(1)

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body: dict[str, Any] = await request.json() if request.can_read_body else {}
        if method == "sendMessage":
            chat = int(body.get("chat_id") or 0)
            now = time.monotonic()
            if REMINDER_MARK in str(body.get("text", "")):
                self.reminders.append((now, chat))
            else:
                waiter = self.waiters.pop(chat, None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)
            result: Any = {
                "message_id": next(self._ids),
                "chat": {"id": chat, "type": "private"},
                "date": int(time.time()),
                "text": body.get("text", ""),
            }
        elif method == "getMe":
            result = {"id": 987654321, "is_bot": True, "username": "bench_bot"}
        else:
            result = True
        return web.json_response({"ok": True, "result": result})


async def create_database(pg_url: str, name: str) -> str:
    base, _, _ = pg_url.rpartition("/")
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return f"{base}/{name}"


async def drop_database(pg_url: str, name: str) -> None:
    admin = create_async_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    await admin.dispose()


async def seed(url: str, n: int) -> float:
    """N debtors who wrote «/start» on Telegram a day ago, one account each."""
    started = time.perf_counter()
    db = Database(url)
    await upgrade(db.engine)
    wrote = datetime.now(UTC) - timedelta(days=1)
    async with db.engine.begin() as conn:
        for lo in range(0, n, CHUNK):
            ids = range(lo + 1, min(lo + CHUNK, n) + 1)
            await conn.execute(
                insert(Account),
                [
                    {
                        "number": f"{7_000_000_000 + i}",
                        "holder": "Иванов Иван Иванович",
                        "address": "г. Тест, ул. Ленина, д. 1",
                        "plan": "single",
                        "t1": Decimal("100"),
                        "readings_date": wrote.date(),
                        "balance": Decimal(100 + i % 900),
                        "updated_at": wrote,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(Contact),
                [{"id": i, "name": f"Клиент {i}", "created_at": wrote} for i in ids],
            )
            await conn.execute(
                insert(ChannelIdentity),
                [
                    {
                        "id": i,
                        "contact_id": i,
                        "channel_id": "tg",
                        "external_id": str(i),
                        "created_at": wrote,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(Conversation),
                [
                    {
                        "id": i,
                        "contact_id": i,
                        "identity_id": i,
                        "channel_id": "tg",
                        "status": "closed",
                        "bot_state": {},
                        "created_at": wrote,
                        "updated_at": wrote,
                        "last_message_at": wrote,
                        "closed_at": wrote,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(Message),
                [
                    {
                        "conversation_id": i,
                        "identity_id": i,
                        "channel_id": "tg",
                        "author": "customer",
                        "text": "/start",
                        "handled": True,
                        "created_at": wrote,
                    }
                    for i in ids
                ],
            )
            await conn.execute(
                insert(ContactAccount),
                [
                    {
                        "contact_id": i,
                        "account_number": f"{7_000_000_000 + i}",
                        "last_used_at": wrote,
                        "confirmed": True,
                    }
                    for i in ids
                ],
            )
        for table in ("contacts", "channel_identities", "conversations"):
            await conn.execute(
                text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), {n + 1})")
            )
        await conn.execute(text("ANALYZE"))
    await db.dispose()
    return time.perf_counter() - started


class Live:
    """Customers chatting with the bot while the campaign runs: latency per reply."""

    def __init__(self, fake: FakeTelegram, server: str, count: int) -> None:
        self.fake = fake
        self.url = f"{server}/webhooks/tg"
        self.count = count
        self.samples: dict[str, list[float]] = defaultdict(list)
        self.phase = "idle"
        self.lost = 0
        self._update = itertools.count(1)
        self._stop = asyncio.Event()

    async def customer(self, http: ClientSession, chat: int) -> None:
        message = itertools.count(1)
        while not self._stop.is_set():
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[float] = loop.create_future()
            self.fake.waiters[chat] = waiter
            update = {
                "update_id": next(self._update),
                "message": {
                    "message_id": next(message),
                    "from": {"id": chat, "is_bot": False, "first_name": "Живой"},
                    "chat": {"id": chat, "type": "private", "first_name": "Живой"},
                    "date": int(time.time()),
                    "text": "меню",
                },
            }
            phase = self.phase
            sent = time.monotonic()
            async with http.post(
                self.url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": SECRET}
            ) as resp:
                await resp.read()
            try:
                answered = await asyncio.wait_for(waiter, timeout=10)
            except TimeoutError:
                self.lost += 1
                continue
            if phase != "idle" and phase == self.phase:
                self.samples[phase].append(answered - sent)
            await asyncio.sleep(0.25)  # a person reads the answer

    async def run(self) -> None:
        async with ClientSession(timeout=ClientTimeout(total=30)) as http:
            await asyncio.gather(*(self.customer(http, LIVE_BASE + i) for i in range(self.count)))

    def stop(self) -> None:
        self._stop.set()


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def main(args: argparse.Namespace) -> int:
    name = f"abonent_bench_reminders_{os.getpid()}"
    url = await create_database(args.pg_url, name)
    fake = FakeTelegram()
    fake_app = web.Application()
    fake_app.router.add_post("/bot{token}/{method}", fake.handle)
    runner = web.AppRunner(fake_app, access_log=None)
    await runner.setup()
    fake_port = free_port()
    await web.TCPSite(runner, "127.0.0.1", fake_port).start()
    server_task: asyncio.Task[None] | None = None
    uv: uvicorn.Server | None = None
    try:
        print(f"seeding {args.recipients:,} debtors …", flush=True)
        seeded = await seed(url, args.recipients)
        print(f"seeded in {seeded:.1f} s", flush=True)
        port = free_port()
        settings = Settings(
            database_url=url,
            public_url=f"http://127.0.0.1:{port}",
            company={
                "name": "Энергосбыт",
                "timezone": "Europe/Moscow",
                "links": {"payment": "https://pay.example/energo"},
            },
            tariffs={"single": "6.43"},
            readings={"first_day": 1, "last_day": 31},
            channels=[
                {
                    "id": "tg",
                    "type": "telegram",
                    "token": TOKEN,
                    "secret": SECRET,
                    "username": "@bench_bot",
                    "api_base": f"http://127.0.0.1:{fake_port}",
                }
            ],
            reminders={
                "rates": {"telegram": args.rate},
                "quiet_hours": "",
                "outbox_backlog": 50,
            },
        )
        app = create_app(settings, understanding=load_understanding())
        uv = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        server_task = asyncio.create_task(uv.serve())
        for _ in range(1200):  # the consultant loads first: up to a minute
            if uv.started:
                break
            await asyncio.sleep(0.05)
        server = f"http://127.0.0.1:{port}"
        db = Database(url)
        base_rss = rss_mb()
        peak = base_rss

        live = Live(fake, server, args.live)
        live_task = asyncio.create_task(live.run())
        await asyncio.sleep(1.0)  # warm-up
        live.phase = "without campaign"
        await asyncio.sleep(args.live_seconds)
        live.phase = "idle"

        await campaigns.create(db, name="bench", kind="payment_due", text=None, quiet_hours="")
        started = time.monotonic()
        await campaigns.move(db, "bench", "start")
        live.phase = "with campaign"
        expanded_at: float | None = None
        last_report = started
        deadline = started + args.max_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            peak = max(peak, rss_mb())
            if expanded_at is None:
                async with db.session() as session:
                    period = await session.scalar(
                        select(ReminderCampaign.expanded_period).where(
                            ReminderCampaign.name == "bench"
                        )
                    )
                if period is not None:
                    expanded_at = time.monotonic()
                    print(f"expanded in {expanded_at - started:.1f} s", flush=True)
            if time.monotonic() - last_report >= 5:
                last_report = time.monotonic()
                print(f"  {len(fake.reminders):,} reminders at the fake", flush=True)
            if len(fake.reminders) >= args.recipients:
                break
        done_at = time.monotonic()
        live.phase = "idle"
        live.stop()
        await live_task

        async with db.session() as session:
            statuses = dict(
                (
                    await session.execute(
                        select(ReminderSend.status, text("count(*)")).group_by(ReminderSend.status)
                    )
                ).all()
            )
        await db.dispose()

        times = [t for t, _ in fake.reminders]
        per_chat = Counter(chat for _, chat in fake.reminders)
        print()
        print(f"recipients            {args.recipients:,}")
        print(f"seed (bulk insert)    {seeded:.1f} s")
        if expanded_at is not None:
            rows_per_s = args.recipients / max(expanded_at - started, 1e-9)
            print(
                f"expansion             {expanded_at - started:.1f} s "
                f"({rows_per_s:,.0f} sends written/s, audience from billing included)"
            )
        if len(times) > 1:
            first, last = times[0], times[-1]
            steady = len(times) / max(last - first, 1e-9)
            print(
                f"sends                 {len(times):,} in {last - first:.1f} s: "
                f"{steady:,.1f}/s (configured rate {args.rate:g}/s; Telegram's limit ~30/s)"
            )
            seconds = Counter(int(t - first) for t in times)
            print(f"busiest second        {max(seconds.values())} sends")
        print(f"start → last send     {done_at - started:.1f} s")
        print(f"sends by status       {dict(sorted(statuses.items()))}")
        print(f"peak RSS              {peak:.0f} MB (start {base_rss:.0f} MB; bench included)")
        for phase in ("without campaign", "with campaign"):
            xs = live.samples.get(phase, [])
            print(
                f"live replies {phase:17s} n={len(xs):5d} p50 {pct(xs, 0.5):6.1f} ms "
                f"p99 {pct(xs, 0.99):6.1f} ms"
                + (f" mean {statistics.mean(xs) * 1000:6.1f} ms" if xs else "")
            )
        twice = sum(1 for n in per_chat.values() if n > 1)
        missing = args.recipients - len(per_chat)
        print(
            f"checks                reminded twice: {twice}, not reminded: {missing}, "
            f"live messages unanswered: {live.lost}"
        )
        return 0 if twice == 0 and missing == 0 else 1
    finally:
        if uv is not None:
            uv.should_exit = True
        if server_task is not None:
            await server_task
        await runner.cleanup()
        await drop_database(args.pg_url, name)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--recipients", type=int, default=100_000, help="debtors (default 100,000)")
    p.add_argument(
        "--rate",
        type=float,
        default=1000.0,
        help="[reminders] rates.telegram for the run (default 1000/s: the machine's ceiling)",
    )
    p.add_argument("--live", type=int, default=4, help="live customers chatting (default 4)")
    p.add_argument("--live-seconds", type=float, default=10.0, help="baseline phase (default 10)")
    p.add_argument("--max-seconds", type=float, default=1800.0, help="give up after (default 1800)")
    p.add_argument(
        "--pg-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="maintenance database: the bench creates and drops its own next to it",
    )
    args = p.parse_args()
    if args.recipients < 1 or args.rate <= 0 or args.live < 1:
        p.error("--recipients, --rate and --live must be positive")
    return args


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(asyncio.run(main(parse())))
