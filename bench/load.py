"""Load benchmark of the whole pipeline (issue 2): web-chat customers against real servers.

N simulated customers talk to ``abonent serve`` subprocesses over the client API
(docs/client-api.md) the way the site widget does: POST a message, receive the bot's reply on
the WebSocket. Each customer runs a realistic dialog in a closed loop (the next message
only after the reply to the previous one, no think time):

    balance → account number → readings → account number → yes → readings «a b c» → меню

The script makes its own world and removes it afterwards: a CSV of accounts and a TOML
config in a temp dir, a fresh SQLite file or PostgreSQL database, accounts loaded with
``abonent billing import``, then K servers on consecutive loopback ports.

Latency is measured from just before a customer's POST to the arrival on that customer's
WebSocket of the first non-customer message whose id is greater than the id the POST
returned (the reply may arrive before the POST's response; arrivals are time-stamped and
matched afterwards). The first ``WARMUP`` seconds are not measured.

    .venv/bin/python bench/load.py --db sqlite --customers 50 --duration 20
    .venv/bin/python bench/load.py --db postgres --customers 100 --redis own --processes 2
    .venv/bin/python bench/load.py --db sqlite --customers 32 --compare-echo

``--echo`` runs the same customers against ``bench/echo_server.py`` (the client API on
the same stack, in memory, every message echoed): the ceiling the framework and the load
generator leave. ``--compare-echo`` alternates product and echo runs and prints the ratio.

See bench/README.md for what each printed figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import math
import os
import random
import re
import resource
import shlex
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

import aiohttp

from abonent.billing.csv_import import HEADER

API = "/api/client/v1"
WARMUP = 2.0  # seconds at the start whose messages are not measured
REPLY_TIMEOUT = 5.0  # a reply later than this is a timeout
CATCH_UP = 15.0  # after a timeout, how long a customer waits for the late reply
HARD_STOP_GRACE = 60.0  # the whole run (setup included) is cut off at duration + this
CLEANUP_LIMIT = 30.0  # stopping servers, dropping the database
READINGS_DATE = "2026-10-25"
DEFAULT_PG_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
CLK_TCK = os.sysconf("SC_CLK_TCK")
ZONES = {"single": 1, "two_zone": 2, "three_zone": 3}

# --------------------------------------------------------------------------- the world


@dataclass
class BenchAccount:
    number: str
    plan: str
    readings: list[int]


_SURNAMES = ("Иванов", "Петров", "Сидоров", "Кузнецов", "Смирнов", "Попов", "Соколов", "Лебедев")
_NAMES = ("Иван", "Пётр", "Алексей", "Сергей", "Николай", "Андрей", "Павел", "Дмитрий")
_STREETS = ("ул. Ленина", "ул. Мира", "ул. Садовая", "пр. Победы", "ул. Лесная", "ул. Школьная")


def make_accounts(count: int, seed: int = 2026) -> list[BenchAccount]:
    """Half single-rate, 30 % two-zone, 20 % three-zone; 10-digit numbers."""
    rng = random.Random(seed)
    accounts = []
    for i in range(count):
        r = rng.random()
        plan = "single" if r < 0.5 else "two_zone" if r < 0.8 else "three_zone"
        readings = [rng.randint(1_000, 30_000) for _ in range(ZONES[plan])]
        accounts.append(BenchAccount(f"{7_000_000_000 + i}", plan, readings))
    return accounts


def write_accounts_csv(path: Path, accounts: list[BenchAccount], seed: int = 2026) -> None:
    """The supplier's export (docs/accounts-csv.md)."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(HEADER)
        for acc in accounts:
            holder = f"{rng.choice(_SURNAMES)} {rng.choice(_NAMES)} {rng.choice(_NAMES)}ович"
            address = (
                f"г. Энск, {rng.choice(_STREETS)}, д. {rng.randint(1, 99)}, "
                f"кв. {rng.randint(1, 200)}"
            )
            zones = [str(v) for v in acc.readings] + [""] * (3 - len(acc.readings))
            balance = f"{rng.choice((-1, 0, 1, 1, 1)) * rng.randint(0, 500_000) / 100:.2f}"
            phone = f"+79{rng.randint(0, 999_999_999):09d}" if rng.random() < 0.7 else ""
            out.writerow(
                [acc.number, holder, address, acc.plan, *zones, READINGS_DATE, balance, phone]
            )


def write_config(path: Path) -> None:
    """demo.toml (company, tariffs, links), readings accepted any day and any jump."""
    demo = (resources.files("abonent") / "demo" / "demo.toml").read_text(encoding="utf-8")
    without = re.sub(r"(?ms)^\[readings\]\n.*?(?=^\[|\Z)", "", demo)
    readings = "[readings]\nfirst_day = 1\nlast_day = 31\nmax_daily_kwh = 1000000\n"
    text = f"{without.rstrip()}\n\n{readings}"
    parsed = tomllib.loads(text)
    if parsed["readings"] != {"first_day": 1, "last_day": 31, "max_daily_kwh": 1000000}:
        raise RuntimeError("could not rewrite [readings] of demo.toml")
    path.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------- /proc


