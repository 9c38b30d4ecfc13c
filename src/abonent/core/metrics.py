"""Prometheus counters fed by bus events: a listener, never code inside the pipeline."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from abonent.core import events
from abonent.core.bus import LocalBus
from abonent.core.events import Event


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
        # Events relayed from other processes are counted there, not here.
        bus.subscribe(self._on_event, local_only=True)

    def _on_event(self, event: Event) -> None:
        data = event.data
        if event.type == events.MESSAGE_CREATED:
            self.messages.labels(data.get("channel_id", "?"), data.get("author", "?")).inc()
        elif event.type == events.MESSAGE_SENT:
            self.deliveries.labels(data.get("channel_id", "?"), "sent").inc()
        elif event.type == events.MESSAGE_FAILED:
            self.deliveries.labels(data.get("channel_id", "?"), "failed").inc()
        elif event.type == events.MESSAGE_DUPLICATE:
            self.duplicates.labels(data.get("channel_id", "?")).inc()
        elif event.type.startswith("conversation."):
            self.conversations.labels(event.type.split(".", 1)[1]).inc()
        elif event.type == events.READINGS_SUBMITTED:
            self.readings.inc()
        elif event.type == events.PROFANITY_DETECTED:
            self.profanity.inc()
        elif event.type == events.LINK_CLICKED:
            self.link_clicks.labels(data.get("intent") or "?").inc()
        elif event.type == events.APPEAL_CREATED:
            self.appeals.inc()

    def webhook_rejected(self, channel_id: str, status: int) -> None:
        self.webhooks_rejected.labels(channel_id, str(status)).inc()

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))
