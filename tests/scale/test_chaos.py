"""Chaos test of the scale-out mode (issue 11): Telegram webhooks spread over two server
processes and retried, with and without one of them killed midway.

The short version of bench/chaos.py (whose README section defines the figures): users
send their messages one after the other without waiting for the bot, each update POSTed
to the next process of a rotation and, when it is not acknowledged (an error status, a
refused or cut connection), delivered again to the other process after a short pause,
as Telegram does. Then the database and the fake Telegram's record are compared:
nothing acknowledged is lost, every chat's replies arrive in the order they were
written and answer the customer's messages in order, and nothing is sent twice (after
a SIGKILL: at most a few), every chat complete within 30 s of its last acknowledged
message.

Both tests share one pair of processes (their start is most of the run time); each
drives chats of its own, and only those are counted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy import text as sql
from sqlalchemy.ext.asyncio import create_async_engine

from abonent.core import events
from abonent.db.models import Base, ChannelIdentity, EventRecord, Message, OutboxItem
from abonent.db.session import Database
from conftest import require_postgres, require_redis
from fakes import telegram as telegram_api
from fakes.telegram import FakeTelegram
from support import ServeProcesses, serve_env

pytestmark = pytest.mark.services

USERS = 60
MESSAGES = 4
RAMP = 4.0  # users start spread over this many seconds
THINK = 0.3  # pause between a user's messages: 0 .. THINK s
RETRY_PAUSE = 0.2
RESTART_AFTER = 1.0
MAX_LAG = 30.0
DUPLICATES_AFTER_KILL = 5
CONFIG = """
[company]
name = "ЭнергоСбыт Тест"
working_hours = {{ "mon-sun" = "00:00-24:00" }}
[readings]
first_day = 1
last_day = 31
[operators]
api_token = "t"

[[channels]]
id = "tg"
type = "telegram"
token = "{token}"
secret = "{secret}"
api_base = "{api}"
"""
HEADERS = {"X-Telegram-Bot-Api-Secret-Token": telegram_api.SECRET}


@dataclass
class World:
    url: str
    env: dict[str, str]
    servers: ServeProcesses
    fake: FakeTelegram


async def _empty(url: str) -> None:
    """The session's database without rows, as ``fresh_database_url`` leaves it (that
    fixture is per test; these processes serve both tests)."""
    engine = create_async_engine(url)
    names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture(scope="module")
def world(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    require_postgres()
    redis_url = require_redis()
    asyncio.run(_empty(database_url))
    folder = tmp_path_factory.mktemp("chaos")
    fake = FakeTelegram()
    fake.start()
    config = CONFIG.format(token=telegram_api.TOKEN, secret=telegram_api.SECRET, api=fake.url)
    env = serve_env(database_url, redis_url, config, folder, ABONENT_LOG_LEVEL="WARNING")
    servers = ServeProcesses(2, env, folder)
    try:
        yield World(database_url, env, servers.wait_ready(), fake)
    finally:
        servers.stop()
        fake.stop()


# --------------------------------------------------------------------------- the drive


@dataclass
class Chat:
    id: int
    texts: list[str]
    acked: list[str] = field(default_factory=list)  # external ids of acknowledged updates
    last_ack: float | None = None


class Platform:
    """Telegram's side of the webhook behind a load balancer: round-robin, and every
    update delivered again to the other process until one acknowledges it."""

    def __init__(self, world: World, http: httpx.AsyncClient) -> None:
        self.fake = world.fake
        self.hooks = [f"{url}/webhooks/tg" for url in world.servers.urls]
        self.http = http
        self.rotation = itertools.count()
        self.failed: Counter[str] = Counter()  # deliveries not acknowledged, by kind
        self.acked = 0
        self.third_acked = asyncio.Event()

    async def deliver(self, chat: Chat, text: str) -> None:
        update = self.fake.text_update(text, chat_id=chat.id)
        body = json.dumps(update, ensure_ascii=False).encode()
        external_id = f"m:{chat.id}:{update['message']['message_id']}"
        index = next(self.rotation) % len(self.hooks)
        deadline = time.monotonic() + 60
        while True:
            try:
                r = await self.http.post(self.hooks[index], content=body, headers=HEADERS)
                if r.is_success:
                    chat.acked.append(external_id)
                    chat.last_ack = time.monotonic()
                    self.acked += 1
                    if self.acked * 3 >= USERS * MESSAGES:
                        self.third_acked.set()
                    return
                self.failed[f"HTTP {r.status_code}"] += 1
            except httpx.HTTPError as exc:
                self.failed[type(exc).__name__] += 1
            assert time.monotonic() < deadline, f"{external_id} never acknowledged: {self.failed}"
            index = (index + 1) % len(self.hooks)
            await asyncio.sleep(RETRY_PAUSE)

    async def user(self, chat: Chat, delay: float, rng: random.Random) -> None:
        await asyncio.sleep(delay)
        for n, text in enumerate(chat.texts):
            if n:
                await asyncio.sleep(rng.uniform(0, THINK))
            await self.deliver(chat, text)

    async def drive(self, chats: list[Chat]) -> None:
        await asyncio.gather(
            *(
                self.user(chat, i * RAMP / len(chats), random.Random(i))
                for i, chat in enumerate(chats)
            )
        )


def make_chats(first: int) -> list[Chat]:
    def texts(i: int) -> list[str]:
        steps = ["Здравствуйте", "баланс", f"{7_100_000_000 + i}", "меню"]
        return [steps[n % len(steps)] for n in range(MESSAGES)]

    return [Chat(first + i, texts(i)) for i in range(USERS)]


# --------------------------------------------------------------------------- the record


@dataclass
class Record:
    """One chat after the run: the database's messages and what the fake received."""

    customer: list[tuple[int, str | None, bool]]  # (id, external id, handled)
    replies: list[tuple[int, str, int | None, int | None]]  # (id, text, reply_to, turn tx)
    sent: list[tuple[float, str]]  # (arrival, text)


