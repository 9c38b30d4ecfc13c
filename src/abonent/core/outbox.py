"""The persisted outbox and its sender loop.

Replies are written to ``outbox`` in the same transaction as the message, so a crash
between "the bot decided" and "the platform got it" loses nothing. The sender claims
due rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several processes share the
work), sends them in order per conversation, and retries with backoff, honouring a
platform's own retry hint. Permanent errors stop at once and stay on the message for
operators to see.

A claimed row is leased for a short ``LEASE`` that the claiming process renews every
``RENEW_EVERY`` seconds while it holds the row, so a process killed mid-send gives its
rows up within seconds while a slow send of a live one is never taken over. Each send's
outcome is committed as soon as it returns (outcomes that return meanwhile are written
together), so after a kill only the sends in flight at that instant go out again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from sqlalchemy import exists, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from abonent.channels.base import Channel, OutgoingFile, OutgoingMessage, SendError, SendResult
from abonent.clock import utcnow
from abonent.core import attachments, eventlog, events
from abonent.core.attachments import Store
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.types import Button
from abonent.core.worker import Worker
from abonent.db.models import Attachment, ChannelIdentity, Message, OutboxItem
from abonent.db.session import Database

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 12
CLAIM_BATCH = 200
# A dead process's rows are taken over once this runs out; a live one renews it.
LEASE = timedelta(seconds=10)
# Seconds between renewals: two may fail (or the loop stall this long) before a lease
# runs out under a live process.
RENEW_EVERY = 3.0
# On a graceful stop, how long a pass under way may finish: its rows are then recorded,
# not left leased for the next process to wait out.
STOP_GRACE = 5.0
# Sends on the wire at once per channel, each until its outcome is committed. A process
# killed with SIGKILL repeats at most these (the platform got them, the database does
# not know); a platform's own rate limit (Telegram: about 30 messages/s per bot) is
# reached long before this many concurrent sends of ~50 ms limit the throughput.
IN_FLIGHT = 4


def backoff(attempts: int) -> float:
    """Seconds before the next try: 1, 2, 4 … capped at 5 minutes."""
    return float(min(2 ** max(attempts - 1, 0), 300))


@dataclass
class _Claimed:
    item_id: int
    attempts: int
    message: Message
    recipient: str
    parts_sent: int = 0


@dataclass
class _Outcome:
    claimed: _Claimed
    result: SendResult | None = None
    error: SendError | None = None
    # Not tried: an earlier message of the same conversation failed first.
    held_by: int | None = None


@dataclass
class _InFlight:
    """One pass's claim while it is being sent."""

    # Claimed rows whose outcome is not committed yet: the heartbeat renews these.
    held: set[int]
    # Outcomes returned but not written yet; whoever holds ``lock`` writes them all.
    unrecorded: list[_Outcome] = field(default_factory=list)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OutboxSender(Worker):
    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        channels: dict[str, Channel],
        *,
        poll: float = 1.0,
        files: Store | None = None,
        public_url: str = "",
        link_valid: timedelta = timedelta(hours=72),
        renew_every: float = RENEW_EVERY,
        in_flight: int = IN_FLIGHT,
    ) -> None:
        super().__init__(
            bus,
            {events.OUTBOX_ENQUEUED},
            name="outbox-sender",
            poll=poll,
            logger=log,
            failure="outbox pass failed",
            eager=True,
        )
        self.db = db
        self.bus = bus
        self.channels = channels
        # Operators' files go out with their messages (core.attachments).
        self.files = files
        self.public_url = public_url.rstrip("/")
        self.link_valid = link_valid
        self._slots = {cid: asyncio.Semaphore(in_flight) for cid in channels}
        # Tests shorten it to see renewals without waiting seconds.
        self.renew_every = renew_every
        self._passes = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def _step(self) -> bool:
        if self._stopping:
            return False
        return await self.run_once()

    async def stop(self) -> None:
        """A rolling restart lets the pass under way finish (for ``STOP_GRACE``), and
        starts no new one: otherwise its replies would wait out their leases."""
        self._stopping = True
        try:
            await asyncio.wait_for(self.idle(), STOP_GRACE)
        except TimeoutError:
            log.warning("stopping with sends still in flight: they are retried after the lease")
        await super().stop()

    async def run_once(self) -> bool:
        """One pass: claim, send, record. True when it found work (there may be more)."""
        self._passes += 1
        self._idle.clear()
        try:
            return await self._pass()
        finally:
            self._passes -= 1
            if not self._passes:
                self._idle.set()

    async def idle(self) -> None:
        """Wait until no pass of this sender is in flight (tests, shutdown)."""
        await self._idle.wait()

    async def _pass(self) -> bool:
        claimed = await self._claim()
        if not claimed:
            return False
        flight = _InFlight({c.item_id for c in claimed})
        stop = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(flight, stop), name="outbox-lease")
        try:
            by_conversation: dict[int, list[_Claimed]] = defaultdict(list)
            for c in claimed:
                by_conversation[c.message.conversation_id].append(c)
            await asyncio.gather(
                *(self._send_in_order(flight, cs) for cs in by_conversation.values())
            )
            # What an earlier write could not commit; failing here fails the pass, and
            # the rows are taken over once their lease runs out.
            await self._flush(flight)
        finally:
            # Let a renewal in progress finish rather than cancel it mid-statement.
            stop.set()
            try:
                await heartbeat
            except asyncio.CancelledError:
                heartbeat.cancel()
                raise
        return True

    async def _heartbeat(self, flight: _InFlight, stop: asyncio.Event) -> None:
        """Keep the lease of the rows this pass still holds until it ends.

        A failed renewal is only logged: the next one tries again, and should they all
        fail the rows are taken over, which is what a dead process needs anyway."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.renew_every)
                return
            except TimeoutError:
                pass
            ids = sorted(flight.held)
            if not ids:
                continue
            try:
                await self._renew(ids)
            except Exception:
                log.exception("could not renew the lease of %d outbox rows", len(ids))

    async def _renew(self, ids: list[int]) -> None:
        async with self.db.write() as conn:
            await conn.execute(
                update(OutboxItem)
                # A row recorded meanwhile (or retried and claimed by another) is not ours.
                .where(OutboxItem.id.in_(ids), OutboxItem.status == "sending")
                .values(locked_until=utcnow() + LEASE)
            )

    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        earlier = aliased(OutboxItem)
        async with self.db.transaction() as session:
            query = (
                select(OutboxItem.id)
                .where(
                    or_(
                        (OutboxItem.status == "pending") & (OutboxItem.next_attempt_at <= now),
                        # A process died mid-send: its lease ran out, take the row over.
                        (OutboxItem.status == "sending") & (OutboxItem.locked_until < now),
                    ),
                    ~exists().where(
                        earlier.conversation_id == OutboxItem.conversation_id,
                        earlier.id < OutboxItem.id,
                        earlier.status.in_(("pending", "sending")),
                        # ...unless the earlier one is itself due now (claimed in this batch).
                        ~(
                            (earlier.status == "pending") & (earlier.next_attempt_at <= now)
                            | (earlier.status == "sending") & (earlier.locked_until < now)
                        ),
                    ),
                )
                .order_by(OutboxItem.id)
                .limit(CLAIM_BATCH)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = list(await session.scalars(query))
            if ids and not self.db.is_sqlite:
                ids = await _in_turn(session, ids)
            if not ids:
                return []
            await session.execute(
                update(OutboxItem)
                .where(OutboxItem.id.in_(ids))
                .values(
                    status="sending", locked_until=now + LEASE, attempts=OutboxItem.attempts + 1
                )
            )
            rows = await session.execute(
                select(
                    OutboxItem.id,
                    OutboxItem.attempts,
                    Message,
                    ChannelIdentity.external_id,
                    OutboxItem.parts_sent,
                )
                .join(Message, Message.id == OutboxItem.message_id)
                .join(ChannelIdentity, ChannelIdentity.id == Message.identity_id)
                .where(OutboxItem.id.in_(ids))
                .order_by(OutboxItem.id)
            )
            return [_Claimed(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def _send_in_order(self, flight: _InFlight, claimed: list[_Claimed]) -> None:
        for i, c in enumerate(claimed):
            async with self._slots.get(c.message.channel_id) or contextlib.nullcontext():
                outcome = await self._send_one(c)
                outcomes = [outcome]
                stop = outcome.error is not None and not outcome.error.permanent
                if stop:
                    # Keep the order: later messages of this conversation wait for this
                    # one (written with it: they take its retry time).
                    outcomes += [_Outcome(rest, held_by=c.item_id) for rest in claimed[i + 1 :]]
                # The next send waits for this one's commit, and the slot is taken until
                # then: after a kill, only the sends in flight can go out again.
                await self._done(flight, outcomes)
            if stop:
                return

    async def _done(self, flight: _InFlight, outcomes: list[_Outcome]) -> None:
        flight.unrecorded.extend(outcomes)
        try:
            await self._flush(flight)
        except Exception:
            # Kept for the next write (the rows stay leased); the pass's last one raises.
            log.exception("could not record outbox outcomes, will try again")

    async def _flush(self, flight: _InFlight) -> None:
        """Commit every outcome returned so far in one transaction.

        Outcomes that return while a write is running wait for the lock and go into
        the next write together, so a busy pass costs a few commits, not one per send."""
        async with flight.lock:
            batch, flight.unrecorded = flight.unrecorded, []
            if not batch:
                return
            try:
                recorded = await self._record(batch)
            except Exception:
                flight.unrecorded[:0] = batch
                raise
            flight.held.difference_update(o.claimed.item_id for o in batch)
        await self.bus.publish_many(recorded)

    async def _send_one(self, c: _Claimed) -> _Outcome:
        channel = self.channels.get(c.message.channel_id)
        if channel is None:
            return _Outcome(c, error=SendError("channel is not configured", permanent=True))
        outgoing = OutgoingMessage(
            message_id=c.message.id,
            conversation_id=c.message.conversation_id,
            recipient=c.recipient,
            text=c.message.text,
            buttons=tuple(Button(b["title"], b["payload"]) for b in c.message.buttons or []),
            skip_parts=c.parts_sent,
        )
        try:
            files = await self._files(channel, c.message)
            if files:
                outgoing = replace(outgoing, files=files)
            return _Outcome(c, result=await channel.send(outgoing))
        except SendError as exc:
            return _Outcome(c, error=exc)
        except Exception as exc:
            log.exception("channel %s failed to send message %s", channel.id, c.message.id)
            return _Outcome(c, error=SendError(f"{type(exc).__name__}: {exc}"))

    async def _files(self, channel: Channel, message: Message) -> tuple[OutgoingFile, ...]:
        """The message's stored files, ready for the channel (a URL where it needs one)."""
        described = (message.meta or {}).get("files") or []
        if not described:
            return ()
        if self.files is None:
            raise SendError("attachments are not configured", permanent=True)
        ids = [int(f["id"]) for f in described]
        async with self.db.session() as session:
            rows = {
                r.id: r
                for r in await session.scalars(select(Attachment).where(Attachment.id.in_(ids)))
            }
        found: list[OutgoingFile] = []
        for att_id in ids:
            row = rows.get(att_id)
            if row is None or row.storage_key is None:
                raise SendError(f"attachment {att_id} is not stored", permanent=True)
            url = None
            if channel.files_by_url and self.public_url:
                token = await attachments.public_link(self.db, att_id, self.link_valid)
                url = f"{self.public_url}/files/{token}"
            found.append(
                OutgoingFile(
                    id=row.id,
                    kind=row.kind,
                    mime=row.mime,
                    name=row.filename,
                    size=row.size,
                    path=self.files.path(row.storage_key),
                    url=url,
                )
            )
        return tuple(found)

    async def _record(self, outcomes: list[_Outcome]) -> list[Event]:
        """Write the outcomes; the events to publish now that they are committed."""
        now = utcnow()
        published: list[Event] = []
        async with self.db.transaction() as session:
            sent_ids = [o.claimed.item_id for o in outcomes if o.result is not None]
            if sent_ids:
                await session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id.in_(sent_ids))
                    .values(status="sent", sent_at=now, locked_until=None, last_error=None)
                )
                msg_ids = [o.claimed.message.id for o in outcomes if o.result is not None]
                await session.execute(
                    update(Message).where(Message.id.in_(msg_ids)).values(delivery="sent")
                )
            retry_at: dict[int, datetime] = {}
            for o in outcomes:
                if o.held_by is not None:
                    continue
                if o.result is not None:
                    ext = o.result.external_id
                    noted: dict[str, object] = {"platform_id": ext} if ext else {}
                    if o.result.numbered:
                        # The customer saw «1. …  2. …»: their «2» means the second button.
                        noted["numbered"] = True
                    if noted:
                        msg = await session.get(Message, o.claimed.message.id)
                        if msg is not None:
                            msg.meta = {**(msg.meta or {}), **noted}
                    published.append(_delivered(o.claimed.message, now))
                    continue
                assert o.error is not None
                err = o.error
                final = err.permanent or o.claimed.attempts >= MAX_ATTEMPTS
                if final:
                    await session.execute(
                        update(OutboxItem)
                        .where(OutboxItem.id == o.claimed.item_id)
                        .values(status="failed", locked_until=None, last_error=err.reason)
                    )
                    await session.execute(
                        update(Message)
                        .where(Message.id == o.claimed.message.id)
                        .values(delivery="failed", delivery_error=err.reason)
                    )
                    published.append(_failed(o.claimed.message, err.reason))
                    log.warning(
                        "message %s to %s failed for good: %s",
                        o.claimed.message.id,
                        o.claimed.message.channel_id,
                        err.reason,
                    )
                else:
                    delay = (
                        err.retry_after
                        if err.retry_after is not None
                        else backoff(o.claimed.attempts)
                    )
                    retry_at[o.claimed.item_id] = now + timedelta(seconds=delay)
                    await session.execute(
                        update(OutboxItem)
                        .where(OutboxItem.id == o.claimed.item_id)
                        .values(
                            status="pending",
                            locked_until=None,
                            last_error=err.reason,
                            next_attempt_at=retry_at[o.claimed.item_id],
                            # Parts the customer already has are not sent again.
                            parts_sent=max(o.claimed.parts_sent, err.sent_parts),
                        )
                    )
            for o in outcomes:
                if o.held_by is None:
                    continue
                await session.execute(
                    update(OutboxItem)
                    .where(OutboxItem.id == o.claimed.item_id)
                    .values(
                        status="pending",
                        locked_until=None,
                        attempts=OutboxItem.attempts - 1,  # it was not tried
                        next_attempt_at=retry_at.get(o.held_by, now),
                    )
                )
            return await eventlog.record(session, published, now)


