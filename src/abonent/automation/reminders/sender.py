"""The reminders' scheduler and sender: one loop, safe in several processes at once.

Expansion writes one ``reminder_sends`` row per contact and period (``INSERT … ON
CONFLICT DO NOTHING`` on the unique key), page by page, so a restarted or doubled
scheduler adds nothing twice. Sending claims due rows (``FOR UPDATE SKIP LOCKED`` on
PostgreSQL) under a lease the pass renews while it runs, and delivers each at most
once: just before the platform is called the row is committed as ``sending`` with its
message in the customer's conversation, and a row found ``sending`` after its lease ran
out (the process died mid-call) is recorded as ``interrupted``, never sent again — a
customer may miss one reminder after a crash, but never gets two. A row claimed and not
yet sent goes back to the queue.

Reminders do not go through the outbox: they would queue 100,000 messages in front of
live replies. Instead they wait while the outbox holds more than a few unsent replies
for the same channel, make way for a moment after each customer message (``_give_way``),
and go out at a rate per channel type under the platform's own
(``throttle``: per process, or shared by every process through Redis); a 429 pauses
that channel type for as long as the platform asked.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite

from abonent.automation.reminders import quiet
from abonent.automation.reminders.audience import (
    OPTED_OUT,
    UNREACHABLE,
    WHATSAPP_WINDOW,
    WHATSAPP_WINDOW_CLOSED,
    Audience,
    Recipient,
)
from abonent.automation.reminders.campaigns import OPEN, period_of
from abonent.automation.reminders.throttle import Throttle, build_throttle
from abonent.billing.base import Billing
from abonent.bot import texts as t
from abonent.channels.base import Channel, OutgoingMessage, SendError, SendResult
from abonent.clock import utcnow
from abonent.config import Settings
from abonent.core import eventlog, events
from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.types import Button
from abonent.core.worker import Worker
from abonent.db.models import (
    ChannelIdentity,
    Conversation,
    Message,
    OutboxItem,
    ReminderCampaign,
    ReminderConsent,
    ReminderSend,
    ReminderUnreachable,
    TrackedLink,
)
from abonent.db.session import Database

log = logging.getLogger(__name__)

CLAIM_BATCH = 50
# The longest pause between renewals of a pass's lease (``[reminders] lease_seconds``:
# a dead process's claim is taken over once it runs out; a live one renews it).
RENEW_EVERY = 5.0
IN_FLIGHT = 4
# Live replies first: a reminder waits until no customer has written (in any process,
# the bus carries it) for LIVE_QUIET seconds, but never longer than LIVE_WAIT_MAX, so a
# busy chat slows a campaign down without stopping it.
LIVE_QUIET = 0.05
LIVE_WAIT_MAX = 0.5
MAX_ATTEMPTS = 8
# Permanent errors that are the campaign's or the configuration's, not the customer's:
# the identity is not marked unreachable for them (WhatsApp template and window errors,
# a wrong token).
_NOT_THE_CUSTOMER = re.compile(
    r"#13[2-3]\d{3}|#131047|#131030|not configured|template|\b401\b|unauthori[sz]ed",
    re.IGNORECASE,
)


def backoff(attempts: int) -> float:
    return float(min(2 ** max(attempts - 1, 0) * 5, 600))


@dataclass
class _Claimed:
    send_id: int
    campaign: ReminderCampaign
    contact_id: int
    identity_id: int | None
    channel_id: str | None
    values: dict[str, Any]
    message_id: int | None
    attempts: int
    token: str


@dataclass
class _Prepared:
    claimed: _Claimed
    message: Message
    recipient: str
    mode: str
    text: str
    buttons: tuple[Button, ...]


@dataclass
class _Pass:
    token: str
    held: set[int] = field(default_factory=set)


def render(text: str, values: dict[str, Any]) -> str:
    """The campaign's text with its placeholders filled; an unknown one stays as typed."""

    class _Keep(dict[str, Any]):
        def __missing__(self, key: str) -> str:
            return "{" + key + "}"

    try:
        return text.format_map(_Keep(values))
    except (ValueError, IndexError):
        return text  # braces that are not placeholders: the text as written


