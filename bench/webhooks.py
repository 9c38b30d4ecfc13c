"""Messenger webhook benchmark: Telegram (or MAX) users against real servers.

C simulated messenger users talk to ``abonent serve`` subprocesses the way the platform
does: a fake platform, running in this process, POSTs each user's signed update to
``/webhooks/<channel>`` of a server (round-robin over the processes, as a load balancer
would) and serves the Bot API the server answers through, recording when each
``sendMessage`` (MAX: ``POST /messages``) arrives for which chat. Every user runs a
dialog in a closed loop, the next update only after the reply to the previous one
reached the fake, with no think time:

    «Здравствуйте» → «баланс» → account number → «меню» → (again)

About 5 % of the updates are delivered twice, as a platform does when it misses an ack:
every other one again after the first ack, the others concurrently with the first
delivery (to the next server in the rotation). Each must be answered once; the extra
replies are counted after the run.

The world (temp dir, TOML config with a ``[[channels]]`` entry pointing at the fake,
fresh SQLite file or PostgreSQL database, accounts imported with ``abonent billing
import``, servers on free loopback ports, optional private redis-server) is made and
removed by the helpers of bench/load.py. The first ``WARMUP`` seconds are not measured.

    .venv/bin/python bench/webhooks.py --db sqlite --customers 20 --duration 10
    .venv/bin/python bench/webhooks.py --db postgres --platform max
    .venv/bin/python bench/webhooks.py --db postgres --redis own --processes 2

See bench/README.md for what each printed figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import random
import re
import shlex
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# bench/ is on sys.path when this file runs as a script: the load bench's helpers.
from load import (
    ABONENT_CMD,
    WARMUP,
    BenchAccount,
    Postgres,
    Run,
    _delta,
    arm_watchdog,
    cancel_on_signals,
    free_ports,
    import_accounts,
    install_fast_loop,
    log,
    make_accounts,
    percentile,
    proc_status_kb,
    server_env,
    snapshot,
    start_server,
    tail,
    wait_ready,
    write_accounts_csv,
    write_config,
)

REPLY_TIMEOUT = 5.0  # a reply later than this is a timeout
CATCH_UP = 15.0  # after a timeout, how long a user waits for the late reply
QUIET = 1.5  # after the load: no sendMessage for this long means the servers are done
DRAIN_LIMIT = 15.0  # … but stop waiting for quiet after this long
HARD_STOP_GRACE = 60.0
CLEANUP_LIMIT = 30.0
DUPLICATE_SHARE = 0.05

# Formats the plugins validate (TelegramSettings.token / secret, MaxSettings.secret).
TG_TOKEN = "987654321:BENCH-token_abc"
TG_SECRET = "bench-webhook-secret_1"
MAX_TOKEN = "bench-max-token-001"
MAX_SECRET = "Bench_Max_Secret-2026"
MAX_BOT_ID = 229229229
CHANNEL_ID = {"telegram": "tg", "max": "mx"}
JSON = "application/json"
CHAT_BASE = 600_000_000  # chat (user) id of user i is CHAT_BASE + i


# --------------------------------------------------------------------------- the platform


class FakePlatform:
    """The messenger's Bot API in this process's event loop, answering as the platform
    does for what the product calls, recording each delivered message per chat."""

    def __init__(self, platform: str) -> None:
        self.platform = platform
        self.port = free_ports(1)
        self.url = f"http://127.0.0.1:{self.port}"
        self.arrivals: dict[str, list[tuple[float, str]]] = defaultdict(list)
        self.events: dict[str, asyncio.Event] = defaultdict(asyncio.Event)
        self.all_arrivals: list[float] = []
        self.calls: Counter[str] = Counter()  # API calls by method, refusals included
        self.refused = 0  # calls with a wrong token or an unreadable body
        self._seq = itertools.count(1)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        if self.platform == "telegram":
            app.router.add_post("/bot{token}/{method}", self._telegram)
        else:
            app.router.add_post("/messages", self._max_message)
            app.router.add_post("/answers", self._max_answer)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def _record(self, chat: str, text: str) -> None:
        now = time.perf_counter()
        self.arrivals[chat].append((now, text))
        self.all_arrivals.append(now)
        self.events[chat].set()

    async def _telegram(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        self.calls[method] += 1
        if request.match_info["token"] != TG_TOKEN:
            self.refused += 1
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            self.refused += 1
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request"}, status=400
            )
        if method != "sendMessage":  # answerCallbackQuery and the like
            return web.json_response({"ok": True, "result": True})
        chat_id, text = body.get("chat_id"), body.get("text")
        if chat_id in (None, "") or not isinstance(text, str) or not text.strip():
            self.refused += 1
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: bad message"},
                status=400,
            )
        self._record(str(chat_id), text)
        result = {
            "message_id": next(self._seq),
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
            "text": text,
        }
        return web.json_response({"ok": True, "result": result})

    async def _max_message(self, request: web.Request) -> web.Response:
        self.calls["messages"] += 1
        user_id = request.query.get("user_id")
        if request.headers.get("Authorization") != MAX_TOKEN:
            self.refused += 1
            return web.json_response(
                {"code": "verify.token", "message": "Invalid access_token"}, status=401
            )
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        if not user_id or not isinstance(body, dict):
            self.refused += 1
            return web.json_response({"code": "proto.payload", "message": "bad"}, status=400)
        text = body.get("text") or ""
        self._record(user_id, text)
        mid = f"mid.bench.{next(self._seq)}"
        message = {"recipient": {"user_id": int(user_id)}, "body": {"mid": mid, "text": text}}
        return web.json_response({"message": message})

    async def _max_answer(self, request: web.Request) -> web.Response:
        self.calls["answers"] += 1
        return web.json_response({"success": True})

    # ------------------------------------------------------------------ updates
    def headers(self) -> dict[str, str]:
        """How the platform signs a delivery: the secret echoed in a header."""
        if self.platform == "telegram":
            return {"X-Telegram-Bot-Api-Secret-Token": TG_SECRET, "Content-Type": JSON}
        return {"X-Max-Bot-Api-Secret": MAX_SECRET, "Content-Type": JSON}

    def update(self, user: User, text: str) -> bytes:
        """The platform's webhook body for ``text`` typed by ``user``, ids fresh."""
        user.sent_ids += 1
        if self.platform == "telegram":
            sender = {"id": user.chat, "is_bot": False, "first_name": "Иван", "language_code": "ru"}
            update: dict[str, Any] = {
                "update_id": next(self._seq),
                "message": {
                    "message_id": user.sent_ids,
                    "from": sender,
                    "chat": {"id": user.chat, "type": "private", "first_name": "Иван"},
                    "date": int(time.time()),
                    "text": text,
                },
            }
        else:
            stamp = int(time.time() * 1000)
            update = {
                "update_type": "message_created",
                "timestamp": stamp,
                "user_locale": "ru",
                "message": {
                    "sender": {"user_id": user.chat, "first_name": "Иван", "is_bot": False},
                    "recipient": {
                        "chat_id": 900_000_000 + user.chat,
                        "chat_type": "dialog",
                        "user_id": MAX_BOT_ID,
                    },
                    "timestamp": stamp,
                    "body": {
                        "mid": f"mid.{user.chat:x}.{user.sent_ids}",
                        "seq": stamp,
                        "text": text,
                    },
                },
            }
        return json.dumps(update, ensure_ascii=False).encode()


