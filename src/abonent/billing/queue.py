"""Readings on their way to an HTTP billing: the durable queue and its delivery loop.

A customer's readings are written to ``billing_readings_queue`` in the bot's turn, with
the reply that told the customer they were accepted: they commit together or not at all,
so a crash or an outage of billing loses nothing and the customer is never told «приняты»
about readings we do not hold. ``ReadingsDelivery`` sends pending rows to billing and
records what billing said.

Exactly once at billing: a row carries our ``submission_id``, sent as the body's id and the
``Idempotency-Key`` header, and billing answers a repeat as it answered the first (the
contract, docs/billing-http-api.md). We deliver at least once — a process killed after
billing accepted and before the outcome was written sends the row again once its lease runs
out — and billing's idempotency turns that into once.

Several processes share the loop the way they share the outbox: a pass claims due rows by
a conditional update carrying a random lease token (``FOR UPDATE SKIP LOCKED`` first on
PostgreSQL, so passes do not queue on each other's rows), renews the lease while it
delivers, and writes an outcome only where its token still holds the row. Rows of one
account go in the order they were submitted: a correction never overtakes what it corrects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal, Protocol

from sqlalchemy import and_, exists, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import aliased

from abonent.billing.base import ZONES
from abonent.billing.readings import format_date, format_kwh, period_start, plain_decimal
from abonent.clock import utcnow
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.serialize import row_event_data
from abonent.core.worker import Worker
from abonent.db.models import BillingSubmission, Conversation, Message
from abonent.db.session import Database

log = logging.getLogger(__name__)

PENDING = "pending"
DELIVERING = "delivering"
DELIVERED = "delivered"
REJECTED = "rejected"
OPEN_STATES = (PENDING, DELIVERING)

CLAIM_BATCH = 50
# A dead process's claim is taken over once this runs out; a live one renews it.
LEASE = timedelta(seconds=30)
RENEW_EVERY = 5.0
# The longest pause between two tries of a row while billing stays down.
MAX_RETRY = 600.0

# The note operators see in the conversation when billing refused readings later.
REJECTED_NOTE = (
    "Биллинг не принял показания по лицевому счёту {number}, переданные клиентом {date} "
    "({values}): {reason}. Клиенту было сообщено, что показания приняты, — свяжитесь с ним."
)


@dataclass(frozen=True)
class QueuedSubmission:
    """One row as the delivery sends it."""

    id: int
    submission_id: str
    account_number: str
    plan: str
    values: tuple[Decimal, ...]
    taken_on: date
    source: str
    replace: bool
    conversation_id: int | None
    attempts: int


@dataclass(frozen=True)
class Delivery:
    """What billing made of one delivery."""

    status: Literal["accepted", "rejected", "unavailable"]
    # For the logs and the row: never personal data.
    reason: str = ""
    # Billing's answer (accepted) or refusal (rejected), kept on the row.
    detail: dict[str, Any] = field(default_factory=dict)
    # Seconds billing asked us to wait (Retry-After) or the circuit stays open.
    retry_after: float | None = None


class Deliverer(Protocol):
    async def deliver(self, submission: QueuedSubmission) -> Delivery: ...


def _readings(plan: str, values: Sequence[Decimal]) -> dict[str, str]:
    return {zone: plain_decimal(v) for zone, v in zip(ZONES[plan], values, strict=True)}


async def enqueue(
    db: Database,
    *,
    submission_id: str,
    account_number: str,
    plan: str,
    values: Sequence[Decimal],
    taken_on: date,
    source: str,
    replace: bool,
    conversation_id: int | None,
    delivered: dict[str, Any] | None = None,
) -> None:
    """Keep a submission: ``pending`` for the delivery, or already ``delivered`` with
    billing's answer when it accepted at once. In a bot's turn this is a savepoint of the
    turn's transaction, so it commits with the reply. The same id twice (a repeated turn
    whose first attempt got this far) keeps the first row."""
    now = utcnow()
    row: dict[str, Any] = {
        "submission_id": submission_id,
        "account_number": account_number,
        "plan": plan,
        "readings": _readings(plan, values),
        "taken_on": taken_on,
        "source": source,
        "replace": replace,
        "conversation_id": conversation_id,
        "state": DELIVERED if delivered is not None else PENDING,
        "attempts": 1 if delivered is not None else 0,
        "next_attempt_at": now,
        "outcome": delivered,
        "created_at": now,
        "delivered_at": now if delivered is not None else None,
    }
    with contextlib.suppress(IntegrityError):
        async with db.write() as conn:
            await conn.execute(insert(BillingSubmission), row)


@dataclass(frozen=True)
class Waiting:
    """The newest submission of an account still waiting for billing."""

    taken_on: date
    values: tuple[Decimal, ...]


async def waiting_in_period(db: Database, number: str, plan: str, today: date) -> Waiting | None:
    """What this account's customer already submitted in ``today``'s period that billing
    has not got yet: a second submission is asked about as if billing had it."""
    async with db.read() as conn:
        found = (
            await conn.execute(
                select(BillingSubmission.taken_on, BillingSubmission.readings)
                .where(
                    BillingSubmission.account_number == number,
                    BillingSubmission.state.in_(OPEN_STATES),
                    BillingSubmission.taken_on >= period_start(today),
                    BillingSubmission.taken_on <= today,
                )
                .order_by(BillingSubmission.id.desc())
                .limit(1)
            )
        ).first()
    if found is None:
        return None
    readings = found.readings or {}
    if not all(zone in readings for zone in ZONES.get(plan, ())):
        return None  # the plan changed since: nothing comparable
    return Waiting(found.taken_on, tuple(Decimal(str(readings[z])) for z in ZONES[plan]))


async def has_waiting(db: Database, number: str) -> bool:
    """Whether readings of this account still wait for billing: a new submission then
    queues behind them instead of overtaking them (billing would see them out of order)."""
    async with db.read() as conn:
        found = await conn.execute(
            select(BillingSubmission.id)
            .where(
                BillingSubmission.account_number == number,
                BillingSubmission.state.in_(OPEN_STATES),
            )
            .limit(1)
        )
        return found.first() is not None


def _submission(row: BillingSubmission) -> QueuedSubmission:
    readings = row.readings or {}
    zones = ZONES.get(row.plan, tuple(readings))
    return QueuedSubmission(
        id=row.id,
        submission_id=row.submission_id,
        account_number=row.account_number,
        plan=row.plan,
        values=tuple(Decimal(str(readings[z])) for z in zones if z in readings),
        taken_on=row.taken_on,
        source=row.source,
        replace=row.replace,
        conversation_id=row.conversation_id,
        attempts=row.attempts,
    )


class ReadingsDelivery(Worker):
    """Delivers queued readings to billing; woken by a queued submission, and polls."""

    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        billing: Deliverer,
        *,
        first_retry: float = 5.0,
        poll: float = 5.0,
        renew_every: float = RENEW_EVERY,
        lease: timedelta = LEASE,
    ) -> None:
        super().__init__(
            bus,
            {events.READINGS_SUBMITTED},
            name="billing-delivery",
            poll=poll,
            logger=log,
            failure="readings delivery pass failed",
            eager=True,
        )
        self.db = db
        self.bus = bus
        self.billing = billing
        self.first_retry = first_retry
        self.renew_every = renew_every
        self.lease = lease

    def _on_event(self, event: Event) -> None:
        if event.data.get("queued"):
            self.wake()

    async def _step(self) -> bool:
        return await self.run_once()

    def retry_in(self, attempts: int) -> float:
        """Seconds before the next try of a row tried ``attempts`` times: doubling."""
        return float(min(self.first_retry * 2 ** max(attempts - 1, 0), MAX_RETRY))

    async def run_once(self) -> bool:
        """One pass: claim due rows, deliver them in order, record each outcome as it
        comes. True when it found work."""
        token = secrets.token_hex(16)
        claimed = await self._claim(token)
        if not claimed:
            return False
        held = {c.id for c in claimed}
        stop = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(token, held, stop), name="billing-lease")
        try:
            for i, submission in enumerate(claimed):
                outcome = await self.billing.deliver(submission)
                await self._record(token, submission, outcome)
                held.discard(submission.id)
                if outcome.status == "unavailable":
                    # Billing is down: the rest wait with this one instead of each failing.
                    delay = self._delay(submission, outcome)
                    await self._release(token, [c.id for c in claimed[i + 1 :]], delay)
                    break
        finally:
            stop.set()
            await heartbeat
        return True

    async def _claim(self, token: str) -> list[QueuedSubmission]:
        now = utcnow()
        row = BillingSubmission
        due = or_(
            and_(row.state == PENDING, row.next_attempt_at <= now),
            # A process died mid-delivery: its lease ran out, take the row over.
            and_(row.state == DELIVERING, row.locked_until < now),
        )
        earlier = aliased(BillingSubmission)
        first_of_account = ~exists().where(
            earlier.account_number == row.account_number,
            earlier.id < row.id,
            earlier.state.in_(OPEN_STATES),
        )
        async with self.db.transaction() as session:
            query = select(row.id).where(due, first_of_account).order_by(row.id).limit(CLAIM_BATCH)
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = list(await session.scalars(query))
            if not ids:
                return []
            # Conditional: of two processes that saw the same row due, one gets it.
            await session.execute(
                update(row)
                .where(row.id.in_(ids), due)
                .values(
                    state=DELIVERING,
                    locked_until=now + self.lease,
                    lease_token=token,
                    attempts=row.attempts + 1,
                )
            )
            rows = await session.scalars(
                select(row).where(row.id.in_(ids), row.lease_token == token).order_by(row.id)
            )
            return [_submission(r) for r in rows]

    async def _heartbeat(self, token: str, held: set[int], stop: asyncio.Event) -> None:
        """Renew the lease of the rows still being delivered until the pass ends; a failed
        renewal is retried at the next beat (should all fail, the rows are taken over,
        which billing's idempotency makes harmless)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.renew_every):
                    await stop.wait()
                    return
            if not held:
                continue
            try:
                async with self.db.write() as conn:
                    await conn.execute(
                        update(BillingSubmission)
                        .where(
                            BillingSubmission.id.in_(sorted(held)),
                            BillingSubmission.lease_token == token,
                        )
                        .values(locked_until=utcnow() + self.lease)
                    )
            except Exception:
                log.exception("could not renew the lease of %d queued readings", len(held))

    def _delay(self, submission: QueuedSubmission, outcome: Delivery) -> float:
        wait = self.retry_in(submission.attempts)
        if outcome.retry_after is not None:
            wait = max(wait, min(outcome.retry_after, MAX_RETRY))
        return wait

    async def _release(self, token: str, ids: list[int], delay: float) -> None:
        """Claimed but not tried: back to pending, the attempt not counted."""
        if not ids:
            return
        async with self.db.write() as conn:
            await conn.execute(
                update(BillingSubmission)
                .where(BillingSubmission.id.in_(ids), BillingSubmission.lease_token == token)
                .values(
                    state=PENDING,
                    locked_until=None,
                    lease_token=None,
                    attempts=BillingSubmission.attempts - 1,
                    next_attempt_at=utcnow() + timedelta(seconds=delay),
                )
            )

    async def _record(self, token: str, submission: QueuedSubmission, outcome: Delivery) -> None:
        now = utcnow()
        mine = and_(BillingSubmission.id == submission.id, BillingSubmission.lease_token == token)
        published: list[Event] = []
        async with self.db.write() as conn:
            if outcome.status == "unavailable":
                delay = self._delay(submission, outcome)
                await conn.execute(
                    update(BillingSubmission)
                    .where(mine)
                    .values(
                        state=PENDING,
                        locked_until=None,
                        lease_token=None,
                        last_error=outcome.reason,
                        next_attempt_at=now + timedelta(seconds=delay),
                    )
                )
                log.info(
                    "billing unavailable for queued readings %s (attempt %d): %s; next in %.0fs",
                    submission.id,
                    submission.attempts,
                    outcome.reason,
                    delay,
                )
                return
            state = DELIVERED if outcome.status == "accepted" else REJECTED
            result = await conn.execute(
                update(BillingSubmission)
                .where(mine)
                .values(
                    state=state,
                    locked_until=None,
                    lease_token=None,
                    outcome=outcome.detail,
                    last_error=None if state == DELIVERED else outcome.reason,
                    delivered_at=now,
                )
            )
            if result.rowcount != 1:
                # Our lease ran out and another pass took the row: its outcome counts.
                return
            data: dict[str, Any] = {
                "conversation_id": submission.conversation_id,
                "account": submission.account_number,
                "submission_id": submission.submission_id,
                "attempts": submission.attempts,
            }
            if state == DELIVERED:
                published.append(Event(events.READINGS_DELIVERED, data))
            else:
                data["reason"] = outcome.reason
                published.append(Event(events.READINGS_REJECTED_BY_BILLING, data))
                note = await self._note(conn, submission, outcome)
                if note is not None:
                    published.append(note)
                log.warning(
                    "billing rejected queued readings %s: %s", submission.id, outcome.reason
                )
            published = await eventlog.record(conn, published, now)
        await self.bus.publish_many(published)

    @staticmethod
    async def _note(
        conn: AsyncConnection, submission: QueuedSubmission, outcome: Delivery
    ) -> Event | None:
        """An internal note in the customer's conversation: the customer was told the
        readings were accepted, so an operator must know that billing refused them."""
        if submission.conversation_id is None:
            return None
        conv = (
            await conn.execute(
                select(Conversation.identity_id, Conversation.channel_id).where(
                    Conversation.id == submission.conversation_id
                )
            )
        ).first()
        if conv is None:
            return None
        values = ", ".join(format_kwh(v) for v in submission.values)
        message = str(outcome.detail.get("message") or "") or outcome.reason
        row: dict[str, Any] = {
            "conversation_id": submission.conversation_id,
            "identity_id": conv.identity_id,
            "channel_id": conv.channel_id,
            "author": "note",
            "author_id": None,
            "text": REJECTED_NOTE.format(
                number=submission.account_number,
                date=format_date(submission.taken_on),
                values=values,
                reason=message,
            ),
            "payload": None,
            "buttons": None,
            "external_id": None,
            "meta": {"billing": "readings_rejected", "submission_id": submission.submission_id},
            "handled": True,
            "delivery": None,
            "delivery_error": None,
            "created_at": utcnow(),
        }
        inserted = await conn.execute(insert(Message).returning(Message.id), row)
        row["id"] = int(inserted.scalar_one())
        return Event(
            events.NOTE_ADDED,
            {
                "message_id": row["id"],
                "conversation_id": submission.conversation_id,
                "author_id": None,
            },
            live=row_event_data(row),
        )