class ReminderSender(Worker):
    def __init__(
        self,
        db: Database,
        bus: LocalBus,
        channels: dict[str, Channel],
        billing: Billing,
        settings: Settings,
        *,
        poll: float = 2.0,
        batch: int = CLAIM_BATCH,
        lease: timedelta | None = None,
        renew_every: float | None = None,
        throttle: Throttle | None = None,
    ) -> None:
        super().__init__(
            bus,
            {events.MESSAGE_RECEIVED},
            name="reminders",
            poll=poll,
            logger=log,
            failure="reminders pass failed",
            eager=True,
        )
        self.db = db
        self.bus = bus
        self.channels = channels
        self.settings = settings
        self.tz = settings.company.tz
        self.audience = Audience(
            db,
            billing,
            {cid: ch.type for cid, ch in channels.items()},
            settings.reminders,
            self.tz,
        )
        self.batch = batch
        self.lease = lease or timedelta(seconds=settings.reminders.lease_seconds)
        # Renewed several times per lease, so one or two failed renewals do not lose it.
        self.renew_every = renew_every or min(RENEW_EVERY, self.lease.total_seconds() / 4)
        r = settings.reminders
        self.throttle: Throttle = throttle or build_throttle(
            settings.redis_url, r.rates, r.per_chat_interval, r.shared_throttle
        )
        self._slots = {cid: asyncio.Semaphore(IN_FLIGHT) for cid in channels}
        # Tests stop a sender between committing ``sending`` and calling the platform.
        self.before_send: Any = None
        self._live_at = 0.0

    def _on_event(self, event: Event) -> None:
        """A customer's message is not work for the sender: it marks live traffic,
        which reminders make way for (``_give_way``)."""
        if event.type == events.MESSAGE_RECEIVED:
            self._live_at = time.monotonic()

    async def _give_way(self) -> None:
        waited = 0.0
        while waited < LIVE_WAIT_MAX:
            quiet_for = time.monotonic() - self._live_at
            if quiet_for >= LIVE_QUIET:
                return
            pause = LIVE_QUIET - quiet_for
            await asyncio.sleep(pause)
            waited += pause

    async def stop(self) -> None:
        await super().stop()
        await self.throttle.close()

    async def _step(self) -> bool:
        await self.schedule()
        return await self.send_due()

    # ------------------------------------------------------------------ scheduling
    async def schedule(self) -> int:
        """Expand every running campaign whose current period is not written yet; close
        one-off campaigns with nothing left to send. The number of rows written."""
        now = utcnow()
        async with self.db.session() as session:
            running = list(
                await session.scalars(
                    select(ReminderCampaign).where(ReminderCampaign.state == "running")
                )
            )
        written = 0
        for campaign in running:
            period = period_of(campaign, now, self.tz)
            if period is None:
                continue
            key, began = period
            if campaign.expanded_period != key:
                written += await self.expand(campaign, key, max(began, now))
            elif campaign.schedule == "once" and not await self._open(campaign.id):
                await self._set_state(campaign.id, "done", expect="running")
        return written

    async def expand(self, campaign: ReminderCampaign, period: str, due: datetime) -> int:
        """Write the period's sends (idempotent), then mark the period expanded."""
        written = 0
        async for page in self.audience.pages(campaign, utcnow()):
            if page:
                written += await self._insert(campaign, period, due, page)
        async with self.db.transaction() as session:
            await session.execute(
                update(ReminderCampaign)
                .where(ReminderCampaign.id == campaign.id)
                .values(expanded_period=period, updated_at=utcnow())
            )
        log.info("reminders: campaign %s period %s expanded (%d new)", campaign.id, period, written)
        return written

    async def _insert(
        self, campaign: ReminderCampaign, period: str, due: datetime, page: list[Recipient]
    ) -> int:
        now = utcnow()
        rows = [
            {
                "campaign_id": campaign.id,
                "contact_id": r.contact_id,
                "period_key": period,
                "identity_id": r.identity.id if r.identity else None,
                "channel_id": r.identity.channel_id if r.identity else None,
                "account_number": r.account.number,
                "status": "skipped" if r.skip else "queued",
                "reason": r.skip,
                "mode": r.mode,
                "placeholders": r.values,
                "due_at": due,
                "attempts": 0,
                "created_at": now,
            }
            for r in page
        ]
        insert = postgresql.insert if not self.db.is_sqlite else sqlite.insert
        stmt = insert(ReminderSend).on_conflict_do_nothing(
            index_elements=["campaign_id", "contact_id", "period_key"]
        )
        async with self.db.write() as conn:
            result = await conn.execute(stmt, rows)
        return max(result.rowcount or 0, 0)

    async def _open(self, campaign_id: int) -> int:
        async with self.db.session() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(ReminderSend)
                    .where(ReminderSend.campaign_id == campaign_id, ReminderSend.status.in_(OPEN))
                )
                or 0
            )

    async def _set_state(self, campaign_id: int, state: str, *, expect: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(ReminderCampaign)
                .where(ReminderCampaign.id == campaign_id, ReminderCampaign.state == expect)
                .values(state=state, updated_at=utcnow())
            )

    # ------------------------------------------------------------------ sending
    async def send_due(self) -> bool:
        """One pass: recover what dead processes left, claim, send, record. True when
        it claimed a full batch (there may be more)."""
        await self._recover()
        claimed = await self._claim()
        if not claimed:
            return False
        flight = _Pass(claimed[0].token, {c.send_id for c in claimed})
        stop = asyncio.Event()
        heartbeat = asyncio.create_task(self._heartbeat(flight, stop), name="reminders-lease")
        try:
            await asyncio.gather(*(self._deliver(flight, c) for c in claimed))
        finally:
            stop.set()
            await heartbeat
        return len(claimed) >= self.batch

    async def _heartbeat(self, flight: _Pass, stop: asyncio.Event) -> None:
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
                async with self.db.write() as conn:
                    await conn.execute(
                        update(ReminderSend)
                        .where(
                            ReminderSend.id.in_(ids),
                            ReminderSend.lease_token == flight.token,
                            ReminderSend.status.in_(("claimed", "sending")),
                        )
                        .values(locked_until=utcnow() + self.lease)
                    )
            except Exception:
                log.exception("could not renew the lease of %d reminders", len(ids))

    async def _recover(self) -> None:
        """A claim whose lease ran out: not yet sent goes back to the queue; caught in
        the middle of the platform call is ``interrupted`` — it may have arrived, so it
        is never sent a second time."""
        now = utcnow()
        async with self.db.transaction() as session:
            await session.execute(
                update(ReminderSend)
                .where(ReminderSend.status == "claimed", ReminderSend.locked_until < now)
                .values(status="queued", locked_until=None, lease_token=None)
            )
            query = select(ReminderSend).where(
                ReminderSend.status == "sending", ReminderSend.locked_until < now
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            stale = list(await session.scalars(query))
            published: list[Event] = []
            for row in stale:
                row.status = "interrupted"
                row.reason = "the process stopped during the send: not repeated"
                row.locked_until = None
                if row.message_id is not None:
                    await session.execute(
                        update(Message)
                        .where(Message.id == row.message_id, Message.delivery == "pending")
                        .values(delivery="failed", delivery_error=row.reason)
                    )
                published.append(_failed_event(row.campaign_id, row, row.reason, None))
            if published:
                published = await eventlog.record(session, published, now)
        if published:
            log.warning("reminders: %d sends interrupted by a stopped process", len(published))
            await self.bus.publish_many(published)

    async def _claim(self) -> list[_Claimed]:
        now = utcnow()
        async with self.db.session() as session:
            running = list(
                await session.scalars(
                    select(ReminderCampaign).where(ReminderCampaign.state == "running")
                )
            )
            backlog = dict(
                (
                    await session.execute(
                        select(OutboxItem.channel_id, func.count())
                        .where(OutboxItem.status.in_(("pending", "sending")))
                        .group_by(OutboxItem.channel_id)
                    )
                ).all()
            )
        local = now.astimezone(self.tz)
        awake = {c.id: c for c in running if quiet.quiet_until(local, c.quiet_hours) is None}
        if not awake:
            return []
        busy = [cid for cid, n in backlog.items() if n >= self.settings.reminders.outbox_backlog]
        async with self.db.transaction() as session:
            query = (
                select(ReminderSend.id)
                .where(
                    ReminderSend.status == "queued",
                    ReminderSend.due_at <= now,
                    ReminderSend.campaign_id.in_(list(awake)),
                )
                .order_by(ReminderSend.due_at, ReminderSend.id)
                .limit(self.batch)
            )
            if busy:
                query = query.where(ReminderSend.channel_id.not_in(busy))
            if not self.db.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = list(await session.scalars(query))
            if not ids:
                return []
            token = secrets.token_hex(16)
            # Guarded by the status: on SQLite (no row locks) another process may have
            # read the same rows; only the rows this update took carry our token.
            await session.execute(
                update(ReminderSend)
                .where(ReminderSend.id.in_(ids), ReminderSend.status == "queued")
                .values(
                    status="claimed",
                    lease_token=token,
                    locked_until=now + self.lease,
                    attempts=ReminderSend.attempts + 1,
                )
            )
            rows = list(
                await session.scalars(
                    select(ReminderSend)
                    .where(ReminderSend.lease_token == token, ReminderSend.status == "claimed")
                    .order_by(ReminderSend.id)
                )
            )
        return [
            _Claimed(
                send_id=r.id,
                campaign=awake[r.campaign_id],
                contact_id=r.contact_id,
                identity_id=r.identity_id,
                channel_id=r.channel_id,
                values=dict(r.placeholders or {}),
                message_id=r.message_id,
                attempts=r.attempts,
                token=token,
            )
            for r in rows
        ]

    async def _deliver(self, flight: _Pass, c: _Claimed) -> None:
        channel = self.channels.get(c.channel_id or "")
        try:
            if channel is None:
                await self._skip(c, "channel_not_configured")
                return
            async with self._slots[channel.id]:
                await self._give_way()
                try:
                    prepared = await self._prepare(c)
                except _Lost:
                    return
                if prepared is None:
                    return
                await self.throttle.take(channel.type, prepared.recipient)
                if self.before_send is not None:
                    await self.before_send(prepared)
                result: SendResult | None = None
                error: SendError | None = None
                try:
                    result = await self._call(channel, prepared)
                except SendError as exc:
                    error = exc
                except Exception as exc:
                    log.exception("channel %s failed to send reminder %s", channel.id, c.send_id)
                    error = SendError(f"{type(exc).__name__}: {exc}")
                if error is not None and error.retry_after is not None:
                    await self.throttle.pause(channel.type, error.retry_after)
                await self._record(prepared, result, error)
        finally:
            flight.held.discard(c.send_id)

    async def _skip(self, c: _Claimed, reason: str) -> None:
        async with self.db.transaction() as session:
            await session.execute(
                update(ReminderSend)
                .where(
                    ReminderSend.id == c.send_id,
                    ReminderSend.status == "claimed",
                    ReminderSend.lease_token == c.token,
                )
                .values(status="skipped", reason=reason, locked_until=None)
            )

    async def _prepare(self, c: _Claimed) -> _Prepared | None:
        """Check again what may have changed since expansion (a «стоп», a block, the
        WhatsApp window), then commit the message and ``sending`` together."""
        now = utcnow()
        campaign = c.campaign
        async with self.db.transaction() as session:
            consent = await session.scalar(
                select(ReminderConsent.state).where(ReminderConsent.contact_id == c.contact_id)
            )
            identity = await session.get(ChannelIdentity, c.identity_id) if c.identity_id else None
            skip: str | None = None
            mode = "text"
            conversation: Conversation | None = None
            if consent == "out":
                skip = OPTED_OUT
            elif identity is None or identity.contact_id != c.contact_id:
                skip = "identity_gone"
            else:
                last_wrote = await session.scalar(
                    select(func.max(Message.created_at)).where(
                        Message.identity_id == identity.id, Message.author == "customer"
                    )
                )
                refused = await session.scalar(
                    select(ReminderUnreachable.at).where(
                        ReminderUnreachable.identity_id == identity.id
                    )
                )
                if refused is not None and (last_wrote is None or refused >= last_wrote):
                    skip = UNREACHABLE
                elif self.channels[identity.channel_id].type == "whatsapp" and (
                    last_wrote is None or now - last_wrote > WHATSAPP_WINDOW
                ):
                    if self.audience.template_for(campaign):
                        mode = "template"
                    else:
                        skip = WHATSAPP_WINDOW_CLOSED
                conversation = await session.scalar(
                    select(Conversation)
                    .where(Conversation.identity_id == identity.id)
                    .order_by(Conversation.id.desc())
                    .limit(1)
                )
                if skip is None and conversation is None:
                    skip = "no_conversation"
            if skip is not None:
                await session.execute(
                    update(ReminderSend)
                    .where(
                        ReminderSend.id == c.send_id,
                        ReminderSend.status == "claimed",
                        ReminderSend.lease_token == c.token,
                    )
                    .values(status="skipped", reason=skip, locked_until=None)
                )
                return None
            assert identity is not None and conversation is not None
            published: list[Event] = []
            message = await session.get(Message, c.message_id) if c.message_id else None
            if message is None:
                values = dict(c.values)
                values["link"] = self._link(session, campaign, conversation, published)
                text = render(campaign.text, values)
                message = Message(
                    conversation_id=conversation.id,
                    identity_id=identity.id,
                    channel_id=identity.channel_id,
                    author="bot",
                    text=text,
                    buttons=[{"title": b.title, "payload": b.payload} for b in _buttons(campaign)],
                    meta={"reminder": {"campaign_id": campaign.id, "send_id": c.send_id}},
                    handled=True,
                    delivery="pending",
                    created_at=now,
                )
                session.add(message)
                await session.flush()
            conn = await session.connection()
            moved = await conn.execute(
                update(ReminderSend)
                .where(
                    ReminderSend.id == c.send_id,
                    ReminderSend.status == "claimed",
                    ReminderSend.lease_token == c.token,
                )
                .values(
                    status="sending",
                    mode=mode,
                    message_id=message.id,
                    locked_until=now + self.lease,
                )
            )
            if moved.rowcount != 1:
                # Taken over meanwhile (this process stalled past its lease): not ours.
                raise _Lost()
            if published:
                await eventlog.record(session, published, now)
        return _Prepared(
            claimed=c,
            message=message,
            recipient=identity.external_id,
            mode=mode,
            text=message.text,
            buttons=tuple(Button(b["title"], b["payload"]) for b in message.buttons or []),
        )

    def _link(
        self,
        session: Any,
        campaign: ReminderCampaign,
        conversation: Conversation,
        published: list[Event],
    ) -> str:
        """The payment link, tracked like every link the bot sends (a click counts
        against the campaign: intent ``reminder:<id>``)."""
        url = self.settings.company.links.get("payment", "")
        base = self.settings.public_url.rstrip("/")
        if "{link}" not in campaign.text or not url or not base:
            return url
        token = secrets.token_urlsafe(9)
        intent = f"reminder:{campaign.id}"
        session.add(
            TrackedLink(
                token=token,
                url=url,
                title="Оплатить",
                conversation_id=conversation.id,
                intent=intent,
                channel_id=conversation.channel_id,
                created_at=utcnow(),
            )
        )
        published.append(
            Event(
                events.LINK_SENT,
                {
                    "conversation_id": conversation.id,
                    "channel_id": conversation.channel_id,
                    "token": token,
                    "url": url,
                    "intent": intent,
                },
            )
        )
        return f"{base}/r/{token}"

    async def _call(self, channel: Channel, p: _Prepared) -> SendResult:
        if p.mode == "template":
            send_template = getattr(channel, "send_template", None)
            if send_template is None:
                raise SendError(f"channel {channel.id} cannot send templates", permanent=True)
            spec = self.audience.template_for(p.claimed.campaign)
            name, _, language = spec.partition(":")
            names = self.settings.reminders.whatsapp_parameters
            params = [str(p.claimed.values.get(n, "")) for n in names]
            result: SendResult = await send_template(
                p.recipient,
                name,
                language or self.settings.reminders.whatsapp_language,
                params,
                quick_reply=(
                    t.P_REMINDERS_OFF
                    if self.settings.reminders.whatsapp_unsubscribe_button
                    else None
                ),
            )
            return result
        return await channel.send(
            OutgoingMessage(
                message_id=p.message.id,
                conversation_id=p.message.conversation_id,
                recipient=p.recipient,
                text=p.text,
                buttons=p.buttons,
            )
        )

    async def _record(
        self, p: _Prepared, result: SendResult | None, error: SendError | None
    ) -> None:
        now = utcnow()
        c = p.claimed
        published: list[Event] = []
        async with self.db.transaction() as session:
            if result is not None:
                await session.execute(
                    update(ReminderSend)
                    .where(ReminderSend.id == c.send_id)
                    .values(status="sent", sent_at=now, locked_until=None, reason=None)
                )
                meta = dict(p.message.meta or {})
                if result.external_id:
                    meta["platform_id"] = result.external_id
                if p.mode == "template":
                    meta["template"] = self.audience.template_for(c.campaign)
                await session.execute(
                    update(Message)
                    .where(Message.id == p.message.id)
                    .values(delivery="sent", meta=meta)
                )
                published.append(
                    Event(
                        events.REMINDER_SENT,
                        {
                            "campaign_id": c.campaign.id,
                            "send_id": c.send_id,
                            "contact_id": c.contact_id,
                            "conversation_id": p.message.conversation_id,
                            "message_id": p.message.id,
                            "channel_id": p.message.channel_id,
                            "mode": p.mode,
                        },
                    )
                )
            else:
                assert error is not None
                final = error.permanent or c.attempts >= MAX_ATTEMPTS
                if final:
                    await session.execute(
                        update(ReminderSend)
                        .where(ReminderSend.id == c.send_id)
                        .values(status="failed", reason=error.reason[:300], locked_until=None)
                    )
                    await session.execute(
                        update(Message)
                        .where(Message.id == p.message.id)
                        .values(delivery="failed", delivery_error=error.reason)
                    )
                    if error.permanent and not _NOT_THE_CUSTOMER.search(error.reason):
                        await self._mark_unreachable(session, p.message.identity_id, error.reason)
                    published.append(
                        Event(
                            events.REMINDER_FAILED,
                            {
                                "campaign_id": c.campaign.id,
                                "send_id": c.send_id,
                                "contact_id": c.contact_id,
                                "conversation_id": p.message.conversation_id,
                                "message_id": p.message.id,
                                "channel_id": p.message.channel_id,
                                "error": error.reason[:300],
                            },
                        )
                    )
                else:
                    # The platform refused before taking it (429, 5xx, network): again
                    # later, with the same message (VK's random_id stays the same).
                    delay = (
                        error.retry_after if error.retry_after is not None else backoff(c.attempts)
                    )
                    await session.execute(
                        update(ReminderSend)
                        .where(ReminderSend.id == c.send_id)
                        .values(
                            status="queued",
                            reason=error.reason[:300],
                            due_at=now + timedelta(seconds=delay),
                            locked_until=None,
                        )
                    )
            published = await eventlog.record(session, published, now)
        await self.bus.publish_many(published)

    async def _mark_unreachable(self, session: Any, identity_id: int, reason: str) -> None:
        insert = postgresql.insert if not self.db.is_sqlite else sqlite.insert
        stmt = insert(ReminderUnreachable).values(
            identity_id=identity_id, reason=reason[:300], at=utcnow()
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["identity_id"],
            set_={"reason": stmt.excluded.reason, "at": stmt.excluded.at},
        )
        await session.execute(stmt)


class _Lost(Exception):
    """This pass's claim was taken over by another process."""


def _buttons(campaign: ReminderCampaign) -> tuple[Button, ...]:
    """A way to act on the reminder, and always a way out of reminders."""
    first: tuple[Button, ...] = ()
    if campaign.kind == "readings_window":
        first = (t.BTN_READINGS,)
    elif campaign.kind == "payment_due":
        first = (t.BTN_BALANCE,)
    return (*first, t.BTN_REMINDERS_OFF)


def _failed_event(
    campaign_id: int, row: ReminderSend, reason: str, conversation_id: int | None
) -> Event:
    return Event(
        events.REMINDER_FAILED,
        {
            "campaign_id": campaign_id,
            "send_id": row.id,
            "contact_id": row.contact_id,
            "conversation_id": conversation_id,
            "message_id": row.message_id,
            "channel_id": row.channel_id,
            "error": reason,
        },
    )