# --------------------------------------------------------------------------- users


@dataclass
class Stats:
    measure_from: float = 0.0
    stop_at: float = 0.0
    ack_latencies: list[float] = field(default_factory=list)  # first deliveries, window
    dup_ack_latencies: list[float] = field(default_factory=list)  # duplicates, window
    latencies: list[float] = field(default_factory=list)  # POST → sendMessage, window
    sent: int = 0  # updates acknowledged (first deliveries) in the window
    acks: int = 0  # 200s in the window, duplicates included
    replied: int = 0  # window updates answered within REPLY_TIMEOUT
    timeouts: int = 0  # whole run
    errors: Counter[str] = field(default_factory=Counter)  # whole run
    unexpected: int = 0
    unexpected_samples: list[str] = field(default_factory=list)
    duplicates: int = 0  # updates delivered twice, whole run
    posted: Counter[str] = field(default_factory=Counter)  # distinct updates acked, per chat

    def in_window(self, t: float) -> bool:
        return self.measure_from <= t < self.stop_at


class User:
    """One messenger user: a chat, an account, and the scripted dialog."""

    def __init__(
        self,
        index: int,
        account: BenchAccount,
        fake: FakePlatform,
        hooks: list[str],
        rotation: itertools.count[int],
        http: aiohttp.ClientSession,
        stats: Stats,
        rng: random.Random,
    ) -> None:
        self.chat = CHAT_BASE + index
        self.key = str(self.chat)
        self.account = account
        self.fake = fake
        self.hooks = hooks
        self.rotation = rotation
        self.http = http
        self.stats = stats
        self.rng = rng
        self.sent_ids = 0
        self.pos = 0  # arrivals of this chat already taken as replies
        self.dup_turn = 0

    def _hook(self) -> str:
        return self.hooks[next(self.rotation) % len(self.hooks)]

    async def _post(self, body: bytes) -> tuple[int, float] | None:
        """One delivery: (status, ack latency) or None on a transport error."""
        t0 = time.perf_counter()
        try:
            async with self.http.post(self._hook(), data=body, headers=self.fake.headers()) as r:
                await r.read()
                return r.status, time.perf_counter() - t0
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.stats.errors[type(exc).__name__] += 1
            return None

    async def _wait_reply(self, deadline: float) -> tuple[float, str] | None:
        arrivals = self.fake.arrivals[self.key]
        event = self.fake.events[self.key]
        while len(arrivals) <= self.pos:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                return None
            event.clear()
            try:
                await asyncio.wait_for(event.wait(), remaining)
            except TimeoutError:
                return None
        reply = arrivals[self.pos]
        self.pos += 1
        return reply

    def _resync(self) -> None:
        self.pos = len(self.fake.arrivals[self.key])

    async def send(self, text: str, expect: str) -> bool:
        """One update and the bot's reply at the platform; False when the dialog broke."""
        st = self.stats
        body = self.fake.update(self, text)
        duplicate = self.rng.random() < DUPLICATE_SHARE
        concurrent = duplicate and self.dup_turn % 2 == 1
        if duplicate:
            self.dup_turn += 1
            st.duplicates += 1
        t0 = time.perf_counter()
        measured = st.in_window(t0)
        if concurrent:
            first, second = await asyncio.gather(self._post(body), self._post(body))
        else:
            first = await self._post(body)
            second = await self._post(body) if duplicate and first is not None else None
        for n, outcome in enumerate((first, second)):
            if outcome is None:
                continue
            status, latency = outcome
            if status != 200:
                st.errors[f"webhook {status}"] += 1
                continue
            if measured:
                st.acks += 1
                (st.ack_latencies if n == 0 else st.dup_ack_latencies).append(latency)
        delivered = [o for o in (first, second) if o is not None and o[0] == 200]
        if not delivered:
            return False
        st.posted[self.key] += 1
        if measured:
            st.sent += 1
        reply = await self._wait_reply(t0 + REPLY_TIMEOUT)
        if reply is None:
            st.timeouts += 1
            # Let the late reply come before the next update, or it would be taken for
            # the reply to the next one.
            late = await self._wait_reply(min(t0 + CATCH_UP, st.stop_at + REPLY_TIMEOUT))
            if late is not None and measured:
                st.latencies.append(late[0] - t0)  # the tail keeps the late ones
            self._resync()
            return False
        at, reply_text = reply
        if measured:
            st.replied += 1
            st.latencies.append(at - t0)
        if expect not in reply_text:
            st.unexpected += 1
            if len(st.unexpected_samples) < 3:
                st.unexpected_samples.append(
                    f"{text!r} → {reply_text[:160]!r} (expected {expect!r})"
                )
            self._resync()
            return False
        return True

    async def run(self) -> None:
        number = self.account.number
        script = [
            ("Здравствуйте", "Здравствуйте!"),
            ("баланс", "лицев"),
            (number, f"Лицевой счёт {number}"),
            ("меню", "Чем могу помочь"),
        ]
        while time.perf_counter() < self.stats.stop_at:
            for text, expect in script:
                if time.perf_counter() >= self.stats.stop_at:
                    return
                if not await self.send(text, expect):
                    break  # off script: start over with a greeting


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    platform: str
    db: str
    customers: int
    processes: int
    duration: float
    window_s: float
    updates: int
    acks: int
    acks_per_s: float
    replies: int
    replies_per_s: float
    send_calls_per_s: float
    ack_p50_ms: float
    ack_p95_ms: float
    ack_p99_ms: float
    dup_ack_p50_ms: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    duplicates: int
    extra_replies: int
    missing_replies: int
    timeouts: int
    errors: dict[str, int]
    unexpected: int
    api_refused: int
    server_peak_rss_mb: float
    server_sampled_rss_mb: float
    server_cpu_s: float
    server_cpu_ms_per_msg: float
    loadgen_cpu_s: float
    postgres_cpu_s: float | None
    redis_cpu_s: float | None
    machine_busy_s: float
    machine_steal_s: float
    machine_cores: int
    server_log_errors: int
    loadgen_loop: str