def proc_cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process, seconds; None when it is gone or unreadable."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine, all cores, since boot.

    Steal is time the hypervisor gave to other guests while this one wanted to run: on a
    shared VM it is capacity the benchmark did not have.
    """
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq) / CLK_TCK, steal / CLK_TCK


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def free_ports(count: int) -> int:
    """A base port such that base .. base+count-1 are free on loopback."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20_000, 60_000 - count)
        ok = True
        for port in range(base, base + count):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    raise RuntimeError("no free consecutive ports found")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (NaN when empty)."""
    if not sorted_values:
        return math.nan
    rank = max(1, math.ceil(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# --------------------------------------------------------------------------- servers


@dataclass
class Server:
    port: int
    proc: asyncio.subprocess.Process
    log: Path
    peak_rss_kb: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sample_rss(self) -> None:
        rss = proc_status_kb(self.pid, "VmRSS")
        if rss is not None:
            self.peak_rss_kb = max(self.peak_rss_kb, rss)


def server_env(config: Path, db_url: str, redis_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ABONENT_")}
    env.update(
        ABONENT_CONFIG=str(config),
        ABONENT_DATABASE_URL=db_url,
        ABONENT_LOG_LEVEL="WARNING",
    )
    if redis_url:
        env["ABONENT_REDIS_URL"] = redis_url
    return env


# How to run the ``abonent`` command; --abonent-cmd replaces it (another checkout's venv,
# or a wrapper that patches something for an A/B comparison).
ABONENT_CMD: list[str] = [sys.executable, "-m", "abonent"]


def abonent_command(*args: str) -> list[str]:
    return [*ABONENT_CMD, *args]


async def import_accounts(csv_path: Path, env: dict[str, str], log: Path) -> str:
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            *abonent_command("billing", "import", str(csv_path)),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=out,
            start_new_session=True,
        )
        try:
            stdout, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
        except TimeoutError:
            proc.kill()
            raise
    if proc.returncode != 0:
        raise RuntimeError(f"abonent billing import failed:\n{tail(log)}")
    return stdout.decode().strip()


def _open_log(path: Path) -> Any:
    return path.open("wb")


ECHO_SERVER = Path(__file__).with_name("echo_server.py")


async def start_server(port: int, env: dict[str, str], log: Path, *, echo: bool = False) -> Server:
    """``abonent serve`` on ``port``, or with ``echo`` the in-memory echo of its client API."""
    command = (
        [sys.executable, str(ECHO_SERVER), "--host", "127.0.0.1", "--port", str(port)]
        if echo
        else abonent_command("serve", "--host", "127.0.0.1", "--port", str(port))
    )
    out = _open_log(log)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            env=env,
            stdout=out,
            stderr=out,
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C reaches the bench only; it stops the servers
        )
    finally:
        out.close()
    return Server(port, proc, log)


async def wait_ready(server: Server, http: aiohttp.ClientSession, limit: float = 60) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if server.proc.returncode is not None:
            raise RuntimeError(f"server on :{server.port} exited:\n{tail(server.log)}")
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with http.get(server.url + "/readyz") as r:
                if r.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"server on :{server.port} not ready in {limit:.0f}s:\n{tail(server.log)}")


async def wait_model(server: Server, http: aiohttp.ClientSession, limit: float = 45) -> bool:
    """Wait for the server's consultant to switch from the keywords to the trained model
    (``/readyz`` says which): the background load holds the GIL for seconds, and
    measured meanwhile it would be the run's latency tail. False when it did not in time."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with contextlib.suppress(aiohttp.ClientError, TimeoutError, ValueError):
            async with http.get(server.url + "/readyz") as r:
                if r.status == 200 and (await r.json()).get("consultant") == "model":
                    return True
        await asyncio.sleep(0.2)
    return False


async def stop_server(server: Server) -> None:
    if server.proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        server.proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(server.proc.wait(), timeout=12)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            server.proc.kill()
        await server.proc.wait()