async def _open_sends(db: Database, keys: list[str]) -> tuple[int, int, int]:
    """(customer messages stored, unhandled, outbox rows pending or sending) of these chats."""
    async with db.read() as conn:
        of_chats = Message.identity_id.in_(
            select(ChannelIdentity.id).where(ChannelIdentity.external_id.in_(keys))
        )
        customer = (Message.author == "customer") & of_chats
        stored = await conn.scalar(select(func.count()).select_from(Message).where(customer))
        unhandled = await conn.scalar(
            select(func.count()).select_from(Message).where(customer, Message.handled.is_(False))
        )
        sending = await conn.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .join(Message, Message.id == OutboxItem.message_id)
            .where(of_chats, OutboxItem.status.in_(("pending", "sending")))
        )
    return int(stored or 0), int(unhandled or 0), int(sending or 0)


def _sends(fake: FakeTelegram) -> dict[str, list[tuple[float, str]]]:
    """The fake's accepted ``sendMessage`` calls per chat, with their arrival times."""
    calls = [(r.at, r.json()) for r in fake.calls("/sendMessage")]
    by_chat: dict[str, list[tuple[float, str]]] = {}
    for at, body in calls:
        by_chat.setdefault(str(body["chat_id"]), []).append((at, body["text"]))
    accepted = [(str(s.chat_id), s.text) for s in fake.sent]
    # Nothing is refused here (no faults): every call is one the customer saw.
    assert [(str(b["chat_id"]), b["text"]) for _, b in calls] == accepted
    return by_chat


async def settle_and_read(
    world: World, chats: list[Chat], not_before: float
) -> tuple[dict[str, Record], bool]:
    """Wait until these chats are done (all stored and handled, nothing in the outbox,
    the fake quiet) or MAX_LAG s have passed since ``not_before``; then read them."""
    keys = [str(c.id) for c in chats]
    acked = sum(len(c.acked) for c in chats)
    db = Database(world.url)
    try:
        deadline = not_before + MAX_LAG
        while True:
            stored, unhandled, sending = await _open_sends(db, keys)
            arrivals = [r.at for r in world.fake.calls("/sendMessage")]
            quiet = not arrivals or time.monotonic() - arrivals[-1] > 1.5
            settled = stored >= acked and not unhandled and not sending and quiet
            if settled or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
        async with db.read() as conn:
            rows = (
                await conn.execute(
                    select(
                        ChannelIdentity.external_id,
                        Message.id,
                        Message.author,
                        Message.text,
                        Message.external_id,
                        Message.handled,
                    )
                    .join(ChannelIdentity, ChannelIdentity.id == Message.identity_id)
                    .where(ChannelIdentity.external_id.in_(keys))
                    .order_by(Message.id)
                )
            ).all()
            turns = {
                int(data["message_id"]): (data.get("reply_to"), int(tx))
                for tx, data in await conn.execute(
                    select(EventRecord.tx, EventRecord.data).where(
                        EventRecord.type == events.MESSAGE_SENT
                    )
                )
            }
    finally:
        await db.dispose()
    sent = _sends(world.fake)
    records = {key: Record([], [], sent.get(key, [])) for key in keys}
    for chat, mid, author, said, external_id, handled in rows:
        if author == "customer":
            records[chat].customer.append((mid, external_id, bool(handled)))
        else:
            reply_to, tx = turns.get(mid, (None, None))
            records[chat].replies.append((mid, said, reply_to, tx))
    return records, settled


