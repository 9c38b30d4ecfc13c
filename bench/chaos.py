"""Chaos drive of the scale-out mode (issue 11): two servers, one of them killed midway.

Two ``abonent serve`` processes share a fresh PostgreSQL database and Redis; a fake
Telegram Bot API runs in this process. N Telegram users send M messages each as signed
webhook updates (``X-Telegram-Bot-Api-Secret-Token``) to ``/webhooks/tg``, the way the
platform behind a load balancer does:

* each POST goes to the next process of a global rotation, so one chat's consecutive
  updates land on both processes, nearly at once: a user sends the next message as soon
  as the previous one is acknowledged, after a think time of 0–300 ms, without waiting
  for the bot's reply;
* an update answered with anything but 2xx, or not answered at all (connection refused
  or reset, timeout), is delivered again, the same ``update_id`` and message, to the
  other process after a short pause, until it is acknowledged.

A third into the drive (when a third of the updates are acknowledged; ``--kill-after``
sets seconds instead) process 1 gets SIGKILL — the Python server itself, not a wrapper —
and is started again ``--restart-after`` seconds later on the same port. Deliveries go
on meanwhile: those to the dead process fail and are retried on the survivor.

After the drive the servers get up to ``--settle`` seconds to finish (every customer
message handled, no send pending, the fake quiet), then the database and the fake's
record are compared: stored / answered / lost / duplicated / out of order / last-reply
lag, and whether the bar of the issue is met (0 lost, 0 chats out of order, 0 repeated
replies without a kill and at most 5 after it, every chat's last reply within 30 s of
its last acknowledged message). The world (temp dir, TOML config with the channel,
fresh database, accounts import, servers on free ports, ``--redis own``) is made and
removed by the helpers of bench/load.py; the fake platform is bench/webhooks.py's.

    .venv/bin/python bench/chaos.py --users 200 --messages 5
    .venv/bin/python bench/chaos.py --users 200 --messages 5 --no-kill
    .venv/bin/python bench/chaos.py --users 50 --messages 4 --kill-after 2 --json

See bench/README.md for what each printed figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import random
import signal
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import aiohttp
from sqlalchemy import func, select

from abonent.channels.base import split_text
from abonent.channels.telegram import TEXT_LIMIT, render
from abonent.core import events
from abonent.core.types import Button
from abonent.db.models import ChannelIdentity, EventRecord, Message, OutboxItem
from abonent.db.session import Database

# bench/ is on sys.path when this file runs as a script: the other benches' helpers.
from load import (
    DEFAULT_PG_URL,
    BenchAccount,
    Run,
    Server,
    bench_main,
    bench_session,
    log,
    percentile,
    run_guarded,
    server_env,
    server_log_errors,
    servers_ready,
    start_server,
    start_world,
    wait_ready,
)
from webhooks import CHANNEL_ID, CHAT_BASE, FakePlatform, channel_toml

if TYPE_CHECKING:
    from webhooks import User

CHANNEL = CHANNEL_ID["telegram"]
THINK = 0.3  # a user's pause between two messages: uniform 0 .. THINK seconds
RETRY_PAUSE = 0.2  # before delivering a refused update again (to the other process)
POST_TIMEOUT = 10.0  # a webhook POST unanswered this long counts as failed, and is retried
GIVE_UP = 90.0  # an update not acknowledged within this long is abandoned (never seen)
QUIET = 2.0  # settled: besides nothing left to do, no sendMessage for this long
# The bar of issue 11.
MAX_LAG = 30.0  # every chat's last reply within this long of its last acknowledged message
MAX_DUPLICATED_AFTER_KILL = 5
SAMPLES = 5  # chats shown for each kind of problem


# --------------------------------------------------------------------------- the drive


class ChatUser:
    """One Telegram user: a private chat, the messages to send, what was acknowledged."""

    def __init__(self, index: int, texts: list[str]) -> None:
        self.chat = CHAT_BASE + index  # FakePlatform.update reads .chat and .sent_ids
        self.key = str(self.chat)
        self.sent_ids = 0
        self.texts = texts
        self.acked: list[str] = []  # external ids (m:<chat>:<message_id>) of acked updates
        self.last_ack: float | None = None


def script(account: BenchAccount, count: int) -> list[str]:
    """What a user types: a greeting, the balance question, their account, the menu…"""
    steps = ["Здравствуйте", "баланс", account.number, "меню"]
    return [steps[i % len(steps)] for i in range(count)]


@dataclass
class DriveStats:
    updates: int = 0  # planned: users × messages
    acked: int = 0
    deliveries: int = 0  # POSTs made, retries included
    retried: int = 0  # updates that needed more than one delivery
    given_up: int = 0  # updates never acknowledged within GIVE_UP
    errors: Counter[str] = field(default_factory=Counter)  # failed deliveries by kind
    ack_latencies: list[float] = field(default_factory=list)  # POST → 2xx, s
    started: float = 0.0
    ended: float = 0.0


class Drive:
    """The platform's side: deliveries spread over the processes, retried until acked."""

    def __init__(
        self, fake: FakePlatform, hooks: list[str], http: aiohttp.ClientSession, total: int
    ) -> None:
        self.fake = fake
        self.hooks = hooks
        self.http = http
        self.rotation = itertools.count()
        self.stats = DriveStats(updates=total)
        self.third_acked = asyncio.Event()
        self._timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)

    async def _post(self, hook: str, body: bytes) -> bool:
        """One delivery; True when the server acknowledged it (2xx)."""
        st = self.stats
        st.deliveries += 1
        t0 = time.perf_counter()
        try:
            async with self.http.post(
                hook, data=body, headers=self.fake.headers(), timeout=self._timeout
            ) as r:
                await r.read()
                if 200 <= r.status < 300:
                    st.ack_latencies.append(time.perf_counter() - t0)
                    return True
                st.errors[f"HTTP {r.status}"] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            st.errors[type(exc).__name__] += 1
        return False

    async def deliver(self, user: ChatUser, text: str) -> None:
        """One update, as Telegram delivers it: again to the next process until acked."""
        body = self.fake.update(cast("User", user), text)
        external_id = f"m:{user.chat}:{user.sent_ids}"
        index = next(self.rotation) % len(self.hooks)
        deadline = time.perf_counter() + GIVE_UP
        attempts = 0
        while True:
            attempts += 1
            if await self._post(self.hooks[index], body):
                user.acked.append(external_id)
                user.last_ack = time.perf_counter()
                self.stats.acked += 1
                if self.stats.acked * 3 >= self.stats.updates:
                    self.third_acked.set()
                break
            if time.perf_counter() >= deadline:
                self.stats.given_up += 1
                break
            index = (index + 1) % len(self.hooks)
            await asyncio.sleep(RETRY_PAUSE)
        if attempts > 1:
            self.stats.retried += 1

    async def run_user(self, user: ChatUser, delay: float, rng: random.Random) -> None:
        await asyncio.sleep(delay)
        for n, text in enumerate(user.texts):
            if n:
                await asyncio.sleep(rng.uniform(0.0, THINK))
            await self.deliver(user, text)

    async def run(self, users: list[ChatUser], ramp: float, seed: int) -> None:
        """Every user, starting spread evenly over ``ramp`` seconds."""
        self.stats.started = time.perf_counter()
        step = ramp / max(len(users), 1)
        await asyncio.gather(
            *(
                self.run_user(u, i * step, random.Random(seed * 100_003 + i))
                for i, u in enumerate(users)
            )
        )
        self.stats.ended = time.perf_counter()