async def _in_turn(session: AsyncSession, ids: list[int]) -> list[int]:
    """Of the rows just locked, those whose conversation has nothing unsent before them
    outside this claim.

    ``SKIP LOCKED`` passes over a row another process is claiming at this moment, while
    it still looks pending; taking the same conversation's next row meanwhile would send
    the second reply beside the first, and the platform may show it first."""
    convs = dict(
        (
            await session.execute(
                select(OutboxItem.id, OutboxItem.conversation_id).where(OutboxItem.id.in_(ids))
            )
        ).all()
    )
    first_unsent = dict(
        (
            await session.execute(
                select(OutboxItem.conversation_id, func.min(OutboxItem.id))
                .where(
                    OutboxItem.conversation_id.in_(set(convs.values())),
                    OutboxItem.status.in_(("pending", "sending")),
                    OutboxItem.id.not_in(ids),
                )
                .group_by(OutboxItem.conversation_id)
            )
        ).all()
    )
    return [i for i in ids if i < first_unsent.get(convs[i], i + 1)]


def _delivered(message: Message, now: datetime) -> Event:
    return Event(
        events.MESSAGE_DELIVERED,
        {
            "message_id": message.id,
            "conversation_id": message.conversation_id,
            "channel_id": message.channel_id,
            # From the moment the reply was written to the platform's acceptance.
            "after_s": round((now - message.created_at).total_seconds(), 3),
        },
    )


def _failed(message: Message, reason: str) -> Event:
    return Event(
        events.MESSAGE_FAILED,
        {
            "message_id": message.id,
            "conversation_id": message.conversation_id,
            "channel_id": message.channel_id,
            "error": reason,
        },
    )
