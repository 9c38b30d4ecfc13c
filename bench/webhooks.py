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
import itertools
import json
import random
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

# bench/ is on sys.path when this file runs as a script: the load bench's helpers.
from load import (
    REPLY_TIMEOUT,
    WARMUP,
    BenchAccount,
    DialogStats,
    Run,
    Usage,
    bench_main,
    bench_parser,
    bench_session,
    checked_args,
    free_ports,
    latency_text,
    log,
    measure,
    ms,
    print_outcome,
    problems_line,
    processes_text,
    run_guarded,
    servers_ready,
    start_world,
    usage,
    window_line,
)

QUIET = 1.5  # after the load: no sendMessage for this long means the servers are done
DRAIN_LIMIT = 15.0  # … but stop waiting for quiet after this long
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
class Stats(DialogStats):
    # ``sent``: updates acknowledged (first deliveries) in the window; ``latencies``:
    # POST → sendMessage.
    ack_latencies: list[float] = field(default_factory=list)  # first deliveries, window
    dup_ack_latencies: list[float] = field(default_factory=list)  # duplicates, window
    acks: int = 0  # 200s in the window, duplicates included
    duplicates: int = 0  # updates delivered twice, whole run
    posted: Counter[str] = field(default_factory=Counter)  # distinct updates acked, per chat


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
        ok = await st.score(reply, self._wait_reply, t0, measured, repr(text), expect)
        if not ok:
            self._resync()  # a late or unexpected reply must not answer the next update
        return ok

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
    usage: Usage  # flattened into the JSON line, last


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
    await fake.start()
    accounts = await start_world(run, channel_toml(args.platform, fake.url))
    async with bench_session() as http:
        log(
            f"{await servers_ready(run, http)}, {args.platform} fake at {fake.url}; "
            f"load for {args.duration:g}s (first {WARMUP:g}s not measured)"
        )
        hooks = [f"{s.url}/webhooks/{CHANNEL_ID[args.platform]}" for s in run.servers]
        stats = Stats()
        rotation = itertools.count()
        users = [
            User(i, accounts[i], fake, hooks, rotation, http, stats, random.Random(i))
            for i in range(args.customers)
        ]
        m = await measure(run, stats, [u.run() for u in users], settle=lambda: drain(fake))

    extra = missing = 0
    for chat in {*stats.posted, *fake.arrivals}:
        got, want = len(fake.arrivals.get(chat, [])), stats.posted.get(chat, 0)
        extra += max(0, got - want)
        missing += max(0, want - got)
    window = m.window
    lat = sorted(stats.latencies)
    ack = sorted(stats.ack_latencies)
    sends = sum(1 for t in fake.all_arrivals if m.first.at <= t < m.last.at)
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
        ack_p50_ms=ms(ack, 50),
        ack_p95_ms=ms(ack, 95),
        ack_p99_ms=ms(ack, 99),
        dup_ack_p50_ms=ms(sorted(stats.dup_ack_latencies), 50),
        p50_ms=ms(lat, 50),
        p95_ms=ms(lat, 95),
        p99_ms=ms(lat, 99),
        max_ms=ms(lat, 100),
        duplicates=stats.duplicates,
        extra_replies=extra,
        missing_replies=missing,
        timeouts=stats.timeouts,
        errors=dict(stats.errors),
        unexpected=stats.unexpected,
        api_refused=fake.refused,
        usage=usage(run, m, stats.replied, loop_name),
    ), stats


def report(r: Result) -> str:
    u = r.usage
    lines = [
        f"platform={r.platform} db={r.db}{processes_text(r.processes)} customers={r.customers} "
        f"duration={r.duration:g}s  acks/s={r.acks_per_s:.1f} replies/s={r.replies_per_s:.1f}  "
        f"ack p50={r.ack_p50_ms:.0f}ms p99={r.ack_p99_ms:.0f}ms  "
        f"reply p50={r.p50_ms:.0f}ms p95={r.p95_ms:.0f}ms p99={r.p99_ms:.0f}ms "
        f"max={r.max_ms:.0f}ms  extra_replies={r.extra_replies}  timeouts={r.timeouts}  "
        f"server_peak_rss={u.server_peak_rss_mb:.0f}MB  "
        f"cpu/msg={u.server_cpu_ms_per_msg:.1f}ms",
        window_line(r.window_s),
        f"  webhooks             {r.updates} updates, {r.acks} acks (duplicates included) → "
        f"{r.acks_per_s:.1f} acks/s",
        f"  ack latency          p50 {r.ack_p50_ms:.1f} ms, p95 {r.ack_p95_ms:.1f} ms, "
        f"p99 {r.ack_p99_ms:.1f} ms (duplicate deliveries: p50 {r.dup_ack_p50_ms:.1f} ms)",
        f"  replies              {r.replies} answered within {REPLY_TIMEOUT:g}s → "
        f"{r.replies_per_s:.1f}/s; sendMessage calls at the platform {r.send_calls_per_s:.1f}/s",
        f"  reply latency        {latency_text(r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms)}  "
        "(POST sent → sendMessage received)",
        f"  duplicates           {r.duplicates} updates delivered twice → "
        f"{r.extra_replies} extra replies, {r.missing_replies} missing replies (whole run)",
        problems_line(
            r.timeouts,
            r.errors,
            r.unexpected,
            u.server_log_errors,
            f"API calls refused by the platform {r.api_refused}, ",
        ),
        *u.lines(r.window_s, r.processes, r.replies, "update", "load gen + fake"),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = bench_parser(
        "N messenger users through the webhooks and the outbox of Abonent.", duration=15.0
    )
    p.add_argument("--platform", choices=("telegram", "max"), default="telegram")
    return checked_args(p, argv)


async def main_async(args: argparse.Namespace, loop_name: str) -> int:
    fake = FakePlatform(args.platform)
    outcome = await run_guarded(args, lambda run: execute(run, fake, loop_name), fake.stop)
    if isinstance(outcome, int):
        return outcome
    result, stats = outcome
    print_outcome(report(result), stats, result, args.json)
    return 0


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args(argv), main_async)


if __name__ == "__main__":
    sys.exit(main())