# --------------------------------------------------------------------------- the figures
# The same figures as bench/chaos.py (check_delivery, check_written, chat_figures).


@dataclass
class Figures:
    acked: int = 0
    stored: int = 0
    answered: int = 0
    lost: int = 0
    undelivered: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    incomplete: int = 0  # chats whose replies never all reached the platform
    over_lag: int = 0
    lag_max: float = 0.0
    problems: list[str] = field(default_factory=list)

    def report(self, settled: bool, failed: Counter[str], kill: str = "") -> str:
        head = (
            f"{kill}acked {self.acked}, stored {self.stored}, answered {self.answered}, "
            f"lost {self.lost}, undelivered {self.undelivered}, duplicated {self.duplicated}, "
            f"chats out of order {self.out_of_order}, never complete {self.incomplete}, "
            f"over {MAX_LAG:g}s {self.over_lag}, max last-reply lag {self.lag_max:.1f}s, "
            f"settled {settled}, failed deliveries {dict(failed)}"
        )
        return "\n".join([head, *self.problems[:25]])


def align(written: list[str], sent: list[tuple[float, str]]) -> tuple[int, int, bool, float | None]:
    """bench/chaos.py's check_delivery: (repeated, undelivered, in order, complete at).
    Each send, in arrival order, is the next written message not received yet; else a
    text received already (a repeat); else a later written one (out of order); else one
    never written (a repeat)."""
    received = [False] * len(written)
    delivered: Counter[str] = Counter()
    position = count = repeated = 0
    in_order, complete_at = True, None
    for at, said in sent:
        while position < len(written) and received[position]:
            position += 1
        if position < len(written) and written[position] == said:
            index = position
        elif delivered[said]:
            repeated += 1
            continue
        else:
            later = [
                i for i in range(position, len(written)) if written[i] == said and not received[i]
            ]
            if not later:
                repeated += 1
                continue
            index, in_order = later[0], False
        received[index] = True
        delivered[said] += 1
        count += 1
        if count == len(written):
            complete_at = at
    return repeated, len(written) - count, in_order, complete_at