class Postgres:
    """A fresh database of its own, created and dropped over an AUTOCOMMIT connection."""

    def __init__(self, admin_url: str) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.ext.asyncio import create_async_engine
        from sqlalchemy.pool import NullPool

        url = make_url(admin_url)
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+asyncpg")
        self.name = f"abonent_bench_{os.getpid()}"
        self.url = url.set(database=self.name).render_as_string(hide_password=False)
        self.engine = create_async_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self.created = False

    async def _exec(self, sql: str, **params: Any) -> list[Any]:
        from sqlalchemy import text

        async with self.engine.connect() as conn:
            result = await conn.execute(text(sql), params)
            return list(result.scalars()) if result.returns_rows else []

    async def create(self) -> None:
        await self._exec(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        await self._exec(f'CREATE DATABASE "{self.name}"')
        self.created = True

    async def backend_pids(self) -> list[int]:
        rows = await self._exec("SELECT pid FROM pg_stat_activity WHERE datname = :d", d=self.name)
        return [int(p) for p in rows]

    async def drop(self) -> None:
        if self.created:
            await self._exec(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.created = False
        await self.engine.dispose()


# --------------------------------------------------------------------------- customers


@dataclass
class DialogStats:
    """What both benches count of their scripted dialogs; each adds its own figures."""

    measure_from: float = 0.0
    stop_at: float = 0.0
    # Reply latencies (s) of messages sent in the window, late ones (timeouts answered
    # within CATCH_UP) included.
    latencies: list[float] = field(default_factory=list)
    sent: int = 0  # messages accepted in the window
    replied: int = 0  # of those, answered within REPLY_TIMEOUT
    timeouts: int = 0  # whole run, warm-up included
    errors: Counter[str] = field(default_factory=Counter)  # whole run
    unexpected: int = 0  # first reply not what the dialog step expects
    unexpected_samples: list[str] = field(default_factory=list)

    def in_window(self, t: float) -> bool:
        return self.measure_from <= t < self.stop_at

    async def score(
        self,
        reply: tuple[float, str] | None,
        wait_late: Callable[[float], Awaitable[tuple[float, str] | None]],
        t0: float,
        measured: bool,
        said: str,
        expect: str,
    ) -> bool:
        """Count the reply (arrival, text) to what was ``said`` at ``t0``, or its absence
        within REPLY_TIMEOUT; False when the dialog broke. ``expect``: what the reply
        must contain, or alternatives separated by ``|``."""
        if reply is None:
            self.timeouts += 1
            # The bot answers in order: let it catch up with this message before the next
            # one, or its late reply would be taken for the reply to the next message.
            late = await wait_late(min(t0 + CATCH_UP, self.stop_at + REPLY_TIMEOUT))
            if late is not None and measured:
                self.latencies.append(late[0] - t0)  # the tail keeps the late ones
            return False
        at, text = reply
        if measured:
            self.replied += 1
            self.latencies.append(at - t0)
        if not any(option in text for option in expect.split("|")):
            self.unexpected += 1
            if len(self.unexpected_samples) < 3:
                self.unexpected_samples.append(f"{said} → {text[:160]!r} (expected {expect!r})")
            return False
        return True


@dataclass
class Stats(DialogStats):
    post_latencies: list[float] = field(default_factory=list)  # POST → 202, s
    bot_arrivals: list[float] = field(default_factory=list)  # arrival times, whole run
    total_sent: int = 0  # whole run


class Customer:
    """One web-chat visitor: a conversation, a WebSocket, and the scripted dialog."""

    def __init__(
        self,
        base_url: str,
        account: BenchAccount,
        http: aiohttp.ClientSession,
        stats: Stats,
        *,
        check_texts: bool = True,
    ) -> None:
        self.base = base_url
        # The echo says something else: its replies are not checked against the dialog.
        self.check_texts = check_texts
        self.account = account
        self.http = http
        self.stats = stats
        self.token = ""
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.reader: asyncio.Task[None] | None = None
        self.arrivals: list[tuple[int, float, str]] = []  # (id, arrival, text) of bot messages
        self.pos = 0
        self.arrived = asyncio.Event()
        self.closed = False

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def open(self) -> None:
        async with self.http.post(f"{self.base}{API}/conversations", json={}) as r:
            if r.status != 201:
                raise RuntimeError(f"POST /conversations: {r.status} {await r.text()}")
            self.token = (await r.json())["token"]
        ws_url = f"{self.base.replace('http', 'ws', 1)}{API}/ws?token={self.token}"
        self.ws = await self.http.ws_connect(ws_url, autoping=True, heartbeat=None)
        self.reader = asyncio.create_task(self._read())
        # The greeting may have been written before the socket opened: ask the store.
        async with self.http.get(
            f"{self.base}{API}/messages", params={"after": "0", "wait": "10"}, headers=self.headers
        ) as r:
            messages = (await r.json())["messages"] if r.status == 200 else []
        if not any(m["author"] != "customer" for m in messages):
            raise RuntimeError("no greeting")
        last = max(m["id"] for m in messages)
        # Drop greeting arrivals that came over the socket too, so they never match later.
        self.arrivals = [a for a in self.arrivals if a[0] > last]
        self.pos = 0

    async def _read(self) -> None:
        assert self.ws is not None
        try:
            async for msg in self.ws:
                if msg.type != aiohttp.WSMsgType.TEXT:
                    continue
                now = time.perf_counter()
                data = json.loads(msg.data)
                if data.get("author") != "customer":
                    self.arrivals.append((int(data["id"]), now, str(data.get("text", ""))))
                    self.stats.bot_arrivals.append(now)
                    self.arrived.set()
        except (aiohttp.ClientError, asyncio.CancelledError):
            pass
        finally:
            self.closed = True
            self.arrived.set()

    async def _wait_reply(self, message_id: int, deadline: float) -> tuple[float, str] | None:
        while True:
            for i in range(self.pos, len(self.arrivals)):
                mid, at, text = self.arrivals[i]
                if mid > message_id:
                    self.pos = i + 1
                    return at, text
            # Everything seen so far is older than this message, hence than any later one.
            self.pos = len(self.arrivals)
            remaining = deadline - time.perf_counter()
            if self.closed or remaining <= 0:
                return None
            self.arrived.clear()
            try:
                await asyncio.wait_for(self.arrived.wait(), remaining)
            except TimeoutError:
                return None

    async def send(self, body: dict[str, str], expect: str) -> bool:
        """One customer message and the bot's first reply; False when the dialog broke."""
        st = self.stats
        t0 = time.perf_counter()
        measured = st.in_window(t0)
        try:
            async with self.http.post(
                f"{self.base}{API}/messages", json=body, headers=self.headers
            ) as r:
                if r.status != 202:
                    st.errors[f"POST {r.status}"] += 1
                    await r.read()
                    return False
                message_id = int((await r.json())["id"])
        except (aiohttp.ClientError, TimeoutError) as exc:
            st.errors[type(exc).__name__] += 1
            return False
        t_posted = time.perf_counter()
        st.total_sent += 1
        if measured:
            st.sent += 1
            st.post_latencies.append(t_posted - t0)
        reply = await self._wait_reply(message_id, t0 + REPLY_TIMEOUT)
        if reply is None and self.closed:
            st.errors["websocket closed"] += 1
            return False
        return await st.score(
            reply,
            lambda deadline: self._wait_reply(message_id, deadline),
            t0,
            measured,
            str(body),
            expect,
        )

    def _next_readings(self) -> str:
        self.account.readings = [v + random.randint(1, 9) for v in self.account.readings]
        return " ".join(str(v) for v in self.account.readings)

    async def run(self) -> None:
        number = self.account.number
        while time.perf_counter() < self.stats.stop_at and not self.closed:
            script: list[tuple[dict[str, str], str]] = [
                ({"payload": "balance"}, "лицев"),
                ({"text": number}, f"Лицевой счёт {number}"),
                ({"payload": "readings"}, "лицев"),
                ({"text": number}, "Это ваш счёт?"),
                # A second submission in the period asks first whether to replace the
                # first one; new readings instead of an answer replace it.
                ({"payload": "yes"}, "Предыдущие показания|Заменить?"),
                ({"text": ""}, "Показания приняты|Показания заменены"),  # text set when sent
                ({"text": "меню"}, "Чем могу помочь"),
            ]
            for body, expect in script:
                if time.perf_counter() >= self.stats.stop_at or self.closed:
                    return
                if expect.startswith("Показания приняты"):
                    body = {"text": self._next_readings()}
                if not self.check_texts:
                    expect = ""  # any reply will do
                if not await self.send(body, expect):
                    # Off script (timeout, error, odd reply): start over from the menu.
                    if not self.closed and time.perf_counter() < self.stats.stop_at:
                        await self.send(
                            {"text": "меню"}, "Чем могу помочь" if self.check_texts else ""
                        )
                    break

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.reader


# --------------------------------------------------------------------------- the run


@dataclass
class Snapshot:
    at: float
    servers: dict[int, float | None]
    loadgen: float
    machine_busy: float
    machine_steal: float
    pg: dict[int, float | None]
    redis: float | None


async def redis_cpu(url: str | None) -> float | None:
    if not url:
        return None
    from redis import asyncio as aioredis

    client = aioredis.from_url(url)
    try:
        info = await client.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    except Exception:
        return None
    finally:
        await client.aclose()


async def snapshot(servers: list[Server], pg: Postgres | None, redis_url: str | None) -> Snapshot:
    pg_pids = await pg.backend_pids() if pg is not None else []
    busy, steal = machine_cpu()
    return Snapshot(
        at=time.perf_counter(),
        servers={s.pid: proc_cpu_seconds(s.pid) for s in servers},
        loadgen=self_cpu_seconds(),
        machine_busy=busy,
        machine_steal=steal,
        pg={pid: proc_cpu_seconds(pid) for pid in pg_pids},
        redis=await redis_cpu(redis_url),
    )


def _delta(a: dict[int, float | None], b: dict[int, float | None]) -> float:
    """CPU used between two snapshots by processes alive at the second (new ones: all of it)."""
    total = 0.0
    for pid, end in b.items():
        if end is None:
            continue
        start = a.get(pid)
        total += end - (start if start is not None else 0.0)
    return total


@dataclass
class Usage:
    """What the run cost in the measured window: memory, CPU by process, the machine."""

    server_peak_rss_mb: float  # max VmHWM over the servers
    server_sampled_rss_mb: float  # max VmRSS sampled during the run
    server_cpu_s: float
    server_cpu_ms_per_msg: float  # server CPU per answered message
    loadgen_cpu_s: float
    postgres_cpu_s: float | None
    redis_cpu_s: float | None
    machine_busy_s: float
    machine_steal_s: float
    machine_cores: int
    server_log_errors: int
    loadgen_loop: str

    def loadgen_cpu_ms(self, replies: int) -> float:
        return self.loadgen_cpu_s * 1000 / replies if replies else math.nan

    def lines(
        self, window_s: float, processes: int, replies: int, unit: str, loadgen: str
    ) -> list[str]:
        """The report's lines from «server memory» down; ``unit``: what an answered
        message is called, ``loadgen``: the label of this process's CPU."""
        window = window_s or 1.0
        cores = self.machine_cores

        def share(seconds: float | None) -> str:
            if seconds is None:
                return "n/a"
            return f"{seconds:.1f}s ({seconds / window:.0%} of a core)"

        def per_msg(seconds: float | None) -> str:
            if seconds is None or not replies:
                return ""
            return f", {seconds * 1000 / replies:.1f} ms per answered {unit}"

        others = (
            self.machine_busy_s
            - self.server_cpu_s
            - self.loadgen_cpu_s
            - (self.postgres_cpu_s or 0)
            - (self.redis_cpu_s or 0)
        )
        lines = [
            f"  server memory        peak RSS (VmHWM) {self.server_peak_rss_mb:.1f} MB, "
            f"max sampled VmRSS {self.server_sampled_rss_mb:.1f} MB"
            + (" (largest of the processes)" if processes > 1 else ""),
            f"  CPU in the window    machine busy {self.machine_busy_s:.1f}s of "
            f"{window * cores:.1f}s ({self.machine_busy_s / (window * cores):.0%} of {cores} "
            f"cores), stolen by the hypervisor {self.machine_steal_s:.1f}s "
            f"({self.machine_steal_s / (window * cores):.0%})",
            f"    server(s)          {share(self.server_cpu_s)}{per_msg(self.server_cpu_s)}",
            f"    {loadgen:<19}{share(self.loadgen_cpu_s)}{per_msg(self.loadgen_cpu_s)}  "
            f"[{self.loadgen_loop}]",
        ]
        if self.postgres_cpu_s is not None:
            lines.append(
                f"    postgres backends  {share(self.postgres_cpu_s)}{per_msg(self.postgres_cpu_s)}"
            )
        if self.redis_cpu_s is not None:
            lines.append(f"    redis-server       {share(self.redis_cpu_s)}")
        lines.append(f"    everything else    {share(max(others, 0.0))}")
        return lines


@dataclass
class Result:
    db: str
    customers: int
    processes: int
    duration: float
    window_s: float
    sent: int
    replies: int
    msg_per_s: float
    written_per_s: float
    bot_messages: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    post_p50_ms: float
    post_p99_ms: float
    timeouts: int
    errors: dict[str, int]
    unexpected: int
    usage: Usage  # flattened into the JSON line
    server: str = "abonent"  # abonent | echo (bench/echo_server.py)


def bench_parser(description: str, duration: float) -> argparse.ArgumentParser:
    """The options both benches take; each adds its own before ``checked_args``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    p.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="maintenance database; the bench creates and drops its own next to it",
    )
    p.add_argument("--customers", type=int, default=50)
    p.add_argument("--duration", type=float, default=duration, help="seconds of load (5..600)")
    p.add_argument("--port", type=int, default=0, help="first server port (default: a free one)")
    p.add_argument(
        "--redis",
        default=None,
        help="Redis URL for the servers' event bus, or 'own' to start a private "
        "redis-server on a free loopback port (no cross-talk with other "
        "Abonent servers on a shared Redis)",
    )
    p.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes; more than 1 needs --db postgres and --redis",
    )
    p.add_argument("--accounts", type=int, default=2000, help="accounts in the generated CSV")
    p.add_argument(
        "--abonent-cmd",
        default=None,
        help="command that runs abonent (default: this Python's -m abonent), "
        "e.g. '/other/checkout/.venv/bin/abonent' to compare builds",
    )
    p.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    return p


def checked_args(p: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = p.parse_args(argv)
    if not 5 <= args.duration <= 600:
        p.error("--duration must be between 5 and 600 seconds")
    if not 1 <= args.customers <= 5000:
        p.error("--customers must be between 1 and 5000")
    if not 1 <= args.processes <= 8:
        p.error("--processes must be between 1 and 8")
    if (
        args.processes > 1
        and (args.db != "postgres" or not args.redis)
        and not getattr(args, "echo", False)
    ):
        p.error("--processes > 1 needs --db postgres and --redis URL|own")
    args.accounts = max(args.accounts, args.customers)
    return args


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = bench_parser(
        "N concurrent web-chat customers through the whole Abonent pipeline.", duration=20.0
    )
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run py-spy (--gil) on the first server during the window; write "
        "collapsed stacks to this file and print the hot spots",
    )
    p.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: sample whatever the thread is doing, not only while it holds "
        "the GIL (so time inside SQLite, which releases it, is attributed to its caller)",
    )
    p.add_argument(
        "--echo",
        action="store_true",
        help="run against bench/echo_server.py (the client API in memory, every message "
        "echoed) instead of abonent serve: the ceiling of the stack and the load generator",
    )
    p.add_argument(
        "--compare-echo",
        action="store_true",
        help="run abonent and the echo alternately (--rounds each) with the same customers "
        "and duration, and print the ratio of their msg/s",
    )
    p.add_argument("--rounds", type=int, default=2, help="rounds of --compare-echo (1..10)")
    args = checked_args(p, argv)
    if not 1 <= args.rounds <= 10:
        p.error("--rounds must be between 1 and 10")
    if args.compare_echo and args.echo:
        p.error("--compare-echo runs both: leave out --echo")
    if args.compare_echo and args.profile is not None:
        p.error("--profile profiles one run: leave out --compare-echo")
    return args


def install_fast_loop() -> str:
    try:
        import uvloop
    except ImportError:
        return "asyncio"
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return "uvloop"


class Run:
    """Everything the run creates, so that cleanup can find it whatever failed."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work = Path(tempfile.mkdtemp(prefix="abonent-bench-"))
        self.servers: list[Server] = []
        self.pg: Postgres | None = None
        self.db_url = ""
        self.redis_url: str | None = None
        self.profiler: asyncio.subprocess.Process | None = None
        self.redis: asyncio.subprocess.Process | None = None

    async def start_redis(self) -> str:
        """A private redis-server (no persistence) on a free loopback port."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("--redis own needs redis-server on PATH")
        port = free_ports(1)
        self.redis = await asyncio.create_subprocess_exec(
            binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.work),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"redis://127.0.0.1:{port}/0"
        from redis import asyncio as aioredis

        deadline = time.monotonic() + 10
        while True:
            client = aioredis.from_url(url)
            try:
                await client.ping()
                return url
            except Exception:
                if time.monotonic() > deadline or self.redis.returncode is not None:
                    raise RuntimeError("private redis-server did not start") from None
                await asyncio.sleep(0.1)
            finally:
                await client.aclose()

    async def cleanup(self) -> None:
        if self.profiler is not None and self.profiler.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.profiler.kill()
            await self.profiler.wait()
        await asyncio.gather(*(stop_server(s) for s in self.servers), return_exceptions=True)
        if self.redis is not None and self.redis.returncode is None:
            self.redis.terminate()
            try:
                await asyncio.wait_for(self.redis.wait(), 5)
            except TimeoutError:
                self.redis.kill()
                await self.redis.wait()
        if self.pg is not None:
            try:
                await self.pg.drop()
            except Exception as exc:
                print(f"warning: could not drop database {self.pg.name}: {exc}", file=sys.stderr)
        shutil.rmtree(self.work, ignore_errors=True)


def log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


async def start_world(run: Run, extra_config: str = "") -> list[BenchAccount]:
    """Accounts CSV and config (plus ``extra_config``) in the work dir, a fresh database,
    redis if asked, the accounts imported, the servers started (not yet ready)."""
    args = run.args
    work = run.work
    accounts = make_accounts(args.accounts)
    csv_path = work / "accounts.csv"
    write_accounts_csv(csv_path, accounts)
    config = work / "abonent.toml"
    write_config(config)
    if extra_config:
        with config.open("a", encoding="utf-8") as f:
            f.write(extra_config)
    base_port = args.port or free_ports(args.processes)

    if getattr(args, "echo", False):
        # No database, no accounts to import: the echo keeps everything in memory.
        env = {k: v for k, v in os.environ.items() if not k.startswith("ABONENT_")}
        for i in range(args.processes):
            run.servers.append(
                await start_server(base_port + i, env, work / f"server{i}.log", echo=True)
            )
        return accounts

    if args.db == "postgres":
        run.pg = Postgres(args.pg_url)
        await run.pg.create()
        run.db_url = run.pg.url
    else:
        run.db_url = f"sqlite+aiosqlite:///{work / 'bench.db'}"
    run.redis_url = args.redis
    if run.redis_url == "own":
        run.redis_url = await run.start_redis()
    env = server_env(config, run.db_url, run.redis_url)
    log(await import_accounts(csv_path, env, work / "import.log"))

    for i in range(args.processes):
        run.servers.append(await start_server(base_port + i, env, work / f"server{i}.log"))
    return accounts


def bench_session() -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
    return aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))


async def servers_ready(run: Run, http: aiohttp.ClientSession) -> str:
    """Wait for every server's /readyz; say which are up on what."""
    await asyncio.gather(*(wait_ready(s, http) for s in run.servers))
    where = run.db_url.split(":", 1)[0] if run.db_url else "memory (echo)"
    return (
        f"{len(run.servers)} server(s) ready on {where} "
        f"(pids {', '.join(str(s.pid) for s in run.servers)})"
    )


@dataclass
class Measurement:
    first: Snapshot  # at the start of the window
    last: Snapshot  # at its end
    hwm: list[int]  # VmHWM of each server, kB, after the run

    @property
    def window(self) -> float:
        return self.last.at - self.first.at


async def measure(
    run: Run,
    stats: DialogStats,
    dialogs: list[Coroutine[Any, Any, None]],
    settle: Callable[[], Awaitable[None]] | None = None,
    profile: Path | None = None,
) -> Measurement:
    """Run the dialogs for the duration, snapshot the window after WARMUP, then wait for
    them to end (and ``settle``); the dialogs are cancelled whatever happens."""
    start = time.perf_counter()
    stats.measure_from = start + WARMUP
    stats.stop_at = start + run.args.duration

    async def sample_rss() -> None:
        while True:
            for s in run.servers:
                s.sample_rss()
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample_rss())
    loops = [asyncio.create_task(d) for d in dialogs]
    try:
        await asyncio.sleep(max(0.0, stats.measure_from - time.perf_counter()))
        first = await snapshot(run.servers, run.pg, run.redis_url)
        if profile is not None:
            run.profiler = await start_profiler(
                run.servers[0].pid,
                profile,
                stats.stop_at - time.perf_counter(),
                gil=not run.args.profile_native,
            )
        await asyncio.sleep(max(0.0, stats.stop_at - time.perf_counter()))
        last = await snapshot(run.servers, run.pg, run.redis_url)

        await asyncio.wait_for(asyncio.gather(*loops), CATCH_UP + REPLY_TIMEOUT * 2 + 5)
        if settle is not None:
            await settle()
        for s in run.servers:
            s.sample_rss()
        hwm = [proc_status_kb(s.pid, "VmHWM") or 0 for s in run.servers]
        if run.profiler is not None:
            await asyncio.wait_for(run.profiler.wait(), 30)
    finally:
        sampler.cancel()
        for task in loops:
            task.cancel()
        await asyncio.gather(*loops, sampler, return_exceptions=True)
    return Measurement(first, last, hwm)


def server_log_errors(run: Run) -> int:
    """Tracebacks and ERROR lines in the servers' logs; the tail of each such log."""
    total = 0
    for s in run.servers:
        text = s.log.read_text(errors="replace") if s.log.exists() else ""
        errors_here = text.count("Traceback") + len(re.findall(r"\bERROR\b", text))
        if errors_here:
            log(f"server :{s.port} log tail:\n{tail(s.log, 20)}")
        total += errors_here
    return total


def usage(run: Run, m: Measurement, replied: int, loop_name: str) -> Usage:
    first, last = m.first, m.last
    server_cpu = _delta(first.servers, last.servers)
    return Usage(
        server_peak_rss_mb=round(max(m.hwm) / 1024, 1),
        server_sampled_rss_mb=round(max(s.peak_rss_kb for s in run.servers) / 1024, 1),
        server_cpu_s=round(server_cpu, 2),
        server_cpu_ms_per_msg=round(server_cpu * 1000 / replied, 2) if replied else math.nan,
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
        server_log_errors=server_log_errors(run),
        loadgen_loop=loop_name,
    )


def ms(sorted_values: list[float], p: float) -> float:
    """Percentile ``p`` of ascending seconds, in ms (p=100: the largest; NaN when empty)."""
    return round(percentile(sorted_values, p) * 1000.0, 1)


async def execute(run: Run, loop_name: str) -> tuple[Result, Stats]:
    args = run.args
    accounts = await start_world(run)
    async with bench_session() as http:
        log(await servers_ready(run, http))
        loaded = await asyncio.gather(*(wait_model(s, http) for s in run.servers))
        if not all(loaded):
            log("the consultant's model is still loading: the figures include its load")
        stats = Stats()
        echo = bool(getattr(args, "echo", False))
        customers = [
            Customer(
                run.servers[i % len(run.servers)].url,
                accounts[i],
                http,
                stats,
                check_texts=not echo,
            )
            for i in range(args.customers)
        ]
        gate = asyncio.Semaphore(20)

        async def open_one(c: Customer) -> None:
            async with gate:
                await c.open()

        await asyncio.gather(*(open_one(c) for c in customers))
        log(
            f"{len(customers)} customers greeted; load for {args.duration:g}s "
            f"(first {WARMUP:g}s not measured)"
        )
        try:
            m = await measure(run, stats, [c.run() for c in customers], profile=args.profile)
        finally:
            await asyncio.gather(*(c.close() for c in customers))

    window = m.window
    lat = sorted(stats.latencies)
    post = sorted(stats.post_latencies)
    bots = sum(1 for t in stats.bot_arrivals if stats.in_window(t))
    return Result(
        db=args.db,
        customers=args.customers,
        processes=args.processes,
        duration=args.duration,
        window_s=round(window, 3),
        sent=stats.sent,
        replies=stats.replied,
        msg_per_s=round(stats.replied / window, 1),
        written_per_s=round((stats.sent + bots) / window, 1),
        bot_messages=bots,
        p50_ms=ms(lat, 50),
        p95_ms=ms(lat, 95),
        p99_ms=ms(lat, 99),
        max_ms=ms(lat, 100),
        post_p50_ms=ms(post, 50),
        post_p99_ms=ms(post, 99),
        timeouts=stats.timeouts,
        errors=dict(stats.errors),
        unexpected=stats.unexpected,
        usage=usage(run, m, stats.replied, loop_name),
        server="echo" if echo else "abonent",
    ), stats


def find_py_spy() -> str:
    found = shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))
    if found is None:
        raise RuntimeError("--profile needs py-spy (.venv/bin/pip install py-spy)")
    return found


