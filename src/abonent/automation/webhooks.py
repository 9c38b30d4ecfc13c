"""Outgoing webhooks: events posted, signed, to the company's own endpoints.

Two halves, joined by a table. ``WebhookConsumer`` is a durable consumer of the event
log: in the transaction that moves its cursor it queues one ``webhook_deliveries`` row
per (endpoint, event) wanted, so an event is queued exactly once however processes
crash. ``WebhookSender`` posts those rows, as the outbox sender posts messages: a row is
claimed under a short lease (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several
processes share the work without doubling it) that a heartbeat renews while the request
is on the wire; a process killed mid-request gives its rows up when the lease runs out.
The receiver may therefore see a delivery twice (at least once, never lost): it dedupes
on the delivery id, which is stored with the row and the same on every try.

A failing delivery is retried at growing intervals for at least ``Policy.retry_for``
from its first attempt, then marked failed (kept in the log). An endpoint that fails
every attempt for ``Policy.disable_after`` (or answers 410 Gone) is disabled in
``webhook_endpoints``: its deliveries wait, not lost, until an admin re-enables it. What
is sent, and how a receiver checks the signature: docs/webhooks.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import random
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent import __version__
from abonent.clock import utcnow
from abonent.config import WebhookSettings
from abonent.core.bus import LocalBus
from abonent.core.eventlog import StoredEvent
from abonent.core.metrics import Metrics
from abonent.core.worker import Worker
from abonent.db.models import WebhookDelivery, WebhookEndpointState
from abonent.db.session import Database
from abonent.logs import mask_pii

log = logging.getLogger(__name__)

CONSUMER = "webhooks"

SIGNATURE_HEADER = "X-Abonent-Signature"
TIMESTAMP_HEADER = "X-Abonent-Timestamp"
DELIVERY_HEADER = "X-Abonent-Delivery"
EVENT_HEADER = "X-Abonent-Event"
ATTEMPT_HEADER = "X-Abonent-Attempt"

# A dead process's rows are taken over once this runs out; a live one renews it.
LEASE = timedelta(seconds=10)
RENEW_EVERY = 3.0
# On a graceful stop, how long requests on the wire may finish and be recorded.
STOP_GRACE = 5.0
# Requests on the wire at once per endpoint: a slow receiver holds only its own slots.
IN_FLIGHT = 4

PENDING, DELIVERING, DELIVERED, FAILED = "pending", "delivering", "delivered", "failed"
WAITING = (PENDING, DELIVERING)


@dataclass(frozen=True)
class Policy:
    """How hard to try. Tests shorten the intervals; deployments keep the defaults."""

    # The first retry comes this long after a failure; each later one about as long
    # after as the time already spent retrying (so the gaps double), up to ``max_delay``.
    first_delay: timedelta = timedelta(seconds=10)
    max_delay: timedelta = timedelta(hours=1)
    # A delivery still failing this long after its first attempt is given up (failed).
    retry_for: timedelta = timedelta(hours=24)
    # An endpoint whose every attempt failed for this long, at least this many in a
    # row, is disabled; its deliveries wait for an admin to re-enable it.
    disable_after: timedelta = timedelta(hours=12)
    disable_min_failures: int = 10
    # The longest wait a 429's Retry-After is honoured for.
    max_retry_after: timedelta = timedelta(hours=6)
    # How long the delivery log keeps rows.
    keep_delivered: timedelta = timedelta(days=30)
    keep_failed: timedelta = timedelta(days=90)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: HMAC-SHA256 over ``"<timestamp>.<body>"``, so a
    captured request cannot be replayed later with a fresh timestamp."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def payload(delivery_id: str, event: StoredEvent) -> str:
    """The JSON body, made once when queued: every retry sends the same bytes."""
    return json.dumps(
        {
            "id": delivery_id,
            "type": event.type,
            "occurred_at": event.occurred_at.isoformat(),
            "event_id": event.id,
            "data": event.data,
        },
        ensure_ascii=False,
        separators=(",", ":"),
        default=str,
    )


def _insert(conn: AsyncConnection) -> Any:
    return postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert


async def ensure_endpoints(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, datetime]:
    """Each endpoint's state row (made when it is first seen: events from then on are
    its, not the history before it); returns when each was first seen."""
    if not ids:
        return {}
    now = utcnow()
    await conn.execute(
        _insert(conn)(WebhookEndpointState)
        .values([{"endpoint_id": i, "created_at": now, "updated_at": now} for i in ids])
        .on_conflict_do_nothing()
    )
    rows = await conn.execute(
        select(WebhookEndpointState.endpoint_id, WebhookEndpointState.created_at).where(
            WebhookEndpointState.endpoint_id.in_(list(ids))
        )
    )
    return {r[0]: r[1] for r in rows}


class WebhookConsumer:
    """Queues the deliveries: a durable consumer of the event log (core.eventlog)."""

    name = CONSUMER

    def __init__(
        self, endpoints: Sequence[WebhookSettings], on_queued: Callable[[], None] | None = None
    ) -> None:
        self.endpoints = [e for e in endpoints if e.enabled]
        # Wakes the sender; it may run before this transaction commits, then the
        # sender's poll finds the rows a moment later.
        self.on_queued = on_queued

    async def apply(self, conn: AsyncConnection, events: list[StoredEvent]) -> None:
        wanted = [(ep, e) for e in events for ep in self.endpoints if ep.wants(e.type)]
        if not wanted:
            return
        since = await ensure_endpoints(conn, sorted({ep.id for ep, _ in wanted}))
        now = utcnow()
        rows: list[dict[str, Any]] = []
        for ep, event in wanted:
            if event.occurred_at < since[ep.id]:
                continue
            delivery_id = str(uuid.uuid4())
            rows.append(
                {
                    "delivery_id": delivery_id,
                    "endpoint_id": ep.id,
                    "event_id": event.id,
                    "event_type": event.type,
                    "body": payload(delivery_id, event),
                    "status": PENDING,
                    "attempts": 0,
                    "created_at": now,
                    "next_attempt_at": now,
                }
            )
        if not rows:
            return
        # Read again after a rebuild or a cursor reset: the first row queued stays.
        await conn.execute(_insert(conn)(WebhookDelivery).values(rows).on_conflict_do_nothing())
        if self.on_queued is not None:
            asyncio.get_running_loop().call_soon(self.on_queued)


@dataclass
class _Claimed:
    id: int
    delivery_id: str
    endpoint: WebhookSettings
    event_type: str
    body: bytes
    attempts: int
    first_attempt_at: datetime


@dataclass
class _Result:
    status: int | None = None
    error: str | None = None
    retry_after: float | None = None


class WebhookSender(Worker):
    """Posts the queued deliveries; one per process, any number of processes."""

    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        endpoints: Sequence[WebhookSettings],
        *,
        metrics: Metrics | None = None,
        policy: Policy | None = None,
        poll: float = 1.0,
        renew_every: float = RENEW_EVERY,
        in_flight: int = IN_FLIGHT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # Nothing on the bus means work: the consumer wakes it, and it polls.
        super().__init__(
            bus,
            set(),
            name="webhook-sender",
            poll=poll,
            gather=0.05,
            logger=log,
            failure="webhook pass failed",
            eager=True,
        )
        self.db = db
        self.endpoints = {e.id: e for e in endpoints}
        self.metrics = metrics
        # Tests replace it (shorter intervals); read on every decision.
        self.policy = policy or Policy()
        self.renew_every = renew_every
        self.in_flight = in_flight
        self._client = httpx.AsyncClient(
            transport=transport,
            follow_redirects=False,
            headers={"User-Agent": f"Abonent/{__version__} (webhooks)"},
        )
        self._busy: dict[str, int] = {}
        # Rows this process holds on the wire: the heartbeat renews their leases.
        self._held: set[int] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False
        self._last_prune = 0.0

    # ------------------------------------------------------------------ life cycle
    async def start(self) -> None:
        async with self.db.write() as conn:
            await ensure_endpoints(conn, [e.id for e in self.endpoints.values() if e.enabled])
        self._heartbeat = asyncio.create_task(self._renew_loop(), name="webhook-lease")
        await super().start()

    async def stop(self) -> None:
        """Requests on the wire may finish (for ``STOP_GRACE``) and are recorded; what
        is still out then is cut off and retried by whoever takes its lease over."""
        self._stopping = True
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE)
            for task in late:
                task.cancel()
            if late:
                log.warning("stopping with %d webhook requests still out", len(late))
                await asyncio.gather(*late, return_exceptions=True)
        await super().stop()
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heartbeat
        await self._client.aclose()

    async def idle(self) -> None:
        """Wait until no request of this process is on the wire (tests)."""
        while self._tasks:
            await asyncio.gather(*set(self._tasks), return_exceptions=True)

    async def _step(self) -> bool:
        if self._stopping:
            return False
        await self.run_once()
        now = asyncio.get_running_loop().time()
        if now - self._last_prune > 3600:
            self._last_prune = now
            await self.prune()
        return False

    async def run_once(self) -> int:
        """Claim what is due for the free slots and start posting it; how many."""
        claimed = await self._claim()
        for c in claimed:
            self._held.add(c.id)
            self._busy[c.endpoint.id] = self._busy.get(c.endpoint.id, 0) + 1
            task = asyncio.create_task(self._deliver(c), name=f"webhook-{c.endpoint.id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return len(claimed)

    # ------------------------------------------------------------------ claiming
    async def _claim(self) -> list[_Claimed]:
        free = {
            ep.id: self.in_flight - self._busy.get(ep.id, 0)
            for ep in self.endpoints.values()
            if ep.enabled and self._busy.get(ep.id, 0) < self.in_flight
        }
        if not free:
            return []
        now = utcnow()
        claimed: list[_Claimed] = []
        async with self.db.write() as conn:
            disabled = set(
                await conn.scalars(
                    select(WebhookEndpointState.endpoint_id).where(
                        WebhookEndpointState.endpoint_id.in_(list(free)),
                        WebhookEndpointState.disabled_at.is_not(None),
                    )
                )
            )
            for endpoint_id, slots in free.items():
                if endpoint_id in disabled:
                    continue
                query = (
                    select(
                        WebhookDelivery.id,
                        WebhookDelivery.delivery_id,
                        WebhookDelivery.event_type,
                        WebhookDelivery.body,
                        WebhookDelivery.attempts,
                        WebhookDelivery.first_attempt_at,
                    )
                    .where(
                        WebhookDelivery.endpoint_id == endpoint_id,
                        or_(
                            (WebhookDelivery.status == PENDING)
                            & (WebhookDelivery.next_attempt_at <= now),
                            # A process died mid-request: its lease ran out, take it over.
                            (WebhookDelivery.status == DELIVERING)
                            & (WebhookDelivery.locked_until < now),
                        ),
                    )
                    .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
                    .limit(slots)
                )
                if conn.dialect.name == "postgresql":
                    query = query.with_for_update(skip_locked=True)
                rows = (await conn.execute(query)).all()
                if not rows:
                    continue
                ids = [r[0] for r in rows]
                await conn.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.id.in_(ids))
                    .values(
                        status=DELIVERING,
                        locked_until=now + LEASE,
                        attempts=WebhookDelivery.attempts + 1,
                        first_attempt_at=func.coalesce(WebhookDelivery.first_attempt_at, now),
                        last_attempt_at=now,
                    )
                )
                endpoint = self.endpoints[endpoint_id]
                claimed += [
                    _Claimed(r[0], r[1], endpoint, r[2], r[3].encode(), r[4] + 1, r[5] or now)
                    for r in rows
                ]
        return claimed

    async def _renew_loop(self) -> None:
        """Keep the leases of the rows on the wire. A failed renewal is only logged: the
        next one tries again, and should they all fail the rows are taken over, which is
        what a dead process needs anyway."""
        while True:
            await asyncio.sleep(self.renew_every)
            ids = sorted(self._held)
            if not ids:
                continue
            try:
                async with self.db.write() as conn:
                    await conn.execute(
                        update(WebhookDelivery)
                        .where(WebhookDelivery.id.in_(ids), WebhookDelivery.status == DELIVERING)
                        .values(locked_until=utcnow() + LEASE)
                    )
            except Exception:
                log.exception("could not renew the lease of %d webhook deliveries", len(ids))

    # ------------------------------------------------------------------ posting
    async def _deliver(self, c: _Claimed) -> None:
        try:
            result = await self._post(c)
            try:
                await self._record(c, result)
            except Exception:
                # The row stays leased until the heartbeat lets go: then it is retried.
                log.exception("could not record webhook delivery %s", c.delivery_id)
        finally:
            self._held.discard(c.id)
            self._busy[c.endpoint.id] -= 1
            if not self._stopping:
                self.wake()

    async def _post(self, c: _Claimed) -> _Result:
        timestamp = int(utcnow().timestamp())
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            DELIVERY_HEADER: c.delivery_id,
            EVENT_HEADER: c.event_type,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(c.endpoint.secret, timestamp, c.body),
            ATTEMPT_HEADER: str(c.attempts),
        }
        try:
            # Streamed and never read: whatever the receiver answers, only its status
            # matters, and a huge body must not cost memory.
            async with self._client.stream(
                "POST",
                c.endpoint.url,
                content=c.body,
                headers=headers,
                timeout=c.endpoint.timeout,
            ) as response:
                status = response.status_code
                retry_after = response.headers.get("retry-after")
        except httpx.TimeoutException:
            return _Result(error=f"no answer within {c.endpoint.timeout:g} s")
        except httpx.HTTPError as exc:
            return _Result(error=mask_pii(f"{type(exc).__name__}: {exc}")[:300])
        if 200 <= status < 300:
            return _Result(status=status)
        if status == 429:
            return _Result(status, "HTTP 429 Too Many Requests", _retry_after(retry_after))
        if 300 <= status < 400:
            return _Result(status, f"HTTP {status}: redirects are not followed")
        return _Result(status, f"HTTP {status}")

    async def _record(self, c: _Claimed, result: _Result) -> None:
        now = utcnow()
        policy = self.policy
        ep = c.endpoint.id
        mine = (WebhookDelivery.id == c.id) & (WebhookDelivery.status == DELIVERING)
        outcome: str
        async with self.db.write() as conn:
            if result.error is None:
                outcome = "delivered"
                await conn.execute(
                    update(WebhookDelivery)
                    .where(mine)
                    .values(
                        status=DELIVERED,
                        delivered_at=now,
                        locked_until=None,
                        last_status_code=result.status,
                    )
                )
                await conn.execute(
                    update(WebhookEndpointState)
                    .where(WebhookEndpointState.endpoint_id == ep)
                    .values(
                        consecutive_failures=0,
                        failing_since=None,
                        last_success_at=now,
                        updated_at=now,
                    )
                )
            elif result.status == 410:
                # The receiver says the endpoint is gone for good: stop asking until an
                # admin says otherwise; the delivery waits to be the first one then.
                outcome = "gone"
                await conn.execute(
                    update(WebhookDelivery)
                    .where(mine)
                    .values(
                        status=PENDING,
                        next_attempt_at=now,
                        locked_until=None,
                        last_status_code=410,
                        last_error="HTTP 410 Gone",
                        last_failure_at=now,
                    )
                )
                await self._disable(conn, ep, now, "the receiver answered 410 Gone")
            else:
                gave_up = now >= c.first_attempt_at + policy.retry_for
                outcome = "failed" if gave_up else "retried"
                if result.retry_after is not None:
                    delay = min(result.retry_after, policy.max_retry_after.total_seconds())
                else:
                    spent = (now - c.first_attempt_at).total_seconds()
                    delay = min(
                        policy.max_delay.total_seconds(),
                        max(policy.first_delay.total_seconds(), spent),
                    ) * random.uniform(0.8, 1.2)
                await conn.execute(
                    update(WebhookDelivery)
                    .where(mine)
                    .values(
                        status=FAILED if gave_up else PENDING,
                        next_attempt_at=now + timedelta(seconds=delay),
                        locked_until=None,
                        last_status_code=result.status,
                        last_error=result.error,
                        last_failure_at=now,
                    )
                )
                if result.status == 429:
                    # Told to slow down: alive, so not a failure towards disabling.
                    await conn.execute(
                        update(WebhookEndpointState)
                        .where(WebhookEndpointState.endpoint_id == ep)
                        .values(last_failure_at=now, updated_at=now)
                    )
                else:
                    await self._failed(conn, ep, now, result.error or "?")
                if gave_up:
                    log.warning(
                        "webhook %s: gave up delivery %s (%s) after %d attempts: %s",
                        ep,
                        c.delivery_id,
                        c.event_type,
                        c.attempts,
                        result.error,
                    )
        if self.metrics is not None:
            self.metrics.webhook_deliveries.labels(ep, outcome).inc()

    async def _failed(self, conn: AsyncConnection, ep: str, now: datetime, error: str) -> None:
        state = WebhookEndpointState
        await conn.execute(
            update(state)
            .where(state.endpoint_id == ep)
            .values(
                consecutive_failures=state.consecutive_failures + 1,
                failing_since=func.coalesce(state.failing_since, now),
                last_failure_at=now,
                updated_at=now,
            )
        )
        row = (
            await conn.execute(
                select(state.consecutive_failures, state.failing_since).where(
                    state.endpoint_id == ep, state.disabled_at.is_(None)
                )
            )
        ).first()
        if row is None or row[1] is None:
            return
        count, since = int(row[0]), row[1]
        policy = self.policy
        if count >= policy.disable_min_failures and now - since >= policy.disable_after:
            hours = (now - since).total_seconds() / 3600
            await self._disable(
                conn,
                ep,
                now,
                f"every attempt failed for {hours:.1f} h ({count} in a row); last: {error}",
            )

    async def _disable(self, conn: AsyncConnection, ep: str, now: datetime, reason: str) -> None:
        state = WebhookEndpointState
        done = await conn.execute(
            update(state)
            .where(state.endpoint_id == ep, state.disabled_at.is_(None))
            .values(disabled_at=now, disabled_reason=reason[:300], updated_at=now)
        )
        if done.rowcount:
            log.warning("webhook %s disabled: %s; deliveries wait for an admin", ep, reason)

    # ------------------------------------------------------------------ the log
    async def prune(self) -> int:
        """Drop delivered rows after ``keep_delivered`` and failed ones after
        ``keep_failed``; pending ones are never dropped."""
        now = utcnow()
        removed = 0
        for status, keep in (
            (DELIVERED, self.policy.keep_delivered),
            (FAILED, self.policy.keep_failed),
        ):
            while True:
                async with self.db.write() as conn:
                    ids = list(
                        await conn.scalars(
                            select(WebhookDelivery.id)
                            .where(
                                WebhookDelivery.status == status,
                                WebhookDelivery.created_at < now - keep,
                            )
                            .limit(5000)
                        )
                    )
                    if ids:
                        await conn.execute(
                            delete(WebhookDelivery).where(WebhookDelivery.id.in_(ids))
                        )
                removed += len(ids)
                if len(ids) < 5000:
                    break
        if removed:
            log.info("pruned %d old webhook deliveries", removed)
        return removed


def _retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date); None when absent
    or unreadable (the usual backoff then)."""
    if not value:
        return None
    value = value.strip()
    seconds: float
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = (when - utcnow()).total_seconds()
    return max(1.0, seconds)
