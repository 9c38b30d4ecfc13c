"""Outgoing webhooks through the real server: a web-chat customer submits readings and
the company's receiver (a fake on 127.0.0.1) gets ``readings.submitted``, signed so the
snippet of docs/webhooks.md accepts it; retries, 429s, 410s, a receiver down for hours,
the admin's re-enabling, two senders racing and a sender killed mid-request.

The clock stands still (``support.Clock``) and moves only when a test moves it, so
backoff and the 24-hour rules are exercised with the real policy and no long sleeps.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select

from abonent import clock
from abonent.automation.webhooks import (
    Policy,
    WebhookConsumer,
    WebhookSender,
    ensure_endpoints,
)
from abonent.billing.csv_import import import_accounts
from abonent.config import Settings, WebhookSettings
from abonent.core.bus import LocalBus
from abonent.core.eventlog import StoredEvent
from abonent.core.metrics import Metrics
from abonent.db.models import WebhookDelivery, WebhookEndpointState
from abonent.db.session import Database
from abonent.operators.users import add_user
from conftest import require_postgres
from fakes.base import Recorded, Reply
from fakes.webhook_receiver import FakeWebhookReceiver
from support import (
    PASSWORD,
    Clock,
    LiveServer,
    Operator,
    make_settings,
    moscow,
    on_server,
    to_values,
    web_chat,
)

SECRET = "whsec-test-6f2b9d1e"
ACCOUNTS_CSV = """account,holder,address,plan,t1,t2,t3,readings_date,balance,phone
1000000002,Петрова Анна Сергеевна,"г. Энск, ул. Мира, д. 3, кв. 12",single,8500,,,2026-10-25,0,
1000000003,Сидоров Пётр Ильич,"г. Энск, ул. Мира, д. 5, кв. 1",single,4200,,,2026-10-25,0,
"""
FIRST, SECOND = "1000000002", "1000000003"
DOCS = Path(__file__).resolve().parents[2] / "docs" / "webhooks.md"


# --------------------------------------------------------------------------- helpers
def documented_verify() -> Callable[..., bool]:
    """The receiver's check exactly as docs/webhooks.md prints it."""
    text = DOCS.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    source = next(b for b in blocks if "def verify(" in b)
    namespace: dict[str, Any] = {}
    exec(source, namespace)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def signed_ok(post: Recorded, at: float) -> bool:
    return documented_verify()(
        SECRET,
        post.body,
        post.headers["x-abonent-timestamp"],
        post.headers["x-abonent-signature"],
        now=at,
    )


@dataclass
class World:
    server: LiveServer
    receiver: FakeWebhookReceiver
    now: Clock


def start_world(
    database_url: str,
    tmp_path: Path,
    receiver: FakeWebhookReceiver,
    now: Clock,
    *webhooks: dict[str, Any],
) -> LiveServer:
    """The server on the two test accounts, Ольга (admin) and Анна (operator), and
    ``webhooks`` (default: one ``crm`` endpoint at the receiver wanting ``readings.*``)."""
    csv = tmp_path / "accounts.csv"
    csv.write_text(ACCOUNTS_CSV, encoding="utf-8")

    async def seed() -> None:
        db = Database(database_url)
        try:
            report = await import_accounts(db, csv)
            assert report.loaded == 2 and not report.errors
            await add_user(db, "olga", PASSWORD, name="Ольга Админ", role="admin")
            await add_user(db, "anna", PASSWORD, name="Анна")
        finally:
            await db.dispose()

    asyncio.run(seed())
    clock.set_clock(now)
    endpoints = list(webhooks) or [
        {"id": "crm", "url": receiver.endpoint, "secret": SECRET, "events": ["readings.*"]}
    ]
    return LiveServer(make_settings(database_url, webhooks=endpoints)).start()


@pytest.fixture
def receiver() -> Iterator[FakeWebhookReceiver]:
    fake = FakeWebhookReceiver().start()
    yield fake
    fake.stop()


@pytest.fixture
def now() -> Clock:
    # Monday 23 November 2026, noon in Moscow: inside the readings window.
    return Clock(moscow(2026, 11, 23, 12, 0))


@pytest.fixture
def world(
    fresh_database_url: str, tmp_path: Path, receiver: FakeWebhookReceiver, now: Clock
) -> Iterator[World]:
    server = start_world(fresh_database_url, tmp_path, receiver, now)
    yield World(server, receiver, now)
    server.stop()