# --------------------------------------------------------------------------- the kill


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _serves(pid: int) -> bool:
    args = _cmdline(pid)
    return "serve" in args and any("abonent" in a for a in args)


def serving_pid(pid: int) -> int:
    """The process that really serves: ``pid`` itself when it is ``abonent serve`` (the
    default command), else its deepest descendant that is (``--abonent-cmd`` may be a
    wrapper script); killing a wrapper would leave the server running."""
    found = pid if _serves(pid) else None
    frontier = [pid]
    while frontier:
        frontier = [c for p in frontier for c in _children(p)]
        for child in frontier:
            if _serves(child):
                found = child
    if found is None:
        raise RuntimeError(f"no abonent serve process under pid {pid}: {_cmdline(pid)}")
    return found


@dataclass
class Chaos:
    victim: int = 1  # index of the process killed
    killed_pid: int | None = None
    kill_at: float | None = None  # seconds into the drive
    restart_at: float | None = None
    ready_at: float | None = None


async def kill_and_restart(
    run: Run,
    drive: Drive,
    http: aiohttp.ClientSession,
    env: dict[str, str],
    chaos: Chaos,
    kill_after: float | None,
    restart_after: float,
) -> None:
    """SIGKILL the victim a third into the drive (or after ``kill_after`` s), start it
    again ``restart_after`` s later on its port, wait until it is ready."""
    if kill_after is None:
        await drive.third_acked.wait()
    else:
        await asyncio.sleep(max(0.0, drive.stats.started + kill_after - time.perf_counter()))
    victim = run.servers[chaos.victim]
    pid = serving_pid(victim.pid)
    os.kill(pid, signal.SIGKILL)
    chaos.killed_pid = pid
    chaos.kill_at = time.perf_counter() - drive.stats.started
    await victim.proc.wait()
    log(f"SIGKILL to process {chaos.victim} (pid {pid}) at {chaos.kill_at:.1f}s")
    await asyncio.sleep(restart_after)
    chaos.restart_at = time.perf_counter() - drive.stats.started
    log_path = run.work / f"server{chaos.victim}-restarted.log"
    restarted: Server = await start_server(victim.port, env, log_path)
    # The cleanup stops this one now; the dead one stays listed for its log's errors.
    run.servers[chaos.victim] = restarted
    run.servers.append(victim)
    await wait_ready(restarted, http)
    chaos.ready_at = time.perf_counter() - drive.stats.started
    log(f"process {chaos.victim} restarted (pid {restarted.pid}), ready at {chaos.ready_at:.1f}s")