async def start_profiler(
    pid: int, out: Path, seconds: float, *, gil: bool = True
) -> asyncio.subprocess.Process:
    py_spy = find_py_spy()
    return await asyncio.create_subprocess_exec(
        py_spy,
        "record",
        *(["--gil"] if gil else []),
        "--format",
        "raw",
        "--rate",
        "100",
        "--pid",
        str(pid),
        "--duration",
        str(max(1, int(seconds))),
        "--output",
        str(out),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )


def _package(path: str) -> str:
    """What a frame's file belongs to: its top-level package or module ("sqlalchemy")."""
    parts = path.split("/")
    if "site-packages" in parts:
        return parts[parts.index("site-packages") + 1].removesuffix(".py")
    if path.startswith("/"):
        return parts[-1].removesuffix(".py")
    return parts[0].removesuffix(".py") or "?"


def _in_abonent(path: str) -> str | None:
    if path.startswith("abonent/"):
        return path.removeprefix("abonent/")
    if "/abonent/" in path:
        return path.split("/abonent/")[-1]
    return None


def hot_spots(collapsed: Path, top: int = 15) -> str:
    """Where the server's Python time went, from py-spy's collapsed stacks."""
    own: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    ours: Counter[str] = Counter()
    total = 0
    frame_re = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
    for line in collapsed.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames: list[tuple[str, str]] = []
        for frame in stack.split(";"):
            m = frame_re.match(frame)
            frames.append((m.group(1), m.group(2)) if m else (frame, ""))
        if not frames:
            continue
        func, path = frames[-1]
        own[f"{func} ({'/'.join(path.split('/')[-2:])})"] += count
        by_package[_package(path)] += count
        for name in {f"{f} ({_in_abonent(p)})" for f, p in frames if _in_abonent(p)}:
            ours[name] += count
    if not total:
        return "no samples"
    lines = [f"{total} samples (100/s, of the thread holding the GIL)", "  own time by package:"]
    lines += [f"    {n / total:6.1%}  {name}" for name, n in by_package.most_common(12)]
    lines.append("  own time by function:")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    lines.append("  inclusive, abonent's own functions (with everything they call):")
    lines += [f"    {n / total:6.1%}  {name}" for name, n in ours.most_common(top + 5)]
    return "\n".join(lines)