async def submit(server: LiveServer, number: str, values: str) -> None:
    async with web_chat(server) as me:
        await to_values(me, number)
        replies = await me.say(values)
    assert any(m["text"].startswith("Показания приняты") for m in replies), replies


async def stored(server: LiveServer) -> list[WebhookDelivery]:
    async def load() -> list[WebhookDelivery]:
        async with server.runtime.db.session() as session:
            return list(await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.id)))

    result: list[WebhookDelivery] = await on_server(server, load())
    return result


async def endpoint_state(server: LiveServer, endpoint_id: str = "crm") -> WebhookEndpointState:
    async def load() -> WebhookEndpointState | None:
        async with server.runtime.db.session() as session:
            return await session.get(WebhookEndpointState, endpoint_id)

    state = await on_server(server, load())
    assert state is not None
    return state  # type: ignore[no-any-return]


async def kick(server: LiveServer) -> None:
    """Queue what the log holds and post everything due now, waiting for the outcomes
    (whether this call or the background loop of the server claimed them)."""

    async def run() -> None:
        sender = server.runtime.webhooks
        assert sender is not None
        await server.runtime.consumers.catch_up()
        for _ in range(100):
            await sender.run_once()
            await sender.idle()
            async with server.runtime.db.session() as session:
                due = await session.scalar(
                    select(WebhookDelivery.id).where(
                        (WebhookDelivery.status == "delivering")
                        | (
                            (WebhookDelivery.status == "pending")
                            & (WebhookDelivery.next_attempt_at <= clock.utcnow())
                            & ~WebhookDelivery.endpoint_id.in_(
                                select(WebhookEndpointState.endpoint_id).where(
                                    WebhookEndpointState.disabled_at.is_not(None)
                                )
                            )
                        )
                    )
                )
            if due is None:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("webhook deliveries stayed due")

    await on_server(server, run())


async def admin(server: LiveServer, login: str = "olga") -> Operator:
    person = Operator(server, login)
    assert (await person.login()).status_code == 200
    return person


async def enable(person: Operator, webhook: str = "crm") -> httpx.Response:
    return await person.http.post(
        f"/api/admin/v1/integrations/webhooks/{webhook}/enable",
        headers={"X-CSRF-Token": person.csrf},
    )


# --------------------------------------------------------------------------- the bar
async def test_submitted_readings_reach_the_receiver_signed(world: World) -> None:
    server, receiver, now = world.server, world.receiver, world.now
    await submit(server, FIRST, "8600")
    await kick(server)

    posts = receiver.wait_posts(1)
    assert len(posts) == 1  # readings.* only: the messages of the chat are not sent
    post = posts[0]
    event = json.loads(post.body)
    assert event["type"] == "readings.submitted"
    assert event["data"]["account"] == FIRST
    assert event["data"]["consumption"] == "100.000"
    assert event["data"]["replaced"] is False
    assert isinstance(event["event_id"], int)
    assert event["occurred_at"].startswith("2026-11-23T09:00:00")
    assert post.headers["x-abonent-event"] == "readings.submitted"
    assert post.headers["x-abonent-delivery"] == event["id"]
    assert post.headers["x-abonent-attempt"] == "1"
    assert post.headers["content-type"].startswith("application/json")
    assert post.headers["x-abonent-timestamp"] == str(int(now.now.timestamp()))

    # The documented snippet accepts it, and refuses a change to the body, another
    # secret, or the same request replayed ten minutes later.
    at = now.now.timestamp()
    assert signed_ok(post, at)
    verify = documented_verify()
    ts, sig = post.headers["x-abonent-timestamp"], post.headers["x-abonent-signature"]
    assert not verify(
        SECRET, post.body.replace(b"8600", b"8601").replace(b"100", b"900"), ts, sig, now=at
    )
    assert not verify("another-secret", post.body, ts, sig, now=at)
    assert not verify(SECRET, post.body, ts, sig, now=at + 600)

    rows = await stored(server)
    assert [(r.status, r.attempts, r.last_status_code) for r in rows] == [("delivered", 1, 200)]
    assert rows[0].delivery_id == event["id"]
    receiver.assert_no_more("/hooks/abonent", 1, wait=1.2)
    state = await endpoint_state(server)
    assert state.last_success_at == now.now and state.disabled_at is None

    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{server.url}/metrics")).text
    assert 'abonent_webhook_deliveries_total{endpoint="crm",outcome="delivered"} 1.0' in metrics
    assert 'abonent_webhook_backlog{endpoint="crm"} 0.0' in metrics
    assert 'abonent_webhook_disabled{endpoint="crm"} 0.0' in metrics


