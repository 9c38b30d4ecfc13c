"""The one interface every channel implements (rasa's input/output split).

Inbound: a platform's webhook request becomes ``InboundMessage`` objects (later
issues add the messenger plugins). Outbound: ``send`` delivers one stored message;
what a platform cannot show (too many buttons, too long a text) the channel degrades
itself, so the bot never learns any platform's limits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from abonent.core.types import Button


@dataclass(frozen=True)
class OutgoingMessage:
    message_id: int
    conversation_id: int
    recipient: str  # the identity's external id on the platform
    text: str
    buttons: tuple[Button, ...] = ()


@dataclass(frozen=True)
class SendResult:
    external_id: str | None = None


class SendError(Exception):
    """A failed send. ``permanent`` stops retries (user blocked the bot, outside a window)."""

    def __init__(
        self, reason: str, *, permanent: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.retry_after = retry_after


class Channel(ABC):
    type: str = ""
    # Clients read this channel's messages from the store (web chat): a reply is
    # delivered when it is written, with no outbox round.
    delivers_from_store: bool = False

    def __init__(self, channel_id: str) -> None:
        self.id = channel_id

    @abstractmethod
    async def send(self, message: OutgoingMessage) -> SendResult: ...

    async def start(self) -> None:  # noqa: B027 (optional hook)
        """Open connections (HTTP clients) when the server starts."""

    async def stop(self) -> None:  # noqa: B027 (optional hook)
        """Release what ``start`` opened."""


def numbered_text(text: str, buttons: tuple[Button, ...]) -> str:
    """The degraded form of buttons for platforms without them: «1. Передать показания»."""
    if not buttons:
        return text
    lines = [text, ""] + [f"{i}. {b.title}" for i, b in enumerate(buttons, 1)]
    return "\n".join(lines)