# --------------------------------------------------------------------------- the record


@dataclass(frozen=True)
class StoredCustomer:
    id: int
    external_id: str | None
    handled: bool


@dataclass(frozen=True)
class WrittenReply:
    """A message the bot (or anyone but the customer) wrote to the chat."""

    id: int
    # What the platform is sent for it, in order (a long text goes in parts; buttons
    # that do not fit become a numbered menu): the channel's own rendering.
    sends: tuple[str, ...]
    reply_to: int | None  # the customer message whose turn wrote it (message.sent event)
    turn: tuple[int, str] | None  # (transaction, time) of that turn: one per turn


@dataclass
class ChatRecord:
    """Everything known about one chat after the run, from the drive, the fake and the
    database."""

    chat: str
    acked: list[str]
    last_ack: float | None
    stored: list[StoredCustomer]
    written: list[WrittenReply]  # id order
    sent: list[tuple[float, str]]  # what the fake received: (arrival, text), arrival order


def telegram_sends(text: str, buttons: list[dict[str, str]] | None) -> tuple[str, ...]:
    """The texts Telegram receives for one message, as the channel renders and splits it."""
    rendered, _ = render(text, tuple(Button(b["title"], b["payload"]) for b in buttons or []))
    return tuple(split_text(rendered, TEXT_LIMIT)) if rendered else ()