async def test_retries_keep_the_delivery_id_and_honour_retry_after(world: World) -> None:
    server, receiver, now = world.server, world.receiver, world.now
    receiver.answer_next(
        Reply(500, {"error": "database is down"}),
        Reply(429, {"error": "slow down"}, headers={"Retry-After": "120"}),
    )
    await submit(server, FIRST, "8600")
    await kick(server)
    assert len(receiver.wait_posts(1)) == 1
    [row] = await stored(server)
    assert (row.status, row.attempts, row.last_status_code, row.last_error) == (
        "pending",
        1,
        500,
        "HTTP 500",
    )
    # The first retry comes about 10 s later (±20 %), not before.
    wait = (row.next_attempt_at - now.now).total_seconds()
    assert 8 <= wait <= 12
    now.advance(wait - 1)
    await kick(server)
    assert len(receiver.posts) == 1
    now.advance(1)
    await kick(server)
    assert len(receiver.wait_posts(2)) == 2
    [row] = await stored(server)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 2, 429)
    assert row.next_attempt_at == now.now + timedelta(seconds=120)  # Retry-After, exactly
    now.advance(119)
    await kick(server)
    assert len(receiver.posts) == 2
    now.advance(1)
    await kick(server)
    posts = receiver.wait_posts(3)

    assert len({p.headers["x-abonent-delivery"] for p in posts}) == 1
    assert len({p.body for p in posts}) == 1  # the same bytes every time
    assert [p.headers["x-abonent-attempt"] for p in posts] == ["1", "2", "3"]
    assert signed_ok(posts[-1], now.now.timestamp())
    [row] = await stored(server)
    assert (row.status, row.attempts, row.last_status_code) == ("delivered", 3, 200)
    assert row.last_error == "HTTP 429 Too Many Requests"  # the log keeps the last failure
    receiver.assert_no_more("/hooks/abonent", 3, wait=1.2)
    state = await endpoint_state(server)
    assert state.consecutive_failures == 0 and state.failing_since is None


async def test_gone_disables_until_an_admin_re_enables(world: World) -> None:
    server, receiver, now = world.server, world.receiver, world.now
    receiver.answer_next(Reply(410, {"error": "gone"}))
    await submit(server, FIRST, "8600")
    await kick(server)
    first = receiver.wait_posts(1)[0].headers["x-abonent-delivery"]
    state = await endpoint_state(server)
    assert state.disabled_at == now.now
    assert state.disabled_reason == "the receiver answered 410 Gone"

    # Disabled: what happens now is queued, not sent (and not lost).
    await submit(server, SECOND, "4300")
    now.advance(3600)
    await kick(server)
    assert receiver.quiet_for(1.2) == 0 and len(receiver.posts) == 1
    rows = await stored(server)
    assert [r.status for r in rows] == ["pending", "pending"]

    # An operator may see neither the view nor the button.
    anna = await admin(server, "anna")
    assert (await anna.http.get("/api/admin/v1/integrations")).status_code == 403
    assert (await enable(anna)).status_code == 403
    assert (await anna.http.get("/operator/integrations")).status_code == 403
    await anna.http.aclose()

    olga = await admin(server)
    view = (await olga.http.get("/api/admin/v1/integrations")).json()
    [hook] = view["webhooks"]
    assert hook["id"] == "crm" and hook["host"] == f"127.0.0.1:{receiver.port}"
    assert hook["state"] == "disabled" and "410" in hook["disabled_reason"]
    assert hook["backlog"] == 2 and hook["events"] == ["readings.*"]
    assert hook["recent_failures"][0]["last_status_code"] == 410
    assert hook["recent_failures"][0]["delivery_id"] == first
    assert view["alerts"] == [
        {"webhook": "crm", "since": hook["disabled_at"], "reason": hook["disabled_reason"]}
    ]
    assert view["hooks"]["error"] is None
    # Without the CSRF token of the session, nothing changes.
    assert (
        await olga.http.post("/api/admin/v1/integrations/webhooks/crm/enable")
    ).status_code == 403
    assert (
        await olga.http.post(
            "/api/admin/v1/integrations/webhooks/nope/enable", headers={"X-CSRF-Token": olga.csrf}
        )
    ).status_code == 404

    done = await enable(olga)
    assert done.status_code == 200
    assert done.json()["resumed"] == 2 and done.json()["webhook"]["state"] == "active"
    await kick(server)
    posts = receiver.wait_posts(3)
    assert (
        posts[1].headers["x-abonent-delivery"] == first
        or posts[2].headers["x-abonent-delivery"] == first
    )  # the one the 410 answered went again, with its id
    assert {json.loads(p.body)["data"]["account"] for p in posts[1:]} == {FIRST, SECOND}
    assert all(signed_ok(p, now.now.timestamp()) for p in posts[1:])  # signed afresh
    assert [r.status for r in await stored(server)] == ["delivered", "delivered"]
    after = (await olga.http.get("/api/admin/v1/integrations")).json()
    assert after["alerts"] == [] and after["webhooks"][0]["backlog"] == 0
    log = (await olga.http.get("/api/admin/v1/integrations/webhooks/crm/deliveries")).json()
    assert [d["status"] for d in log["deliveries"]] == ["delivered", "delivered"]
    assert {d["attempts"] for d in log["deliveries"]} == {1, 2}
    await olga.http.aclose()


