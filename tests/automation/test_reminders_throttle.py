"""The reminders' pace shared by every server process through Redis: one window per
channel type for all of them, one message a second per chat, a 429's pause seen by
all; alone (or with Redis gone) each process paces itself."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import pytest

from abonent.automation.reminders.sender import ReminderSender
from abonent.automation.reminders.throttle import LocalThrottle, RedisThrottle, build_throttle
from automation import test_reminders as base
from automation.test_reminders import create, many_customers, run_sender, sender
from conftest import require_redis
from fakes.telegram import FakeTelegram
from support import Clock, LiveServer, free_port

server = base.server
tg = base.tg
wa = base.wa
clock = base.clock


def shared(url: str, prefix: str, rate: float = 3.0) -> RedisThrottle:
    return RedisThrottle(url, {"telegram": rate, "vk": rate}, 1.0, prefix=prefix)


@pytest.mark.services
async def test_two_processes_share_one_window_per_platform() -> None:
    url = require_redis()
    prefix = f"test:{secrets.token_hex(6)}:"
    one, two = shared(url, prefix), shared(url, prefix)
    try:
        # Telegram at 3 a second across both "processes": the fourth send waits.
        assert await one.attempt("telegram", "1") == 0
        assert await two.attempt("telegram", "2") == 0
        assert await one.attempt("telegram", "3") == 0
        assert await two.attempt("telegram", "4") > 0
        assert await one.attempt("telegram", "5") > 0
        # Another platform has its own window.
        assert await two.attempt("vk", "1") == 0
        # One chat: a second message within the second waits, whoever sends it.
        assert await one.attempt("vk", "42") == 0
        assert await two.attempt("vk", "42") > 0
        # A 429 seen by one process pauses that platform for the other too.
        await one.pause("vk", 5)
        wait = await two.attempt("vk", "77")
        assert 1000 < wait <= 5000
    finally:
        await one.close()
        await two.close()


async def test_without_redis_a_process_paces_itself() -> None:
    assert isinstance(build_throttle("", {"telegram": 20}, 1.0), LocalThrottle)
    assert isinstance(
        build_throttle("redis://x", {"telegram": 20}, 1.0, shared=False), LocalThrottle
    )
    # Redis configured but not answering: the sends go on, paced locally.
    gone = RedisThrottle(f"redis://127.0.0.1:{free_port()}/0", {"telegram": 1000}, 0.0)
    try:
        await asyncio.wait_for(gone.take("telegram", "1"), timeout=10)
        assert gone.fallback.buckets["telegram"].interval == pytest.approx(0.001)
    finally:
        await gone.close()


@pytest.mark.services
def test_a_campaign_goes_out_once_each_through_the_shared_throttle(
    server: LiveServer, tg: FakeTelegram, clock: Clock
) -> None:
    url = require_redis()
    prefix = f"test:{secrets.token_hex(6)}:"
    chats = many_customers(server, tg, 6)
    create(server, "paced", channel="telegram")
    throttles = [shared(url, prefix, rate=100), shared(url, prefix, rate=100)]
    senders = [sender(server), sender(server)]
    for s, t in zip(senders, throttles, strict=True):
        s.throttle = t
        s.batch = 2

    async def race() -> None:
        async def work(s: ReminderSender) -> None:
            await s.schedule()
            while await s.send_due():
                pass

        await asyncio.gather(*(work(s) for s in senders))
        for t in throttles:
            await t.close()

    server.call(race())
    run_sender(server, sender(server))
    got = Counter(str(s.chat_id) for s in tg.sent if "задолженность" in s.text)
    assert sorted(got) == sorted(str(c) for c in chats)
    assert set(got.values()) == {1}