async def read_record(db: Database, users: list[ChatUser], fake: FakePlatform) -> list[ChatRecord]:
    """The chats' customer messages and replies as stored, next to the drive and the fake."""
    stored: dict[str, list[StoredCustomer]] = defaultdict(list)
    written: dict[str, list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
    async with db.read() as conn:
        rows = await conn.execute(
            select(
                ChannelIdentity.external_id,
                Message.id,
                Message.author,
                Message.text,
                Message.buttons,
                Message.external_id,
                Message.handled,
            )
            .join(ChannelIdentity, ChannelIdentity.id == Message.identity_id)
            .where(Message.channel_id == CHANNEL)
            .order_by(Message.id)
        )
        for chat, mid, author, text, buttons, external_id, handled in rows:
            if author == "customer":
                stored[chat].append(StoredCustomer(mid, external_id, bool(handled)))
            else:
                written[chat].append((mid, telegram_sends(text, buttons)))
        sent_events = await conn.execute(
            select(EventRecord.tx, EventRecord.occurred_at, EventRecord.data).where(
                EventRecord.type == events.MESSAGE_SENT
            )
        )
        turns: dict[int, tuple[int | None, tuple[int, str]]] = {}
        for tx, occurred_at, data in sent_events:
            if data.get("channel_id") == CHANNEL:
                turns[int(data["message_id"])] = (
                    data.get("reply_to"),
                    (int(tx), occurred_at.isoformat()),
                )
    records = []
    for user in users:
        replies = []
        for mid, sends in written.get(user.key, []):
            reply_to, turn = turns.get(mid, (None, None))
            replies.append(WrittenReply(mid, sends, reply_to, turn))
        records.append(
            ChatRecord(
                chat=user.key,
                acked=list(user.acked),
                last_ack=user.last_ack,
                stored=stored.get(user.key, []),
                written=replies,
                sent=list(fake.arrivals.get(user.key, [])),
            )
        )
    return records


async def backlog(db: Database) -> tuple[int, int, int]:
    """(customer messages stored, of them unhandled, outbox rows pending or sending)."""
    async with db.read() as conn:
        stored = await conn.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.channel_id == CHANNEL, Message.author == "customer")
        )
        unhandled = await conn.scalar(
            select(func.count())
            .select_from(Message)
            .where(
                Message.channel_id == CHANNEL,
                Message.author == "customer",
                Message.handled.is_(False),
            )
        )
        sending = await conn.scalar(
            select(func.count())
            .select_from(OutboxItem)
            .where(OutboxItem.status.in_(("pending", "sending")))
        )
    return int(stored or 0), int(unhandled or 0), int(sending or 0)


async def settle(db: Database, fake: FakePlatform, acked: int, limit: float) -> bool:
    """Wait until the servers are done: every acknowledged update stored and handled,
    nothing left in the outbox, the fake quiet; False when ``limit`` s were not enough."""
    deadline = time.perf_counter() + limit
    while True:
        stored, unhandled, sending = await backlog(db)
        last = fake.all_arrivals[-1] if fake.all_arrivals else 0.0
        quiet = time.perf_counter() - last >= QUIET
        if stored >= acked and not unhandled and not sending and quiet:
            return True
        if time.perf_counter() >= deadline:
            log(
                f"not settled after {limit:g}s: {stored} stored of {acked} acknowledged, "
                f"{unhandled} unhandled, {sending} sends pending or in flight"
            )
            return False
        await asyncio.sleep(0.25)


# --------------------------------------------------------------------------- the figures


@dataclass
class Delivery:
    """One chat at the platform, against what the database says was written."""

    repeated: int  # sends beyond the number of times the database wrote that text
    undelivered: int  # written sends the platform never received
    in_order: bool  # first arrivals in the order the bot wrote them (id order)
    complete_at: float | None  # when the platform had received all of it (None: never)


def check_delivery(written: list[str], sent: list[tuple[float, str]]) -> Delivery:
    """Align the fake's sends of one chat with the texts written for it, in id order.

    Walking the sends in arrival order, each is: the next written message not received
    yet (in order); else a text already received (a repeat: the customer sees it
    again); else a later written message with that text (received out of order) — or
    one the bot never wrote here, counted as a repeat too (a send the database does not
    have). Texts alone cannot tell two equal messages apart, so a repeat of an earlier
    «Здравствуйте» is never taken for the next one out of order."""
    received = [False] * len(written)
    delivered: Counter[str] = Counter()
    position = count = repeated = 0
    in_order = True
    complete_at = None
    for at, text in sent:
        while position < len(written) and received[position]:
            position += 1
        if position < len(written) and written[position] == text:
            index = position
        elif delivered[text]:
            repeated += 1
            continue
        else:
            later = [
                i for i in range(position, len(written)) if written[i] == text and not received[i]
            ]
            if not later:
                repeated += 1
                continue
            index, in_order = later[0], False
        received[index] = True
        delivered[text] += 1
        count += 1
        if count == len(written):
            complete_at = at
    return Delivery(repeated, len(written) - count, in_order, complete_at)


