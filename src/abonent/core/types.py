"""Platform-neutral message shapes: what channels produce and what the bot emits."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

# Payloads of the satisfaction rating's buttons (``csat:1`` … ``csat:5``): the inbox
# routes them to the conversation just closed instead of opening a new one.
SURVEY_PREFIX = "csat:"


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def as_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Attachment:
    kind: str  # photo | sticker | voice | video | file | location | contact | other
    url: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class RemoteFile:
    """A photo or document on a messenger's servers, fetched after the message is
    stored (core.attachments): ``ref`` is what the channel needs to download it."""

    kind: str  # image | document: the platform's word; the content decides in the end
    ref: dict[str, Any] = field(hash=False)
    name: str | None = None
    mime: str | None = None
    size: int | None = None


@dataclass(frozen=True)
class InboundMessage:
    """One customer message as a channel parsed it (rasa's UserMessage, our fields)."""

    channel_id: str
    external_user_id: str
    text: str = ""
    payload: str | None = None
    # The platform's own id of this delivery: the dedupe key for retried webhooks.
    external_id: str | None = None
    display_name: str | None = None
    phone: str | None = None
    attachments: tuple[Attachment, ...] = ()
    # Photos and documents to fetch from the platform into the attachments store.
    files: tuple[RemoteFile, ...] = ()
    # Files the customer uploaded already (the web chat): ids of their attachment rows.
    uploads: tuple[int, ...] = ()
    sent_at: datetime | None = None
    # Known already (web chat: the token names it), saves a look-up.
    identity_id: int | None = None


@dataclass(frozen=True)
class Reply:
    """What the bot (or an operator) says; each channel renders the buttons its own way."""

    text: str
    buttons: tuple[Button, ...] = ()
    author: str = "bot"
    meta: dict[str, Any] = field(default_factory=dict)
    # The operator who wrote it (author "operator").
    author_id: int | None = None
    # Files sent with it: ids of attachment rows uploaded for it (core.attachments).
    attachments: tuple[int, ...] = ()