async def test_a_receiver_down_for_hours_is_disabled_and_nothing_is_lost(world: World) -> None:
    server, receiver, now = world.server, world.receiver, world.now
    receiver.always(Reply(503, {"error": "maintenance"}))
    await submit(server, FIRST, "8600")
    started = now.now
    await kick(server)
    attempts = 1
    while (await endpoint_state(server)).disabled_at is None:
        [row] = await stored(server)
        assert row.status == "pending"
        gap = row.next_attempt_at - now.now
        assert gap <= timedelta(hours=1, minutes=12)  # never more than an hour (+20 %)
        now.now = row.next_attempt_at
        await kick(server)
        attempts += 1
        assert attempts < 40
    state = await endpoint_state(server)
    assert now.now - started >= timedelta(hours=12)
    assert state.consecutive_failures >= 10 and state.consecutive_failures == attempts
    assert state.disabled_reason is not None
    # Checked at each retry, and retries are up to an hour (+20 %) apart.
    failing = re.search(r"every attempt failed for ([\d.]+) h", state.disabled_reason)
    assert failing is not None, state.disabled_reason
    assert 12 <= float(failing.group(1)) <= 13.2
    assert "HTTP 503" in state.disabled_reason
    [row] = await stored(server)
    assert row.status == "pending"  # waits for the admin, not given up

    # Two days pass while it is disabled: nothing is tried, nothing expires.
    now.advance(48 * 3600)
    await kick(server)
    assert receiver.quiet_for(1.2) == 0
    receiver.always(Reply(204))
    olga = await admin(server)
    assert (await enable(olga)).json()["resumed"] == 1
    await olga.http.aclose()
    await kick(server)
    [row] = await stored(server)
    assert row.status == "delivered" and row.attempts == attempts + 1
    assert row.last_status_code == 204


async def test_a_delivery_failing_for_a_day_is_given_up_and_kept(world: World) -> None:
    server, receiver, now = world.server, world.receiver, world.now
    sender = server.runtime.webhooks
    assert sender is not None
    sender.policy = Policy(disable_after=timedelta(days=30))  # only the delivery's own rule
    receiver.always(Reply(500))
    await submit(server, FIRST, "8600")
    first_attempt = now.now
    await kick(server)
    while True:
        [row] = await stored(server)
        if row.status != "pending":
            break
        now.now = row.next_attempt_at
        await kick(server)
    assert row.status == "failed"
    assert row.last_attempt_at is not None
    assert row.last_attempt_at - first_attempt >= timedelta(hours=24)
    assert row.last_attempt_at - first_attempt < timedelta(hours=26)
    assert 25 <= row.attempts <= 40
    assert len(receiver.posts) == row.attempts
    now.advance(7 * 24 * 3600)
    await kick(server)
    assert receiver.quiet_for(1.2) == 0  # failed is final
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{server.url}/metrics")).text
    assert 'abonent_webhook_deliveries_total{endpoint="crm",outcome="failed"} 1.0' in metrics


@pytest.fixture
def slow_world(
    fresh_database_url: str, tmp_path: Path, receiver: FakeWebhookReceiver, now: Clock
) -> Iterator[World]:
    """An endpoint that gives the receiver 0.3 s per attempt."""
    hook = {
        "id": "slow",
        "url": receiver.endpoint,
        "secret": SECRET,
        "events": ["readings.submitted"],
        "timeout": 0.3,
    }
    server = start_world(fresh_database_url, tmp_path, receiver, now, hook)
    yield World(server, receiver, now)
    server.stop()