def check_written(written: list[WrittenReply]) -> tuple[bool, int]:
    """(the replies answer the customer messages in their order, replies written by a
    second or later turn on a customer message that one turn had already answered)."""
    answered = [w.reply_to for w in written if w.reply_to is not None]
    in_order = answered == sorted(answered)
    first_turn: dict[int, tuple[int, str] | None] = {}
    again = 0
    for w in written:
        if w.reply_to is None:
            continue
        turn = first_turn.setdefault(w.reply_to, w.turn)
        if turn != w.turn:
            again += 1
    return in_order, again


@dataclass
class ChatFigures:
    chat: str
    acked: int
    stored: int
    answered: int
    unstored: list[str]  # acknowledged updates with no stored message (external ids)
    unanswered: list[int]  # stored customer messages never handled and answered
    delivery: Delivery
    written_in_order: bool
    second_turns: int
    lag: float | None  # last acknowledged update → the platform has every reply


def chat_figures(record: ChatRecord) -> ChatFigures:
    stored_ids = {m.external_id for m in record.stored}
    last_reply = max((w.id for w in record.written), default=0)
    answered = [m for m in record.stored if m.handled and last_reply > m.id]
    sends = [text for w in record.written for text in w.sends]
    delivery = check_delivery(sends, record.sent)
    written_in_order, second_turns = check_written(record.written)
    lag = None
    if delivery.complete_at is not None and record.last_ack is not None:
        lag = max(0.0, delivery.complete_at - record.last_ack)
    return ChatFigures(
        chat=record.chat,
        acked=len(record.acked),
        stored=len(record.stored),
        answered=len(answered),
        unstored=[e for e in record.acked if e not in stored_ids],
        unanswered=[m.id for m in record.stored if m not in answered],
        delivery=delivery,
        written_in_order=written_in_order,
        second_turns=second_turns,
        lag=lag,
    )


@dataclass
class Figures:
    users: int
    messages: int
    killed: bool
    kill_at_s: float | None
    restart_at_s: float | None
    ready_at_s: float | None
    drive_s: float
    settled: bool
    settle_s: float
    updates: int
    acked: int
    deliveries: int
    retried: int
    given_up: int
    errors: dict[str, int]
    ack_p50_ms: float
    ack_p95_ms: float
    ack_max_ms: float
    stored: int
    answered: int
    lost: int
    lost_unstored: int
    lost_unanswered: int
    undelivered: int
    duplicated: int
    repeated_sends: int
    second_turn_replies: int
    out_of_order: int
    out_of_order_sent: int
    out_of_order_written: int
    lag_max_ms: float
    lag_p95_ms: float
    chats_incomplete: int
    chats_over_lag: int
    server_log_errors: int
    bar_met: bool
    bar_missed: list[str]
    samples: dict[str, list[str]]


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 1)


def _brief(texts: Iterable[str]) -> str:
    return " | ".join(t.split("\n", 1)[0][:40] for t in texts)