def check(chats: list[Chat], records: dict[str, Record], zero: float) -> Figures:
    """The figures of these chats; times in the problems are seconds since ``zero``."""
    f = Figures()
    for chat in chats:
        rec = records[str(chat.id)]
        stored = {external for _, external, _ in rec.customer}
        last_reply = max((mid for mid, *_ in rec.replies), default=0)
        answered = [mid for mid, _, handled in rec.customer if handled and last_reply > mid]
        unstored = [e for e in chat.acked if e not in stored]
        unanswered = [mid for mid, *_ in rec.customer if mid not in answered]
        f.acked += len(chat.acked)
        f.stored += len(rec.customer)
        f.answered += len(answered)
        f.lost += len(unstored) + len(unanswered)
        written = [said for _, said, _, _ in rec.replies]
        repeated, undelivered, sent_in_order, complete_at = align(written, rec.sent)
        # In the database: replies answer the customer's messages in order, one turn each.
        answering = [(to, tx) for _, _, to, tx in rec.replies if to is not None]
        written_in_order = [to for to, _ in answering] == sorted(to for to, _ in answering)
        turns: dict[int, int | None] = {}
        again = sum(1 for to, tx in answering if turns.setdefault(to, tx) != tx)
        f.undelivered += undelivered
        f.duplicated += repeated + again
        lag = None
        if complete_at is not None and chat.last_ack is not None:
            lag = max(0.0, complete_at - chat.last_ack)
            f.lag_max = max(f.lag_max, lag)
        if lag is None:
            f.incomplete += 1
        elif lag > MAX_LAG:
            f.over_lag += 1
        brief = " | ".join(t.split("\n", 1)[0][:30] for t in written)
        got_brief = " | ".join(t.split("\n", 1)[0][:30] for _, t in rec.sent)
        if unstored or unanswered:
            f.problems.append(f"chat {chat.id} lost: unstored {unstored}, unanswered {unanswered}")
        if not sent_in_order or not written_in_order:
            f.out_of_order += 1
            f.problems.append(
                f"chat {chat.id} out of order: written [{brief}] received [{got_brief}], "
                f"replies answer {[to for to, _ in answering]}"
            )
        if repeated or again or undelivered:
            f.problems.append(
                f"chat {chat.id}: {repeated} repeated, {again} from a second turn, "
                f"{undelivered} undelivered: written [{brief}] received [{got_brief}]"
            )
        if lag is not None and lag > MAX_LAG:
            acks = f"{chat.last_ack - zero:.1f}" if chat.last_ack is not None else "-"
            arrivals = ", ".join(f"{at - zero:.1f}" for at, _ in rec.sent)
            f.problems.append(
                f"chat {chat.id}: every reply only {lag:.1f}s after the last ack "
                f"(last ack at {acks}s, replies at {arrivals}s)"
            )
        elif lag is None and not undelivered:
            f.problems.append(f"chat {chat.id}: no reply reached the platform")
    return f


# --------------------------------------------------------------------------- the tests


async def test_webhooks_spread_and_retried_over_two_processes_lose_repeat_and_reorder_nothing(
    world: World,
) -> None:
    chats = make_chats(620_000_000)
    started = time.monotonic()
    async with httpx.AsyncClient(timeout=10) as http:
        platform = Platform(world, http)
        await platform.drive(chats)
    records, settled = await settle_and_read(world, chats, time.monotonic())
    f = check(chats, records, started)
    report = f.report(settled, platform.failed, "times from the start of the drive; ")
    print(report)  # the figures of a passing run too (pytest -rP)

    assert f.acked == USERS * MESSAGES, report
    assert f.stored == f.answered == USERS * MESSAGES, report
    assert (f.lost, f.undelivered, f.out_of_order, f.duplicated) == (0, 0, 0, 0), report
    assert (f.incomplete, f.over_lag) == (0, 0), report


async def test_a_process_killed_midway_and_restarted_loses_and_reorders_nothing(
    world: World,
) -> None:
    chats = make_chats(630_000_000)
    async with httpx.AsyncClient(timeout=10) as http:
        platform = Platform(world, http)

        async def kill_and_restart() -> tuple[int, float, float, int]:
            await platform.third_acked.wait()
            pid = await asyncio.to_thread(world.servers.kill, 1)
            killed_at = time.monotonic()
            failed_before = sum(platform.failed.values())
            await asyncio.sleep(RESTART_AFTER)
            # A start under load (its model loading too) can take most of a minute.
            await asyncio.to_thread(world.servers.restart, 1, 120)
            return pid, killed_at, time.monotonic(), failed_before

        chaos = asyncio.create_task(kill_and_restart())
        await platform.drive(chats)
        pid, killed_at, ready_at, failed_before = await chaos
    records, settled = await settle_and_read(world, chats, time.monotonic())
    f = check(chats, records, killed_at)
    kill = (
        f"process 1 (pid {pid}) SIGKILLed after {USERS * MESSAGES // 3} acks (time 0), "
        f"restarted, ready at {ready_at - killed_at:.1f}s; "
    )
    report = f.report(settled, platform.failed, kill)
    print(report)

    # The kill was felt: deliveries to the dead process failed and went to the other.
    assert sum(platform.failed.values()) > failed_before, report
    assert f.acked == USERS * MESSAGES, report
    assert (f.lost, f.undelivered, f.out_of_order) == (0, 0, 0), report
    assert f.duplicated <= DUPLICATES_AFTER_KILL, report
    assert (f.incomplete, f.over_lag) == (0, 0), report