async def test_a_slow_receiver_times_out_and_is_retried(slow_world: World) -> None:
    server, receiver, now = slow_world.server, slow_world.receiver, slow_world.now
    receiver.delay = 1.0
    await submit(server, FIRST, "8600")
    await kick(server)
    [row] = await stored(server)
    assert (row.status, row.attempts, row.last_status_code) == ("pending", 1, None)
    assert row.last_error == "no answer within 0.3 s"
    receiver.delay = 0
    now.advance(15)
    await kick(server)
    [row] = await stored(server)
    assert (row.status, row.attempts) == ("delivered", 2)


# --------------------------------------------------------------------------- several senders
def _events(count: int, start: int = 1, at: datetime | None = None) -> list[StoredEvent]:
    at = at or clock.utcnow()
    return [
        StoredEvent(i, 0, "readings.submitted", at, None, {"conversation_id": i})
        for i in range(start, start + count)
    ]


async def _queue(db: Database, endpoint: WebhookSettings, count: int) -> None:
    async with db.write() as conn:
        await WebhookConsumer([endpoint]).apply(conn, _events(count))


def _endpoint(receiver: FakeWebhookReceiver) -> WebhookSettings:
    return WebhookSettings(
        id="crm", url=receiver.endpoint, secret=SECRET, events=["readings.submitted"]
    )


async def test_a_sender_killed_mid_request_is_taken_over_after_its_lease(
    fresh_database_url: str, receiver: FakeWebhookReceiver, now: Clock
) -> None:
    clock.set_clock(now)
    endpoint = _endpoint(receiver)
    db_a, db_b = Database(fresh_database_url), Database(fresh_database_url)
    a = WebhookSender(db_a, LocalBus(), [endpoint])
    b = WebhookSender(db_b, LocalBus(), [endpoint])
    try:
        async with db_a.write() as conn:
            await ensure_endpoints(conn, ["crm"])
        await _queue(db_a, endpoint, 3)
        receiver.delay = 5.0  # the requests hang; the fake records them only on answering
        assert await a.run_once() == 3
        await asyncio.sleep(0.2)
        for task in list(a._tasks):  # SIGKILL: nothing of the process runs any more
            task.cancel()
        await asyncio.gather(*a._tasks, return_exceptions=True)
        receiver.delay = 0
        assert await b.run_once() == 0  # the dead process's leases still hold
        now.advance(11)
        assert await b.run_once() == 3
        await b.idle()
        async with db_b.session() as session:
            rows = list(await session.scalars(select(WebhookDelivery)))
        assert {(r.status, r.attempts) for r in rows} == {("delivered", 2)}
        posts = receiver.wait_posts(3)
        assert sorted(p.headers["x-abonent-delivery"] for p in posts) == sorted(
            r.delivery_id for r in rows
        )
        assert {p.headers["x-abonent-attempt"] for p in posts} == {"2"}
    finally:
        await a.stop()
        await b.stop()
        await db_a.dispose()
        await db_b.dispose()


@pytest.mark.services
async def test_two_senders_racing_deliver_each_once(
    fresh_database_url: str, receiver: FakeWebhookReceiver
) -> None:
    require_postgres()
    endpoint = _endpoint(receiver)
    dbs = [Database(fresh_database_url), Database(fresh_database_url)]
    counted = [Metrics(LocalBus()), Metrics(LocalBus())]
    senders = [
        WebhookSender(db, LocalBus(), [endpoint], metrics=m, poll=0.05, in_flight=8)
        for db, m in zip(dbs, counted, strict=True)
    ]
    receiver.delay = 0.05  # long enough for both to have requests out at once
    try:
        for s in senders:
            await s.start()
        await _queue(dbs[0], endpoint, 60)
        for s in senders:
            s.wake()
        # Waited for on this loop: the senders run on it (the fake's own waits would block it).
        for _ in range(600):
            if len(receiver.posts) >= 60:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        posts = receiver.posts
        assert len(posts) == 60
        ids = [p.headers["x-abonent-delivery"] for p in posts]
        assert len(set(ids)) == 60
        async with dbs[0].session() as session:
            rows = list(await session.scalars(select(WebhookDelivery)))
        assert {(r.status, r.attempts) for r in rows} == {("delivered", 1)}
        shares = [m.webhook_deliveries.labels("crm", "delivered")._value.get() for m in counted]
        assert sum(shares) == 60 and min(shares) > 0, shares  # both took part
    finally:
        for s in senders:
            await s.stop()
        for db in dbs:
            await db.dispose()