def summarise(
    chats: list[ChatFigures],
    records: list[ChatRecord],
    drive: DriveStats,
    chaos: Chaos | None,
    settled: bool,
    settle_s: float,
    log_errors: int,
    messages: int,
) -> Figures:
    lags = sorted(c.lag for c in chats if c.lag is not None)
    acks = sorted(drive.ack_latencies)
    by_chat = {r.chat: r for r in records}
    samples: dict[str, list[str]] = defaultdict(list)

    def sample(kind: str, c: ChatFigures, what: str) -> None:
        if len(samples[kind]) < SAMPLES:
            samples[kind].append(f"chat {c.chat}: {what}")

    for c in chats:
        r = by_chat[c.chat]
        got = _brief(t for _, t in r.sent)
        wrote = _brief(t for w in r.written for t in w.sends)
        if c.unstored:
            sample("lost", c, f"acknowledged, not stored: {', '.join(c.unstored)}")
        if c.unanswered:
            sample("lost", c, f"stored, never answered: message ids {c.unanswered}")
        if c.delivery.undelivered:
            sample("undelivered", c, f"{c.delivery.undelivered} written, never received")
        if c.delivery.repeated or c.second_turns:
            sample(
                "duplicated",
                c,
                f"{c.delivery.repeated} repeated, {c.second_turns} from a second turn; "
                f"written [{wrote}] received [{got}]",
            )
        if not c.delivery.in_order:
            sample("out of order (platform)", c, f"written [{wrote}] received [{got}]")
        if not c.written_in_order:
            answering = [w.reply_to for w in r.written]
            sample("out of order (database)", c, f"replies answer customer ids {answering}")
        if c.lag is not None and c.lag > MAX_LAG and r.last_ack is not None:
            arrivals = ", ".join(f"{at - drive.started:.1f}" for at, _ in r.sent)
            sample(
                "lag",
                c,
                f"every reply only {c.lag:.1f}s after the last ack (last ack at "
                f"{r.last_ack - drive.started:.1f}s into the drive, replies at {arrivals}s)",
            )
        elif c.lag is None and not c.delivery.undelivered:
            sample("lag", c, "no reply reached the platform")

    killed = chaos is not None and chaos.kill_at is not None
    lost_unstored = sum(len(c.unstored) for c in chats)
    lost_unanswered = sum(len(c.unanswered) for c in chats)
    repeated = sum(c.delivery.repeated for c in chats)
    second = sum(c.second_turns for c in chats)
    ooo_sent = sum(1 for c in chats if not c.delivery.in_order)
    ooo_written = sum(1 for c in chats if not c.written_in_order)
    incomplete = sum(1 for c in chats if c.lag is None)
    over = sum(1 for c in chats if c.lag is not None and c.lag > MAX_LAG)
    lost = lost_unstored + lost_unanswered
    duplicated = repeated + second
    out_of_order = len({c.chat for c in chats if not c.delivery.in_order or not c.written_in_order})
    allowed = MAX_DUPLICATED_AFTER_KILL if killed else 0
    missed = []
    if lost:
        missed.append(f"lost {lost} (bar 0)")
    if out_of_order:
        missed.append(f"{out_of_order} chats out of order (bar 0)")
    if duplicated > allowed:
        missed.append(f"duplicated {duplicated} (bar {allowed})")
    undelivered = sum(c.delivery.undelivered for c in chats)
    if undelivered:
        missed.append(f"{undelivered} replies written but never delivered")
    if incomplete or over:
        missed.append(f"{incomplete + over} chats without every reply within {MAX_LAG:g}s (bar 0)")
    if drive.given_up:
        missed.append(f"{drive.given_up} updates never acknowledged")
    return Figures(
        users=len(chats),
        messages=messages,
        killed=killed,
        kill_at_s=None if chaos is None else chaos.kill_at,
        restart_at_s=None if chaos is None else chaos.restart_at,
        ready_at_s=None if chaos is None else chaos.ready_at,
        drive_s=round(drive.ended - drive.started, 2),
        settled=settled,
        settle_s=round(settle_s, 2),
        updates=drive.updates,
        acked=drive.acked,
        deliveries=drive.deliveries,
        retried=drive.retried,
        given_up=drive.given_up,
        errors=dict(drive.errors),
        ack_p50_ms=_ms(percentile(acks, 50)),
        ack_p95_ms=_ms(percentile(acks, 95)),
        ack_max_ms=_ms(percentile(acks, 100)),
        stored=sum(c.stored for c in chats),
        answered=sum(c.answered for c in chats),
        lost=lost,
        lost_unstored=lost_unstored,
        lost_unanswered=lost_unanswered,
        undelivered=undelivered,
        duplicated=duplicated,
        repeated_sends=repeated,
        second_turn_replies=second,
        out_of_order=out_of_order,
        out_of_order_sent=ooo_sent,
        out_of_order_written=ooo_written,
        lag_max_ms=_ms(lags[-1]) if lags else math.nan,
        lag_p95_ms=_ms(percentile(lags, 95)) if lags else math.nan,
        chats_incomplete=incomplete,
        chats_over_lag=over,
        server_log_errors=log_errors,
        bar_met=not missed,
        bar_missed=missed,
        samples=dict(samples),
    )


