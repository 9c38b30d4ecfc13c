"""Readings reach an HTTP billing, and nothing is lost: a web-chat customer submits through
the real server; billing is a fake on 127.0.0.1 speaking the v1 contract.

With billing up the submission arrives once, with the zones of the plan; with billing down
the customer is told the readings are accepted and will be passed on, and they arrive
exactly once when billing is back — also with two delivery loops racing, and after a loop
died holding them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from abonent import clock
from abonent.billing.base import submission_key
from abonent.billing.http import HttpBilling
from abonent.billing.queue import ReadingsDelivery, enqueue
from abonent.config import BillingSettings, TariffSettings
from abonent.core.bus import LocalBus
from abonent.db.models import BillingSubmission, EventRecord, Message
from abonent.db.session import Database
from fakes.billing import TOKEN, FakeBilling
from support import LiveServer, make_settings, moscow, texts, to_values, web_chat

NUMBER = "5000123456"
# Thursday 3 December 2026, noon in Moscow; the clock runs on from there.
START = moscow(2026, 12, 3, 12, 0)
TODAY = date(2026, 12, 3)


def running_from(start: datetime) -> Callable[[], datetime]:
    """A clock that starts at ``start`` and runs: leases and retries need time to pass."""
    origin = time.monotonic()
    return lambda: start + timedelta(seconds=time.monotonic() - origin)


def plain(text: str) -> str:
    return text.replace("\u00a0", " ")


@pytest.fixture
def fake() -> Iterator[FakeBilling]:
    with FakeBilling() as server:
        assert isinstance(server, FakeBilling)
        server.add_account(NUMBER, last={"day": "12500", "night": "5300"}, last_date="2026-11-20")
        yield server


def billing_settings(url: str, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "type": "http",
        "url": url,
        "token": TOKEN,
        "timeout": 1.0,
        "submit_timeout": 1.0,
        "retries": 0,
        "breaker_failures": 3,
        "breaker_open_seconds": 0.3,
        "queue_retry_seconds": 0.2,
    }
    values.update(overrides)
    return values


@pytest.fixture
def server(fresh_database_url: str, fake: FakeBilling) -> Iterator[LiveServer]:
    clock.set_clock(running_from(START))
    live = LiveServer(make_settings(fresh_database_url, billing=billing_settings(fake.url)))
    live.start()
    yield live
    live.stop()


async def _rows(server: LiveServer) -> list[BillingSubmission]:
    async def read() -> list[BillingSubmission]:
        async with server.runtime.db.session() as session:
            return list(
                await session.scalars(select(BillingSubmission).order_by(BillingSubmission.id))
            )

    rows: list[BillingSubmission] = await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(read(), server.loop)  # type: ignore[arg-type]
    )
    return rows


async def _wait_accepted(fake: FakeBilling, count: int, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while len(fake.accepted) < count:
        assert time.monotonic() < deadline, f"billing got {len(fake.accepted)} submissions"
        await asyncio.sleep(0.05)


async def test_a_submission_reaches_billing_once_with_its_zones(
    server: LiveServer, fake: FakeBilling
) -> None:
    async with web_chat(server) as me:
        prompt = texts(await to_values(me, NUMBER))
        assert "12 500" in plain(prompt)  # the last readings billing told
        reply = plain(texts(await me.say("12650 5360")))
    assert "Показания приняты. Спасибо!" in reply
    assert "расход 150 кВт·ч" in reply
    assert "будут переданы" not in reply
    assert [p.json()["values"] for p in fake.posts] == [{"day": "12650", "night": "5360"}]
    assert fake.posts[0].json()["account"] == NUMBER
    assert fake.posts[0].json()["taken_on"] == TODAY.isoformat()
    fake.assert_no_more("/readings", 1, wait=1.0)  # the delivery loop sends nothing more
    assert [(r.state, r.conversation_id) for r in await _rows(server)] == [
        ("delivered", me.conversation_id)
    ]


async def test_with_billing_down_the_readings_are_accepted_and_arrive_once_later(
    server: LiveServer, fake: FakeBilling
) -> None:
    async with web_chat(server) as me:
        await to_values(me, NUMBER)
        fake.down = True
        reply = plain(texts(await me.say("12650 5360")))
        assert "Показания приняты и будут переданы в биллинг" in reply
        # Counted from the readings billing last told; the price is configured locally.
        assert "расход 150 кВт·ч" in reply
        assert "по последним известным показаниям" in reply
        rows = await _rows(server)
        assert [(r.state, r.readings) for r in rows] == [
            ("pending", {"day": "12650", "night": "5360"})
        ] or [r.state for r in rows] == ["delivering"]
        await asyncio.sleep(1.0)  # the loop tries meanwhile, and billing stays down
        assert fake.accepted == []
        fake.down = False
        await _wait_accepted(fake, 1)
    fake.assert_no_more("/readings", len(fake.posts), wait=1.5)
    assert len(fake.accepted) == 1
    assert fake.accepted[0]["values"] == {"day": "12650", "night": "5360"}
    ok = [p for p in fake.posts if p.json()["submission_id"] == fake.accepted[0]["submission_id"]]
    assert {p.headers["idempotency-key"] for p in ok} == {fake.accepted[0]["submission_id"]}
    rows = await _rows(server)
    assert [r.state for r in rows] == ["delivered"]

    async def delivered_events() -> list[dict[str, Any]]:
        async with server.runtime.db.session() as session:
            return [
                e.data
                for e in await session.scalars(
                    select(EventRecord).where(EventRecord.type == "readings.delivered_to_billing")
                )
            ]

    found = await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(delivered_events(), server.loop)  # type: ignore[arg-type]
    )
    assert [e["conversation_id"] for e in found] == [me.conversation_id]


async def test_readings_billing_refuses_later_are_shown_to_operators(
    server: LiveServer, fake: FakeBilling
) -> None:
    async with web_chat(server) as me:
        await to_values(me, NUMBER)
        fake.down = True
        reply = plain(texts(await me.say("12650 5360")))
        assert "будут переданы в биллинг" in reply
        # Meanwhile a controller's reading, higher, reached billing another way.
        fake.accounts[NUMBER]["last_readings"] = {
            "date": "2026-12-02",
            "values": {"day": "13000", "night": "5400"},
        }
        fake.down = False
        deadline = time.monotonic() + 15
        while not any(r.state == "rejected" for r in await _rows(server)):
            assert time.monotonic() < deadline, "the refusal was not recorded"
            await asyncio.sleep(0.1)
        # The customer's chat shows nothing of the operators' note.
        assert all("Биллинг не принял" not in m["text"] for m in await me.replies())
    assert fake.accepted == []

    async def notes() -> list[str]:
        async with server.runtime.db.session() as session:
            return list(
                await session.scalars(
                    select(Message.text).where(
                        Message.conversation_id == me.conversation_id, Message.author == "note"
                    )
                )
            )

    found = await asyncio.wrap_future(
        asyncio.run_coroutine_threadsafe(notes(), server.loop)  # type: ignore[arg-type]
    )
    assert len(found) == 1 and NUMBER in found[0] and "меньше принятого" in found[0]


async def test_a_customer_arriving_during_an_outage_is_told_honestly(
    server: LiveServer, fake: FakeBilling
) -> None:
    fake.down = True
    async with web_chat(server) as me:
        await me.press("readings")
        reply = texts(await me.say(NUMBER))
    assert "не удаётся получить данные лицевого счёта" in reply
    assert fake.posts == []


# --- the delivery loop alone: two processes, and one that died mid-delivery


def _http(db: Database, url: str) -> HttpBilling:
    return HttpBilling(
        BillingSettings(**billing_settings(url, breaker_failures=50)), db, TariffSettings()
    )


async def _queue(db: Database, count: int) -> list[str]:
    ids = []
    for i in range(count):
        sid = submission_key(None, 1000 + i)
        await enqueue(
            db,
            submission_id=sid,
            account_number=f"50000000{i:02d}",
            plan="single",
            values=[Decimal(2000 + i)],
            taken_on=TODAY,
            source="bot",
            replace=False,
            conversation_id=None,
        )
        ids.append(sid)
    return ids


async def test_two_delivery_loops_deliver_each_submission_once(
    fresh_database_url: str, fake: FakeBilling
) -> None:
    for i in range(12):
        fake.add_account(f"50000000{i:02d}", plan="single", last={"single": "1000"})
    one, two = Database(fresh_database_url), Database(fresh_database_url)
    first, second = _http(one, fake.url), _http(two, fake.url)
    loops = [ReadingsDelivery(one, LocalBus(), first), ReadingsDelivery(two, LocalBus(), second)]
    try:
        sids = await _queue(one, 12)
        fake.delay = 0.02  # deliveries overlap
        await asyncio.gather(*(loop.run_once() for loop in loops), loops[0].run_once())
        while any(await asyncio.gather(*(loop.run_once() for loop in loops))):
            pass
    finally:
        await first.close()
        await second.close()
    assert sorted(b["submission_id"] for b in fake.accepted) == sorted(sids)
    assert len(fake.posts) == 12  # none was sent twice
    async with one.session() as session:
        states = list(await session.scalars(select(BillingSubmission.state)))
    assert states == ["delivered"] * 12
    await one.dispose()
    await two.dispose()


async def test_a_loop_that_died_mid_delivery_is_taken_over_and_billing_stores_once(
    fresh_database_url: str, fake: FakeBilling
) -> None:
    fake.add_account("5000000000", plan="single", last={"single": "1000"})
    now = [START]
    clock.set_clock(lambda: now[0])
    db = Database(fresh_database_url)
    dead_billing, live_billing = _http(db, fake.url), _http(db, fake.url)
    dead = ReadingsDelivery(db, LocalBus(), dead_billing)
    live = ReadingsDelivery(db, LocalBus(), live_billing)
    try:
        [sid] = await _queue(db, 1)
        # The dead process claimed the row and got it to billing, then was killed
        # before it wrote the outcome.
        [claimed] = await dead._claim("dead-process-token")
        assert (await dead_billing.deliver(claimed)).status == "accepted"
        assert not await live.run_once()  # its lease still holds
        now[0] += timedelta(seconds=31)
        assert await live.run_once()  # taken over: sent again with the same key
        # The dead process's late write changes nothing.
        await dead._record("dead-process-token", claimed, await dead_billing.deliver(claimed))
    finally:
        await dead_billing.close()
        await live_billing.close()
    assert [p.headers["idempotency-key"] for p in fake.posts] == [sid] * 3
    assert [b["submission_id"] for b in fake.accepted] == [sid]
    async with db.session() as session:
        rows = list(await session.scalars(select(BillingSubmission)))
        delivered = list(
            await session.scalars(
                select(EventRecord).where(EventRecord.type == "readings.delivered_to_billing")
            )
        )
    assert [(r.state, r.attempts) for r in rows] == [("delivered", 2)]
    assert len(delivered) == 1
    await db.dispose()


def test_a_turn_handled_again_submits_under_the_same_id() -> None:
    assert submission_key(7, 42) == submission_key(7, 42)
    assert submission_key(7, 42) != submission_key(7, 43)
    assert submission_key(7, None) != submission_key(7, None)


async def test_a_correction_waits_behind_the_queued_readings_it_corrects(
    db: Database, fake: FakeBilling
) -> None:
    billing = _http(db, fake.url)
    loop = ReadingsDelivery(db, LocalBus(), billing)
    try:
        assert await billing.get_account(NUMBER) is not None  # the customer's account step
        fake.down = True
        first = await billing.submit_readings(
            NUMBER, [Decimal("12700"), Decimal("5360")], TODAY, source="bot"
        )
        fake.down = False
        # The customer corrects a typo: billing is up, but the first readings are not there.
        earlier = await billing.period_submission(NUMBER, TODAY)
        assert earlier is not None and earlier.values == (Decimal("12700.000"), Decimal("5360.000"))
        second = await billing.submit_readings(
            NUMBER, [Decimal("12650"), Decimal("5360")], TODAY, source="bot", replace=True
        )
        posted_meanwhile = [p.json() for p in fake.posts if p.json().get("replace")]
        while await loop.run_once():
            pass
    finally:
        await billing.close()
    assert first.queued and second.queued
    assert posted_meanwhile == []  # it did not overtake the first
    assert [(b["values"]["day"], b["replace"]) for b in fake.accepted] == [
        ("12700", False),
        ("12650", True),
    ]
    assert fake.accounts[NUMBER]["last_readings"]["values"] == {"day": "12650", "night": "5360"}