def window_line(window_s: float) -> str:
    return f"  measured window      {window_s:.1f}s (after {WARMUP:g}s warm-up)"


def latency_text(p50: float, p95: float, p99: float, most: float) -> str:
    return f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms, max {most:.1f} ms"


def problems_line(
    timeouts: int, errors: dict[str, int], unexpected: int, log_errors: int, also: str = ""
) -> str:
    """``also``: the bench's own problems, «name count, » each."""
    listed = ", ".join(f"{k}: {v}" for k, v in errors.items()) or "0"
    return (
        f"  problems             timeouts (>{REPLY_TIMEOUT:g}s) {timeouts}, errors {listed}, "
        f"off-script replies {unexpected}, {also}server log errors {log_errors}"
    )


def processes_text(processes: int) -> str:
    return f" processes={processes}" if processes > 1 else ""


def report(r: Result) -> str:
    u = r.usage
    lines = [
        f"{'server=echo' if r.server == 'echo' else f'db={r.db}'}"
        f"{processes_text(r.processes)} customers={r.customers} "
        f"duration={r.duration:g}s  "
        f"sent={r.sent}  replies={r.replies}  msg/s={r.msg_per_s:.1f}  "
        f"p50={r.p50_ms:.0f}ms p95={r.p95_ms:.0f}ms p99={r.p99_ms:.0f}ms max={r.max_ms:.0f}ms  "
        f"timeouts={r.timeouts}  server_peak_rss={u.server_peak_rss_mb:.0f}MB  "
        f"cpu: server={u.server_cpu_s:.1f}s loadgen={u.loadgen_cpu_s:.1f}s",
        window_line(r.window_s),
        f"  customer messages    {r.sent} sent, {r.replies} answered → {r.msg_per_s:.1f}/s",
        f"  messages written     {r.sent} customer + {r.bot_messages} bot → "
        f"{r.written_per_s:.1f}/s",
        f"  reply latency        {latency_text(r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms)}",
        f"  POST → 202           p50 {r.post_p50_ms:.1f} ms, p99 {r.post_p99_ms:.1f} ms",
        problems_line(r.timeouts, r.errors, r.unexpected, u.server_log_errors),
        *u.lines(r.window_s, r.processes, r.replies, "message", "load generator"),
    ]
    return "\n".join(lines)


