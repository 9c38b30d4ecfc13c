"""Message objects as the client API and the bus carry them (CONTRACT §5)."""

from __future__ import annotations

from typing import Any

from abonent.db.models import Message


def message_dict(message: Message) -> dict[str, Any]:
    return {
        "id": message.id,
        "author": message.author,
        "text": message.text,
        "buttons": list(message.buttons or []),
        "created_at": message.created_at.isoformat(),
    }


def message_event_data(message: Message) -> dict[str, Any]:
    """The public fields plus what listeners route by; never the customer's secrets."""
    data = message_dict(message)
    data.update(
        conversation_id=message.conversation_id,
        identity_id=message.identity_id,
        channel_id=message.channel_id,
        payload=message.payload,
    )
    return data