def channel_toml(platform: str, api_base: str) -> str:
    token, secret = (TG_TOKEN, TG_SECRET) if platform == "telegram" else (MAX_TOKEN, MAX_SECRET)
    return (
        f'\n[[channels]]\nid = "{CHANNEL_ID[platform]}"\ntype = "{platform}"\n'
        f'token = "{token}"\nsecret = "{secret}"\napi_base = "{api_base}"\n'
    )


async def drain(fake: FakePlatform) -> None:
    """Wait until the servers stop sending (late and duplicate replies included)."""
    deadline = time.perf_counter() + DRAIN_LIMIT
    while time.perf_counter() < deadline:
        last = fake.all_arrivals[-1] if fake.all_arrivals else 0.0
        if time.perf_counter() - last >= QUIET:
            return
        await asyncio.sleep(0.1)


async def execute(run: Run, fake: FakePlatform, loop_name: str) -> tuple[Result, Stats]:
    args = run.args
    work = run.work
    accounts = make_accounts(args.accounts)
    csv_path = work / "accounts.csv"
    write_accounts_csv(csv_path, accounts)
    config = work / "abonent.toml"
    write_config(config)
    await fake.start()
    with config.open("a", encoding="utf-8") as f:
        f.write(channel_toml(args.platform, fake.url))

    if args.db == "postgres":
        run.pg = Postgres(args.pg_url)
        await run.pg.create()
        db_url = run.pg.url
    else:
        db_url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
    redis_url: str | None = args.redis
    if redis_url == "own":
        redis_url = await run.start_redis()
    env = server_env(config, db_url, redis_url)
    log(await import_accounts(csv_path, env, work / "import.log"))

    base_port = args.port or free_ports(args.processes)
    for i in range(args.processes):
        run.servers.append(await start_server(base_port + i, env, work / f"server{i}.log"))

    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(wait_ready(s, http) for s in run.servers))
        log(
            f"{len(run.servers)} server(s) ready on {db_url.split(':', 1)[0]} "
            f"(pids {', '.join(str(s.pid) for s in run.servers)}), {args.platform} fake at "
            f"{fake.url}; load for {args.duration:g}s (first {WARMUP:g}s not measured)"
        )
        hooks = [f"{s.url}/webhooks/{CHANNEL_ID[args.platform]}" for s in run.servers]
        stats = Stats()
        rotation = itertools.count()
        users = [
            User(i, accounts[i], fake, hooks, rotation, http, stats, random.Random(i))
            for i in range(args.customers)
        ]
        start = time.perf_counter()
        stats.measure_from = start + WARMUP
        stats.stop_at = start + args.duration

        async def sample_rss() -> None:
            while True:
                for s in run.servers:
                    s.sample_rss()
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample_rss())
        loops = [asyncio.create_task(u.run()) for u in users]
        try:
            await asyncio.sleep(max(0.0, stats.measure_from - time.perf_counter()))
            first = await snapshot(run.servers, run.pg, redis_url)
            await asyncio.sleep(max(0.0, stats.stop_at - time.perf_counter()))
            last = await snapshot(run.servers, run.pg, redis_url)
            await asyncio.wait_for(asyncio.gather(*loops), CATCH_UP + REPLY_TIMEOUT * 2 + 5)
            await drain(fake)
            for s in run.servers:
                s.sample_rss()
            hwm = [proc_status_kb(s.pid, "VmHWM") or 0 for s in run.servers]
        finally:
            sampler.cancel()
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, sampler, return_exceptions=True)

    extra = missing = 0
    for chat in {*stats.posted, *fake.arrivals}:
        got, want = len(fake.arrivals.get(chat, [])), stats.posted.get(chat, 0)
        extra += max(0, got - want)
        missing += max(0, want - got)
    window = last.at - first.at
    lat = sorted(stats.latencies)
    ack = sorted(stats.ack_latencies)
    sends = sum(1 for t in fake.all_arrivals if first.at <= t < last.at)
    log_errors = 0
    for s in run.servers:
        text = s.log.read_text(errors="replace") if s.log.exists() else ""
        errors_here = text.count("Traceback") + len(re.findall(r"\bERROR\b", text))
        if errors_here:
            log(f"server :{s.port} log tail:\n{tail(s.log, 20)}")
        log_errors += errors_here
    ms = 1000.0
    server_cpu = _delta(first.servers, last.servers)
    return Result(
        platform=args.platform,
        db=args.db,
        customers=args.customers,
        processes=args.processes,
        duration=args.duration,
        window_s=round(window, 3),
        updates=stats.sent,
        acks=stats.acks,
        acks_per_s=round(stats.acks / window, 1),
        replies=stats.replied,
        replies_per_s=round(stats.replied / window, 1),
        send_calls_per_s=round(sends / window, 1),
        ack_p50_ms=round(percentile(ack, 50) * ms, 1),
        ack_p95_ms=round(percentile(ack, 95) * ms, 1),
        ack_p99_ms=round(percentile(ack, 99) * ms, 1),
        dup_ack_p50_ms=round(percentile(sorted(stats.dup_ack_latencies), 50) * ms, 1),
        p50_ms=round(percentile(lat, 50) * ms, 1),
        p95_ms=round(percentile(lat, 95) * ms, 1),
        p99_ms=round(percentile(lat, 99) * ms, 1),
        max_ms=round((lat[-1] if lat else math.nan) * ms, 1),
        duplicates=stats.duplicates,
        extra_replies=extra,
        missing_replies=missing,
        timeouts=stats.timeouts,
        errors=dict(stats.errors),
        unexpected=stats.unexpected,
        api_refused=fake.refused,
        server_peak_rss_mb=round(max(hwm) / 1024, 1),
        server_sampled_rss_mb=round(max(s.peak_rss_kb for s in run.servers) / 1024, 1),
        server_cpu_s=round(server_cpu, 2),
        server_cpu_ms_per_msg=round(server_cpu * 1000 / stats.replied, 2)
        if stats.replied
        else math.nan,
        loadgen_cpu_s=round(last.loadgen - first.loadgen, 2),
        postgres_cpu_s=round(_delta(first.pg, last.pg), 2) if run.pg is not None else None,
        redis_cpu_s=(
            round(last.redis - first.redis, 2)
            if last.redis is not None and first.redis is not None
            else None
        ),
        machine_busy_s=round(last.machine_busy - first.machine_busy, 2),
        machine_steal_s=round(last.machine_steal - first.machine_steal, 2),
        machine_cores=os.cpu_count() or 1,
        server_log_errors=log_errors,
        loadgen_loop=loop_name,
    ), stats


