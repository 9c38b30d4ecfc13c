"""What happens in the chat centre, as events: the durable log's types and the bus's.

Every fact (a message received, a conversation queued, an operator going on break …)
is an ``Event`` written to the ``events`` table in the same transaction as the fact
itself (``core.eventlog.record``) and published on the bus after the commit. Live
views read the bus; derived state (statistics, later hooks and webhooks) reads the
table by cursor. The names below are an outside interface: reports, hooks and the
company's integrations rely on them, so they are only ever added to.

What an event stores (``data``) is small: ids, kinds, numbers; never a message's
text. What live views need on top of that (the message as the client API shows it)
travels in ``live`` on the bus only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Messages. ``received``: a customer wrote; ``sent``: the bot, an operator or the
# system wrote to the customer; ``delivered``: the platform accepted it (the web chat's
# client reads the store: its ``sent`` says ``delivered``); ``failed``: it cannot be
# delivered (blocked bot, closed 24-hour window …).
MESSAGE_RECEIVED = "message.received"
MESSAGE_SENT = "message.sent"
MESSAGE_DELIVERED = "message.delivered"
MESSAGE_FAILED = "message.failed"
NOTE_ADDED = "note.added"

CONVERSATION_STARTED = "conversation.started"
CONVERSATION_QUEUED = "conversation.queued"
CONVERSATION_ASSIGNED = "conversation.assigned"
CONVERSATION_TRANSFERRED = "conversation.transferred"
CONVERSATION_RETURNED_TO_BOT = "conversation.returned_to_bot"
CONVERSATION_LEFT_QUEUE = "conversation.left_queue"
CONVERSATION_CLOSED = "conversation.closed"

OPERATOR_SIGNED_IN = "operator.signed_in"
OPERATOR_SIGNED_OUT = "operator.signed_out"
OPERATOR_STATUS = "operator.status"

# The bot and the consultant.
TEXT_RECOGNISED = "text.recognised"
TEXT_FALLBACK = "text.fallback"
FLOW_STARTED = "flow.started"
READINGS_SUBMITTED = "readings.submitted"
# Readings queued while an HTTP billing was down, later delivered to it or refused by it.
READINGS_DELIVERED = "readings.delivered_to_billing"
READINGS_REJECTED_BY_BILLING = "readings.rejected_by_billing"
BALANCE_ASKED = "balance.asked"
APPEAL_CREATED = "appeal.created"
LINK_SENT = "link.sent"
LINK_CLICKED = "link.clicked"
PROFANITY_DETECTED = "profanity.detected"
CSAT_ASKED = "csat.asked"
CSAT_RATED = "csat.rated"

# Files. ``stored``: a messenger's file was fetched into the attachments directory
# (an upload from the widget or the workspace is stored with its message at once).
# ``message.received`` / ``message.sent`` carry ``attachments``: [{kind, mime, size}].
ATTACHMENT_STORED = "attachment.stored"

# Reminders (automation/reminders): ``sent`` the platform accepted a campaign's reminder,
# ``failed`` it refused it (or the send was interrupted: never repeated); a contact
# turned reminders off or back on. Skipped recipients stay in ``reminder_sends`` only.
REMINDER_SENT = "reminder.sent"
REMINDER_FAILED = "reminder.failed"
REMINDER_OPTED_OUT = "reminder.opted_out"
REMINDER_OPTED_IN = "reminder.opted_in"

# Written by the migration that created the log: what happened before it is history
# that ``abonent stats rebuild`` backfills from messages and conversations.
LOG_STARTED = "log.started"

DURABLE = frozenset(
    {
        MESSAGE_RECEIVED,
        MESSAGE_SENT,
        MESSAGE_DELIVERED,
        MESSAGE_FAILED,
        NOTE_ADDED,
        CONVERSATION_STARTED,
        CONVERSATION_QUEUED,
        CONVERSATION_ASSIGNED,
        CONVERSATION_TRANSFERRED,
        CONVERSATION_RETURNED_TO_BOT,
        CONVERSATION_LEFT_QUEUE,
        CONVERSATION_CLOSED,
        OPERATOR_SIGNED_IN,
        OPERATOR_SIGNED_OUT,
        OPERATOR_STATUS,
        TEXT_RECOGNISED,
        TEXT_FALLBACK,
        FLOW_STARTED,
        READINGS_SUBMITTED,
        READINGS_DELIVERED,
        READINGS_REJECTED_BY_BILLING,
        BALANCE_ASKED,
        APPEAL_CREATED,
        LINK_SENT,
        LINK_CLICKED,
        PROFANITY_DETECTED,
        CSAT_ASKED,
        CSAT_RATED,
        ATTACHMENT_STORED,
        REMINDER_SENT,
        REMINDER_FAILED,
        REMINDER_OPTED_OUT,
        REMINDER_OPTED_IN,
        LOG_STARTED,
    }
)

# Signals for live views and this process's loops only; not facts, never stored.
MESSAGE_DUPLICATE = "message.duplicate"
OUTBOX_ENQUEUED = "outbox.enqueued"
# A webhook refused as forged or malformed: counted, never stored (a forger must not be
# able to fill the database).
WEBHOOK_REJECTED = "webhook.rejected"


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
    # Set when the event is recorded; the bus carries it as ``data["occurred_at"]``.
    occurred_at: datetime | None = None
    # Extra fields for live views (the message as clients show it); never stored.
    live: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def durable(self) -> bool:
        return self.type in DURABLE

    def for_bus(self) -> Event:
        """What bus subscribers see: the stored data, the live extras and the time."""
        if self.live is None and self.occurred_at is None:
            return self
        data = {**self.data, **(self.live or {})}
        if self.occurred_at is not None:
            data.setdefault("occurred_at", self.occurred_at.isoformat())
        return Event(self.type, data, self.occurred_at)
