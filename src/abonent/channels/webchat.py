"""The site widget and the company's own apps (the client API, docs/client-api.md).

Web-chat clients read messages from the store (WebSocket push, long poll), so a send
has nothing to transmit: it only confirms delivery, and the outbox marks it sent.
"""

from __future__ import annotations

from abonent.channels.base import Channel, OutgoingMessage, SendResult

WEBCHAT_ID = "webchat"


class WebChatChannel(Channel):
    type = "webchat"
    delivers_from_store = True

    async def send(self, message: OutgoingMessage) -> SendResult:
        return SendResult(external_id=None)
