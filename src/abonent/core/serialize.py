"""Message objects as the client API (docs/client-api.md) and the bus carry them."""

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
        # Photos and documents that came with it (fetch one: GET /attachments/{id}).
        "attachments": list((message.meta or {}).get("files") or []),
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


def row_event_data(row: dict[str, Any]) -> dict[str, Any]:
    """The same as ``message_event_data`` for a message written with Core (a dict of values)."""
    return {
        "id": row["id"],
        "author": row["author"],
        "text": row["text"],
        "buttons": list(row.get("buttons") or []),
        "created_at": row["created_at"].isoformat(),
        "conversation_id": row["conversation_id"],
        "identity_id": row["identity_id"],
        "channel_id": row["channel_id"],
        "payload": row.get("payload"),
        "author_id": row.get("author_id"),
        "attachments": list((row.get("meta") or {}).get("files") or []),
    }