def arm_watchdog(run: Run, seconds: float) -> threading.Timer:
    """Last resort if cleanup itself hangs: kill the servers and leave."""

    def fire() -> None:
        print(f"[bench] hard stop after {seconds:.0f}s", file=sys.stderr, flush=True)
        pids = [s.pid for s in run.servers] + ([run.redis.pid] if run.redis else [])
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(run.work, ignore_errors=True)
        os._exit(3)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    return timer


def cancel_on_signals(task: asyncio.Task[Any]) -> None:
    """Ctrl-C or SIGTERM: cancel the run once, so that the cleanup still happens."""
    loop = asyncio.get_running_loop()
    received: list[int] = []

    def handler(signum: int) -> None:
        if received:
            log("cleaning up, please wait")
            return
        received.append(signum)
        log(f"{signal.Signals(signum).name}: stopping")
        task.cancel()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, handler, signum)


T = TypeVar("T")


async def run_guarded(
    args: argparse.Namespace,
    execute: Callable[[Run], Awaitable[T]],
    teardown: Callable[[], Awaitable[None]] | None = None,
) -> T | int:
    """``execute`` a Run under the hard stop, the watchdog and Ctrl-C, then clean up
    whatever happened (and ``teardown``); an int is the exit code of a run cut short."""
    run = Run(args)
    watchdog = arm_watchdog(run, args.duration + HARD_STOP_GRACE + CLEANUP_LIMIT)
    current = asyncio.current_task()
    assert current is not None
    cancel_on_signals(current)
    try:
        try:
            async with asyncio.timeout(args.duration + HARD_STOP_GRACE):
                return await execute(run)
        except TimeoutError:
            log(f"hard stop: the run took longer than duration + {HARD_STOP_GRACE:g}s")
            return 2
        except asyncio.CancelledError:
            log("interrupted")
            return 130
        finally:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(run.cleanup()), CLEANUP_LIMIT)
            if teardown is not None:
                await teardown()
    finally:
        watchdog.cancel()