def report(f: Figures) -> str:
    if f.killed:
        ready = f"ready at {f.ready_at_s:.1f}s" if f.ready_at_s is not None else "not ready"
        chaos = (
            f"process 1 SIGKILLed at {f.kill_at_s:.1f}s, restarted at {f.restart_at_s:.1f}s, "
            f"{ready}"
        )
    else:
        chaos = "no kill"
    errors = ", ".join(f"{k} {v}" for k, v in sorted(f.errors.items())) or "none"
    verdict = "met" if f.bar_met else "MISSED: " + "; ".join(f.bar_missed)
    lines = [
        f"chaos: {f.users} users × {f.messages} messages, 2 processes on PostgreSQL + Redis, "
        f"{chaos}",
        f"  drive            {f.updates} updates in {f.drive_s:.1f}s: {f.acked} acknowledged, "
        f"{f.given_up} given up; {f.deliveries} deliveries, {f.retried} updates retried "
        f"(failed deliveries: {errors})",
        f"  acks             p50 {f.ack_p50_ms:.0f} ms, p95 {f.ack_p95_ms:.0f} ms, "
        f"max {f.ack_max_ms:.0f} ms (POST → 2xx: the update stored)",
        f"  settled          {'yes' if f.settled else 'NO'} after {f.settle_s:.1f}s",
        f"  stored           {f.stored} customer messages for {f.acked} acknowledged updates",
        f"  answered         {f.answered} of {f.stored} stored (handled, a reply after it)",
        f"  lost             {f.lost}: {f.lost_unstored} acknowledged but not stored, "
        f"{f.lost_unanswered} stored but never answered; replies never delivered "
        f"{f.undelivered}",
        f"  duplicated       {f.duplicated}: {f.repeated_sends} repeated sends at the platform, "
        f"{f.second_turn_replies} replies of a second turn on one message",
        f"  out of order     {f.out_of_order} chats: {f.out_of_order_sent} at the platform, "
        f"{f.out_of_order_written} in the database",
        f"  last-reply lag   max {f.lag_max_ms:.0f} ms, p95 {f.lag_p95_ms:.0f} ms; "
        f"{f.chats_incomplete} chats never complete, {f.chats_over_lag} over {MAX_LAG:g}s",
        f"  server logs      {f.server_log_errors} ERROR/Traceback lines",
        f"  bar of issue 11  {verdict}",
    ]
    for kind, found in f.samples.items():
        lines.append(f"  {kind}:")
        lines += [f"    {s}" for s in found]
    return "\n".join(lines)


# --------------------------------------------------------------------------- the run