async def test_an_event_is_queued_once_and_history_is_not_sent(
    db: Database, receiver: FakeWebhookReceiver, now: Clock
) -> None:
    """Queued in the consumer's transaction: read again (a rebuild, a reset cursor), it
    is not queued twice; and an endpoint added later does not get the past."""
    clock.set_clock(now)
    endpoint = _endpoint(receiver)
    happened = now.now
    await _queue(db, endpoint, 2)
    await _queue(db, endpoint, 2)  # the same events again
    now.advance(60)
    late = WebhookSettings(id="late", url=receiver.endpoint, secret=SECRET, events=["*"])
    async with db.write() as conn:
        await WebhookConsumer([endpoint, late]).apply(conn, _events(2, at=happened))
        await WebhookConsumer([endpoint, late]).apply(conn, _events(1, start=3))
    async with db.session() as session:
        rows = list(await session.scalars(select(WebhookDelivery)))
    assert sorted((r.endpoint_id, r.event_id) for r in rows) == [
        ("crm", 1),
        ("crm", 2),
        ("crm", 3),
        ("late", 3),  # what happened after it was added
    ]
    assert len({r.delivery_id for r in rows}) == 4


async def test_the_log_keeps_what_waits_and_prunes_what_is_old(
    db: Database, receiver: FakeWebhookReceiver, now: Clock
) -> None:
    clock.set_clock(now)
    endpoint = _endpoint(receiver)
    off = WebhookSettings(
        id="off", url=receiver.endpoint, secret=SECRET, events=["*"], enabled=False
    )
    async with db.write() as conn:
        await ensure_endpoints(conn, ["crm"])
        await WebhookConsumer([endpoint, off]).apply(conn, _events(4))
    sender = WebhookSender(db, LocalBus(), [endpoint, off])
    try:
        assert await sender.run_once() == 4
        await sender.idle()
        receiver.fail_next("/hooks/abonent", Reply(500))
        async with db.write() as conn:
            await WebhookConsumer([endpoint, off]).apply(conn, _events(2, start=5))
        assert await sender.run_once() == 2
        await sender.idle()
        async with db.session() as session:
            statuses = sorted(r.status for r in await session.scalars(select(WebhookDelivery)))
        # Switched off in the configuration: nothing was queued for it.
        assert statuses == ["delivered"] * 5 + ["pending"]
        now.advance(29 * 24 * 3600)
        assert await sender.prune() == 0
        now.advance(2 * 24 * 3600)
        assert await sender.prune() == 5  # delivered, 31 days old; the waiting one stays
        async with db.session() as session:
            left = list(await session.scalars(select(WebhookDelivery)))
        assert [(r.status, r.event_id in (5, 6)) for r in left] == [("pending", True)]
    finally:
        await sender.stop()


# --------------------------------------------------------------------------- settings
def _hook(**values: Any) -> dict[str, Any]:
    return {"id": "crm", "url": "https://crm.example.ru/in", "secret": "s", **values}


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"events": ["readings.sent"]}, "matches no event type"),
        ({"events": ["billing.*"]}, "matches no event type"),
        ({"events": []}, "at least 1"),
        ({"url": "ftp://crm.example.ru/in", "events": ["*"]}, "http:// or https://"),
        ({"url": "crm.example.ru/in", "events": ["*"]}, "http:// or https://"),
        ({"secret": "", "events": ["*"]}, "at least 1 character"),
        ({"secret": "   ", "events": ["*"]}, "must not be blank"),
        ({"id": "c r m", "events": ["*"]}, "pattern"),
        ({"timeout": 0, "events": ["*"]}, "greater than 0"),
    ],
)
def test_a_wrong_webhook_setting_fails_at_start(values: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(webhooks=[_hook(**values)])


def test_webhooks_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "ABONENT_WEBHOOKS",
        json.dumps([_hook(events=["readings.*", "appeal.created"], timeout=3)]),
    )
    [hook] = Settings().webhooks
    assert hook.wants("readings.submitted") and hook.wants("appeal.created")
    assert not hook.wants("message.received")
    assert hook.timeout == 3 and hook.enabled


def test_webhook_ids_are_unique() -> None:
    with pytest.raises(ValidationError, match="unique: crm"):
        Settings(webhooks=[_hook(events=["*"]), _hook(events=["readings.*"])])