def print_outcome(
    report_text: str, stats: DialogStats, result: Any, as_json: bool, more: str = ""
) -> None:
    """The report, the off-script samples, ``more``, and with --json the figures as one
    line (the ``usage`` fields flattened into it)."""
    print(report_text, flush=True)
    for sample in stats.unexpected_samples:
        print(f"  off-script: {sample}")
    if more:
        print(more)
    if as_json:
        figures = asdict(result)
        figures.update(figures.pop("usage"))
        print(json.dumps(figures, ensure_ascii=False))


def bench_main(
    args: argparse.Namespace, main_async: Callable[[argparse.Namespace, str], Awaitable[int]]
) -> int:
    if args.abonent_cmd:
        ABONENT_CMD[:] = shlex.split(args.abonent_cmd)
    loop_name = install_fast_loop()
    try:
        return asyncio.run(main_async(args, loop_name))
    except KeyboardInterrupt:
        return 130


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def comparison(results: list[Result]) -> str:
    """Each run's figures, the medians by server, and product msg/s ÷ echo msg/s."""
    lines = ["abonent vs echo (runs in the order made):"]
    for r in results:
        u = r.usage
        lines.append(
            f"  {r.server:<8} msg/s {r.msg_per_s:7.1f}  p50 {r.p50_ms:6.1f} ms  "
            f"p95 {r.p95_ms:6.1f} ms  p99 {r.p99_ms:6.1f} ms  server CPU "
            f"{u.server_cpu_ms_per_msg:5.2f} ms/msg  loadgen {u.loadgen_cpu_ms(r.replies):5.2f} "
            f"ms/msg  machine busy {u.machine_busy_s:.1f}s  timeouts {r.timeouts}  "
            f"off-script {r.unexpected}"
        )
    medians: dict[str, float] = {}
    for name in ("abonent", "echo"):
        mine = [r for r in results if r.server == name]
        if not mine:
            continue
        medians[name] = _median([r.msg_per_s for r in mine])
        lines.append(
            f"  median {name:<8} msg/s {medians[name]:.1f}, "
            f"p99 {_median([r.p99_ms for r in mine]):.1f} ms, server CPU "
            f"{_median([r.usage.server_cpu_ms_per_msg for r in mine]):.2f} ms/msg "
            f"({len(mine)} runs)"
        )
    if medians.get("echo"):
        ratio = medians.get("abonent", math.nan) / medians["echo"]
        lines.append(f"  ratio abonent ÷ echo msg/s: {ratio:.2f}")
    return "\n".join(lines)


