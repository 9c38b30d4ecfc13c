"""Prometheus metrics fed by bus events: a listener, never code inside the pipeline.

Counters and histograms are per process (events relayed from other processes are
counted there); the gauges that describe shared state (queue length, outbox backlog,
events the durable consumers have not applied yet) are read from the database at
scrape time, so every process reports the same, current figure.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from sqlalchemy import func, select

from abonent.core import events
from abonent.core.bus import LocalBus
from abonent.core.eventlog import after
from abonent.core.events import Event
from abonent.db.models import (
    Conversation,
    EventCursor,
    EventRecord,
    OutboxItem,
    WebhookDelivery,
    WebhookEndpointState,
)
from abonent.db.session import Database

# Seconds: from a bot's quick answer to a platform's retries after an outage.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
_REMEMBERED = 10_000


class Metrics:
    def __init__(self, bus: LocalBus) -> None:
        # A registry per app keeps several apps in one process (tests) apart.
        self.registry = CollectorRegistry()
        self.messages = Counter(
            "abonent_messages_total",
            "Messages written, by channel and author",
            ["channel", "author"],
            registry=self.registry,
        )
        self.deliveries = Counter(
            "abonent_deliveries_total",
            "Outgoing deliveries, by channel and result",
            ["channel", "result"],
            registry=self.registry,
        )
        self.duplicates = Counter(
            "abonent_duplicate_deliveries_total",
            "Inbound redeliveries recognised and ignored",
            ["channel"],
            registry=self.registry,
        )
        self.conversations = Counter(
            "abonent_conversation_events_total",
            "Conversation lifecycle events",
            ["event"],
            registry=self.registry,
        )
        self.intents = Counter(
            "abonent_intents_total",
            "Free-text messages the consultant recognised, by intent",
            ["intent"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "abonent_fallbacks_total",
            "Free-text messages the consultant could not answer from the knowledge base",
            registry=self.registry,
        )
        self.profanity = Counter(
            "abonent_profanity", "Customer messages with obscene words", registry=self.registry
        )
        self.link_clicks = Counter(
            "abonent_link_clicks",
            "Clicks on links the bot sent",
            ["intent"],
            registry=self.registry,
        )
        self.appeals = Counter(
            "abonent_appeals", "Appeals registered in the virtual reception", registry=self.registry
        )
        self.readings = Counter(
            "abonent_readings_submitted_total",
            "Readings accepted by the bot",
            registry=self.registry,
        )
        self.webhooks_rejected = Counter(
            "abonent_webhooks_rejected_total",
            "Webhook requests refused (forged or malformed), by channel and status",
            ["channel", "status"],
            registry=self.registry,
        )
        self.hook_runs = Counter(
            "abonent_hook_runs_total",
            "Python hook runs in this process, by hook and outcome (done, error, timeout, "
            "given_up; a readings check's failure: check_error)",
            ["hook", "outcome"],
            registry=self.registry,
        )
        self.reply_latency = Histogram(
            "abonent_reply_seconds",
            "From a customer message stored to the bot's first reply written, by channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.delivery_latency = Histogram(
            "abonent_delivery_seconds",
            "From a reply written to the platform accepting it, by channel",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_length = Gauge(
            "abonent_queue_length",
            "Conversations waiting in the operators' queue",
            registry=self.registry,
        )
        self.outbox_backlog = Gauge(
            "abonent_outbox_backlog",
            "Messages waiting to be sent (pending or being sent), by channel",
            ["channel"],
            registry=self.registry,
        )
        self.events_behind = Gauge(
            "abonent_events_unprocessed",
            "Events a durable consumer (statistics …) has not applied yet",
            ["consumer"],
            registry=self.registry,
        )
        # Outgoing webhooks (automation/webhooks.py counts its own attempts).
        self.webhook_deliveries = Counter(
            "abonent_webhook_deliveries_total",
            "Outgoing webhook attempts by endpoint and outcome "
            "(delivered, retried, failed = given up, gone = 410)",
            ["endpoint", "outcome"],
            registry=self.registry,
        )
        self.webhook_backlog = Gauge(
            "abonent_webhook_backlog",
            "Webhook deliveries waiting (pending or being sent), by endpoint",
            ["endpoint"],
            registry=self.registry,
        )
        self.webhook_disabled = Gauge(
            "abonent_webhook_disabled",
            "1 for an endpoint disabled after failing (an admin re-enables it), else 0",
            ["endpoint"],
            registry=self.registry,
        )
        # --- hardening (web/bounds.py, web/webhooks.py, web/ratelimit.py): counted where
        # the request is judged, since a refused request leaves no event to listen to.
        self.inputs_refused = Counter(
            "abonent_inputs_refused_total",
            "Requests refused or acknowledged unused, by input path and reason",
            ["path", "reason"],
            registry=self.registry,
        )
        self.inputs_cleaned = Counter(
            "abonent_inputs_cleaned_total",
            "Platform messages stored after cleaning (NUL, lone surrogates, over-long "
            "ids and names), by input path and reason",
            ["path", "reason"],
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "abonent_rate_limited_total",
            "Requests answered 429, by endpoint and what was counted (address, conversation)",
            ["endpoint", "scope"],
            registry=self.registry,
        )
        # Customer messages of this process waiting for the bot's reply: id → when stored.
        self._waiting: OrderedDict[int, float] = OrderedDict()
        # Events relayed from other processes are counted there, not here.
        bus.subscribe(self._on_event, local_only=True)

    def _on_event(self, event: Event) -> None:
        data = event.data
        channel = str(data.get("channel_id") or "?")
        if event.type == events.MESSAGE_RECEIVED:
            self.messages.labels(channel, "customer").inc()
            message_id = data.get("message_id")
            if isinstance(message_id, int):
                self._waiting[message_id] = time.monotonic()
                if len(self._waiting) > _REMEMBERED:
                    self._waiting.popitem(last=False)
        elif event.type == events.MESSAGE_SENT:
            self.messages.labels(channel, data.get("author", "?")).inc()
            if data.get("delivered"):
                self.deliveries.labels(channel, "sent").inc()
            asked = self._waiting.pop(data.get("reply_to", -1), None)
            if asked is not None:
                self.reply_latency.labels(channel).observe(time.monotonic() - asked)
        elif event.type == events.NOTE_ADDED:
            self.messages.labels(channel, "note").inc()
        elif event.type == events.MESSAGE_DELIVERED:
            self.deliveries.labels(channel, "sent").inc()
            after = data.get("after_s")
            if isinstance(after, int | float):
                self.delivery_latency.labels(channel).observe(float(after))
        elif event.type == events.MESSAGE_FAILED:
            self.deliveries.labels(channel, "failed").inc()
        elif event.type == events.MESSAGE_DUPLICATE:
            self.duplicates.labels(channel).inc()
        elif event.type.startswith("conversation."):
            self.conversations.labels(event.type.split(".", 1)[1]).inc()
        elif event.type == events.TEXT_RECOGNISED:
            self.intents.labels(str(data.get("intent") or "?")).inc()
        elif event.type == events.TEXT_FALLBACK:
            self.fallbacks.inc()
        elif event.type == events.READINGS_SUBMITTED:
            self.readings.inc()
        elif event.type == events.PROFANITY_DETECTED:
            self.profanity.inc()
        elif event.type == events.LINK_CLICKED:
            self.link_clicks.labels(data.get("intent") or "?").inc()
        elif event.type == events.APPEAL_CREATED:
            self.appeals.inc()
        elif event.type == events.WEBHOOK_REJECTED:
            self.webhooks_rejected.labels(channel, str(data.get("status", "?"))).inc()

    async def refresh(self, db: Database) -> None:
        """The shared gauges, read from the database (at scrape time)."""
        async with db.read() as conn:
            waiting = Conversation.status == "queued"
            queued = await conn.scalar(
                select(func.count()).select_from(Conversation).where(waiting)
            )
            backlog = (
                await conn.execute(
                    select(OutboxItem.channel_id, func.count())
                    .where(OutboxItem.status.in_(("pending", "sending")))
                    .group_by(OutboxItem.channel_id)
                )
            ).all()
            cursors = (
                await conn.execute(
                    select(EventCursor.consumer, EventCursor.tx, EventCursor.last_id)
                )
            ).all()
            hooks_waiting = (
                await conn.execute(
                    select(WebhookDelivery.endpoint_id, func.count())
                    .where(WebhookDelivery.status.in_(("pending", "delivering")))
                    .group_by(WebhookDelivery.endpoint_id)
                )
            ).all()
            endpoints = (
                await conn.execute(
                    select(WebhookEndpointState.endpoint_id, WebhookEndpointState.disabled_at)
                )
            ).all()
            behind: dict[str, int | None] = {}
            for name, tx, last_id in cursors:
                behind[name] = await conn.scalar(
                    select(func.count())
                    .select_from(EventRecord)
                    .where(after(conn.dialect.name, tx, last_id))
                )
        self.queue_length.set(int(queued or 0))
        self.outbox_backlog.clear()
        for channel, count in backlog:
            self.outbox_backlog.labels(channel).set(int(count))
        for name, lag in behind.items():
            self.events_behind.labels(name).set(int(lag or 0))
        self.webhook_backlog.clear()
        for endpoint, _ in endpoints:
            self.webhook_backlog.labels(endpoint).set(0)
        for endpoint, count in hooks_waiting:
            self.webhook_backlog.labels(endpoint).set(int(count))
        for endpoint, disabled_at in endpoints:
            self.webhook_disabled.labels(endpoint).set(1 if disabled_at is not None else 0)

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
