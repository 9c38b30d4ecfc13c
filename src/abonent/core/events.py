"""Event names on the bus. Listeners (live views, statistics, hooks) subscribe by these."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MESSAGE_CREATED = "message.created"
MESSAGE_SENT = "message.sent"
MESSAGE_FAILED = "message.failed"
MESSAGE_DUPLICATE = "message.duplicate"
CONVERSATION_STARTED = "conversation.started"
CONVERSATION_QUEUED = "conversation.queued"
CONVERSATION_ASSIGNED = "conversation.assigned"
CONVERSATION_TRANSFERRED = "conversation.transferred"
CONVERSATION_CLOSED = "conversation.closed"
CONVERSATION_RETURNED_TO_BOT = "conversation.returned_to_bot"
OUTBOX_ENQUEUED = "outbox.enqueued"
READINGS_SUBMITTED = "readings.submitted"
APPEAL_CREATED = "appeal.created"
PROFANITY_DETECTED = "profanity.detected"
LINK_CLICKED = "link.clicked"
OPERATOR_STATUS = "operator.status"


@dataclass(frozen=True)
class Event:
    type: str
    data: dict[str, Any]