async def compare_echo(args: argparse.Namespace, loop_name: str) -> int:
    """Product and echo alternately, ``--rounds`` each, the same customers and duration."""
    results: list[Result] = []
    for round_no in range(args.rounds):
        for echo in (False, True):
            mode = argparse.Namespace(**{**vars(args), "echo": echo})
            log(f"round {round_no + 1}/{args.rounds}: {'echo' if echo else 'abonent'}")
            outcome = await run_guarded(mode, lambda run: execute(run, loop_name))
            if isinstance(outcome, int):
                return outcome
            result, stats = outcome
            print_outcome(report(result), stats, result, args.json)
            results.append(result)
    print(comparison(results), flush=True)
    return 0


async def main_async(args: argparse.Namespace, loop_name: str) -> int:
    if args.compare_echo:
        return await compare_echo(args, loop_name)
    outcome = await run_guarded(args, lambda run: execute(run, loop_name))
    if isinstance(outcome, int):
        return outcome
    result, stats = outcome
    profile = ""
    if args.profile is not None and args.profile.exists():
        profile = f"server profile ({args.profile}):\n{hot_spots(args.profile)}"
    print_outcome(report(result), stats, result, args.json, profile)
    return 0


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args(argv), main_async)


if __name__ == "__main__":
    sys.exit(main())