def report(r: Result) -> str:
    window = r.window_s or 1.0
    cores = r.machine_cores

    def share(seconds: float | None) -> str:
        return "n/a" if seconds is None else f"{seconds:.1f}s ({seconds / window:.0%} of a core)"

    def per_msg(seconds: float | None) -> str:
        if seconds is None or not r.replies:
            return ""
        return f", {seconds * 1000 / r.replies:.1f} ms per answered update"

    others = (
        r.machine_busy_s
        - r.server_cpu_s
        - r.loadgen_cpu_s
        - (r.postgres_cpu_s or 0)
        - (r.redis_cpu_s or 0)
    )
    errors = ", ".join(f"{k}: {v}" for k, v in r.errors.items()) or "0"
    procs = f" processes={r.processes}" if r.processes > 1 else ""
    lines = [
        f"platform={r.platform} db={r.db}{procs} customers={r.customers} "
        f"duration={r.duration:g}s  acks/s={r.acks_per_s:.1f} replies/s={r.replies_per_s:.1f}  "
        f"ack p50={r.ack_p50_ms:.0f}ms p99={r.ack_p99_ms:.0f}ms  "
        f"reply p50={r.p50_ms:.0f}ms p95={r.p95_ms:.0f}ms p99={r.p99_ms:.0f}ms "
        f"max={r.max_ms:.0f}ms  extra_replies={r.extra_replies}  timeouts={r.timeouts}  "
        f"server_peak_rss={r.server_peak_rss_mb:.0f}MB  "
        f"cpu/msg={r.server_cpu_ms_per_msg:.1f}ms",
        f"  measured window      {r.window_s:.1f}s (after {WARMUP:g}s warm-up)",
        f"  webhooks             {r.updates} updates, {r.acks} acks (duplicates included) → "
        f"{r.acks_per_s:.1f} acks/s",
        f"  ack latency          p50 {r.ack_p50_ms:.1f} ms, p95 {r.ack_p95_ms:.1f} ms, "
        f"p99 {r.ack_p99_ms:.1f} ms (duplicate deliveries: p50 {r.dup_ack_p50_ms:.1f} ms)",
        f"  replies              {r.replies} answered within {REPLY_TIMEOUT:g}s → "
        f"{r.replies_per_s:.1f}/s; sendMessage calls at the platform {r.send_calls_per_s:.1f}/s",
        f"  reply latency        p50 {r.p50_ms:.1f} ms, p95 {r.p95_ms:.1f} ms, "
        f"p99 {r.p99_ms:.1f} ms, max {r.max_ms:.1f} ms  (POST sent → sendMessage received)",
        f"  duplicates           {r.duplicates} updates delivered twice → "
        f"{r.extra_replies} extra replies, {r.missing_replies} missing replies (whole run)",
        f"  problems             timeouts (>{REPLY_TIMEOUT:g}s) {r.timeouts}, errors {errors}, "
        f"off-script replies {r.unexpected}, API calls refused by the platform "
        f"{r.api_refused}, server log errors {r.server_log_errors}",
        f"  server memory        peak RSS (VmHWM) {r.server_peak_rss_mb:.1f} MB, "
        f"max sampled VmRSS {r.server_sampled_rss_mb:.1f} MB"
        + (" (largest of the processes)" if r.processes > 1 else ""),
        f"  CPU in the window    machine busy {r.machine_busy_s:.1f}s of {window * cores:.1f}s "
        f"({r.machine_busy_s / (window * cores):.0%} of {cores} cores), "
        f"stolen by the hypervisor {r.machine_steal_s:.1f}s "
        f"({r.machine_steal_s / (window * cores):.0%})",
        f"    server(s)          {share(r.server_cpu_s)}{per_msg(r.server_cpu_s)}",
        f"    load gen + fake    {share(r.loadgen_cpu_s)}{per_msg(r.loadgen_cpu_s)}  "
        f"[{r.loadgen_loop}]",
    ]
    if r.postgres_cpu_s is not None:
        lines.append(f"    postgres backends  {share(r.postgres_cpu_s)}{per_msg(r.postgres_cpu_s)}")
    if r.redis_cpu_s is not None:
        lines.append(f"    redis-server       {share(r.redis_cpu_s)}")
    lines.append(f"    everything else    {share(max(others, 0.0))}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="N messenger users through the webhooks and the outbox of Abonent.",
    )
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument("--platform", choices=("telegram", "max"), default="telegram")
    p.add_argument(
        "--pg-url",
        default="postgresql+asyncpg://postgres@127.0.0.1:5432/test",
        help="maintenance database; the bench creates and drops its own next to it",
    )
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--duration", type=float, default=15.0, help="seconds of load (5..600)")
    p.add_argument("--port", type=int, default=0, help="first server port (default: a free one)")
    p.add_argument("--redis", default=None, help="Redis URL for the servers' event bus, or 'own'")
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes; more than 1 needs --db postgres and --redis",
    )
    p.add_argument("--accounts", type=int, default=2000, help="accounts in the generated CSV")
    p.add_argument("--abonent-cmd", default=None, help="command that runs abonent")
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    args = p.parse_args(argv)
    if not 5 <= args.duration <= 600:
        p.error("--duration must be between 5 and 600 seconds")
    if not 1 <= args.customers <= 5000:
        p.error("--customers must be between 1 and 5000")
    if not 1 <= args.processes <= 8:
        p.error("--processes must be between 1 and 8")
    if args.processes > 1 and (args.db != "postgres" or not args.redis):
        p.error("--processes > 1 needs --db postgres and --redis URL|own")
    args.accounts = max(args.accounts, args.customers)
    args.profile = None  # Run.cleanup looks for a profiler; this bench has none
    return args


async def main_async(args: argparse.Namespace, loop_name: str) -> int:
    run = Run(args)
    fake = FakePlatform(args.platform)
    watchdog = arm_watchdog(run, args.duration + HARD_STOP_GRACE + CLEANUP_LIMIT)
    current = asyncio.current_task()
    assert current is not None
    cancel_on_signals(current)
    try:
        try:
            async with asyncio.timeout(args.duration + HARD_STOP_GRACE):
                result, stats = await execute(run, fake, loop_name)
        except TimeoutError:
            log(f"hard stop: the run took longer than duration + {HARD_STOP_GRACE:g}s")
            return 2
        except asyncio.CancelledError:
            log("interrupted")
            return 130
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.cleanup()), CLEANUP_LIMIT)
            await fake.stop()
    finally:
        watchdog.cancel()
    print(report(result), flush=True)
    for sample in stats.unexpected_samples:
        print(f"  off-script: {sample}")
    if args.json:
        print(json.dumps(asdict(result), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.abonent_cmd:
        ABONENT_CMD[:] = shlex.split(args.abonent_cmd)
    loop_name = install_fast_loop()
    try:
        return asyncio.run(main_async(args, loop_name))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