async def execute(run: Run, fake: FakePlatform, args: argparse.Namespace) -> Figures:
    await fake.start()
    accounts = await start_world(run, channel_toml("telegram", fake.url))
    env = server_env(run.work / "abonent.toml", run.db_url, run.redis_url)
    users = [ChatUser(i, script(accounts[i], args.messages)) for i in range(args.users)]
    chaos = None if args.no_kill else Chaos()
    async with bench_session() as http:
        log(f"{await servers_ready(run, http)}, telegram fake at {fake.url}")
        hooks = [f"{s.url}/webhooks/{CHANNEL}" for s in run.servers]
        drive = Drive(fake, hooks, http, len(users) * args.messages)
        chaos_task = None
        if chaos is not None:
            chaos_task = asyncio.create_task(
                kill_and_restart(run, drive, http, env, chaos, args.kill_after, args.restart_after)
            )
        log(
            f"{len(users)} users × {args.messages} messages, starting over {args.ramp:g}s"
            + ("" if chaos is None else "; process 1 gets SIGKILL midway")
        )
        try:
            await drive.run(users, args.ramp, args.seed)
            if chaos_task is not None:
                await chaos_task  # the restart, when the drive ended first
        finally:
            if chaos_task is not None and not chaos_task.done():
                chaos_task.cancel()
        log(f"drive done in {drive.stats.ended - drive.stats.started:.1f}s; settling")
    db = Database(run.db_url)
    try:
        t0 = time.perf_counter()
        settled = await settle(db, fake, drive.stats.acked, args.settle)
        settle_s = time.perf_counter() - t0
        records = await read_record(db, users, fake)
    finally:
        await db.dispose()
    chats = [chat_figures(r) for r in records]
    return summarise(
        chats,
        records,
        drive.stats,
        chaos,
        settled,
        settle_s,
        server_log_errors(run),
        args.messages,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Chaos drive: Telegram webhooks spread and retried over two Abonent "
        "processes on PostgreSQL + Redis, one killed with SIGKILL and restarted midway."
    )
    p.add_argument("--users", type=int, default=200, help="Telegram users (chats)")
    p.add_argument("--messages", type=int, default=5, help="messages each user sends")
    p.add_argument(
        "--ramp", type=float, default=30.0, help="users start spread evenly over this many s"
    )
    p.add_argument(
        "--kill-after",
        type=float,
        default=None,
        help="SIGKILL process 1 this many s into the drive (default: when a third of the "
        "updates are acknowledged)",
    )
    p.add_argument(
        "--restart-after", type=float, default=3.0, help="start it again this many s later"
    )
    p.add_argument("--no-kill", action="store_true", help="run without killing anything")
    p.add_argument(
        "--settle",
        type=float,
        default=60.0,
        help="after the drive, wait up to this many s for the servers to finish",
    )
    p.add_argument("--seed", type=int, default=11, help="think times (the same seed, the same)")
    p.add_argument(
        "--db", choices=("postgres",), default="postgres", help="two processes need PostgreSQL"
    )
    p.add_argument(
        "--pg-url",
        default=DEFAULT_PG_URL,
        help="maintenance database; the bench creates and drops its own next to it",
    )
    p.add_argument(
        "--redis",
        default="own",
        help="Redis URL for the servers' event bus, or 'own' (default) to start a private "
        "redis-server on a free loopback port",
    )
    p.add_argument("--port", type=int, default=0, help="first server port (default: a free one)")
    p.add_argument(
        "--abonent-cmd",
        default=None,
        help="command that runs abonent (default: this Python's -m abonent)",
    )
    p.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = p.parse_args(argv)
    if not 1 <= args.users <= 5000:
        p.error("--users must be between 1 and 5000")
    if not 1 <= args.messages <= 100:
        p.error("--messages must be between 1 and 100")
    if args.ramp < 0 or args.restart_after < 0 or args.settle < 0:
        p.error("--ramp, --restart-after and --settle must not be negative")
    if args.kill_after is not None and args.kill_after < 0:
        p.error("--kill-after must not be negative")
    # What load.py's world and guard read.
    args.processes = 2
    args.accounts = args.users
    estimate = args.ramp + args.messages * (THINK + 1.0) + args.restart_after + 60
    args.duration = estimate + args.settle  # the hard stop is at this + 60 s
    return args


async def main_async(args: argparse.Namespace, loop_name: str) -> int:
    fake = FakePlatform("telegram")
    outcome = await run_guarded(args, lambda run: execute(run, fake, args), fake.stop)
    if isinstance(outcome, int):
        return outcome
    print(report(outcome), flush=True)
    if args.json:
        print(json.dumps(asdict(outcome), ensure_ascii=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    return bench_main(parse_args(argv), main_async)


if __name__ == "__main__":
    sys.exit(main())
