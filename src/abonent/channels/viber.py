"""Viber REST Bot API: a signed webhook in, ``send_message`` out.

What is peculiar about Viber, and what this module does about it:

* Every API answer is HTTP 200; success or failure is the ``status`` field in the body
  (Viber REST API status codes). The status decides between "retry later" (12, too
  many requests: Viber sends no hint, we wait a minute) and "never" (not subscribed, not
  registered, bad token …). A real HTTP 429/5xx can still come from a proxy in front.
* Viber has no callback buttons. A ``reply`` keyboard button sends its ``ActionBody``
  back as the customer's own text, and the client shows that text in the chat. So the
  ActionBody is the button's title (the chat reads «Передать показания», not an id),
  and the title → payload map travels in ``tracking_data``, which Viber echoes on the
  customer's next message. A text that equals a title of the keyboard on screen is
  therefore a press; typing the same words means the same, so nothing is lost. When the
  buttons do not fit a keyboard they become a numbered list, and the map lets «2» pick
  the second one.
* A customer who only opened the chat (``conversation_started``, not subscribed) cannot
  be written to with ``send_message`` (status 6); Viber lets the bot answer that one
  event in the HTTP response instead. We answer with a short welcome and a «Начать»
  button; its press arrives as "/start", so the bot greets with its menu. A subscribed
  customer opening the chat again gets "/start" at once.
* A ``contact`` message carries no sign of whose number it is: a customer can share any
  card from the address book, and the ``share-phone`` button (the only source of the
  customer's own number) is never offered by this bot and sends nothing from desktop
  clients. So the number is kept as a ``contact`` attachment for operators and is not
  linked to the customer.
* ``set_webhook`` makes Viber call the URL with a signed ``webhook`` event and fails
  unless it gets 200, so the server must be running when ``register`` is called.
"""

from __future__ import annotations

import html
import json
import logging
import re
from typing import Any

import httpx
from pydantic import Field

from abonent.channels.base import (
    MessengerChannel,
    OutgoingFile,
    OutgoingMessage,
    SendError,
    SendResult,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    download,
    file_link_text,
    numbered_text,
    parse_json,
    response_json,
    retry_after_header,
    send_parts,
    signed_with,
    split_text,
    transport_error,
    unix_time,
)
from abonent.config import ChannelSettings
from abonent.core.attachments import Fetched, FetchError
from abonent.core.types import Attachment, Button, InboundMessage, RemoteFile

log = logging.getLogger(__name__)

TEXT_LIMIT = 7000
# ``picture`` takes JPEG/PNG up to 1 MB; bigger photos go as ``file`` (up to 50 MB).
PICTURE_LIMIT = 1024 * 1024
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")
SENDER_NAME_LIMIT = 28
TRACKING_LIMIT = 4000
BUTTON_TEXT_LIMIT = 250
MAX_ROWS = 12  # what fits a phone in portrait mode (Viber FAQ)
MAX_BUTTONS = 2 * MAX_ROWS  # two half-width buttons a row
TOO_MANY_REQUESTS_DELAY = 60.0
START_TITLE = "Начать"
# Events we subscribe to; ``message`` always comes, delivered/seen would only be noise.
EVENT_TYPES = ("conversation_started", "subscribed", "unsubscribed", "failed")
SIGNATURE_HEADER = "X-Viber-Content-Signature"

# Status codes after which the same request can never succeed (Viber REST API).
PERMANENT_STATUSES: dict[int, str] = {
    1: "invalid URL",
    2: "the auth token is wrong: check the channel's token",
    3: "Viber rejected the request as malformed",
    4: "a required field is missing",
    5: "the customer is not a Viber user any more",
    6: "the customer has not subscribed to the bot or has unsubscribed",
    7: "the bot account is blocked",
    8: "the bot account is not found",
    9: "the bot account is suspended",
    10: "no webhook is set: run `abonent channels register`",
    11: "the customer has no device that can receive this message",
    13: "the customer's Viber is too old for this message",
}
TOO_MANY_REQUESTS = 12

_NUMBER_RE = re.compile(r"^\s*(\d{1,2})\s*[.)]?\s*$")
_ATTACHMENT_KINDS = {
    "picture": "photo",
    "video": "video",
    "file": "file",
    "sticker": "sticker",
    "location": "location",
    "contact": "contact",
    "url": "other",
}


class ViberSettings(ChannelSettings):
    """``[[channels]] type = "viber"``: the bot's token and how its messages are signed."""

    # Sent as X-Viber-Auth-Token, and the HMAC key of X-Viber-Content-Signature.
    token: str = Field(min_length=1)
    # The sender name every message shows (Viber requires one, at most 28 characters).
    name: str = Field(min_length=1, max_length=SENDER_NAME_LIMIT)
    avatar: str | None = None
    # The bot's URI: the widget links to viber://pa?chatURI=<uri>.
    uri: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.-]+$")
    # Answer to a customer who opened the chat but has not written yet; "" sends none.
    welcome: str = "Здравствуйте! Нажмите «Начать» или просто напишите свой вопрос."


class ViberChannel(MessengerChannel):
    type = "viber"
    settings_model = ViberSettings
    default_api_base = "https://chatapi.viber.com/pa"
    # Viber downloads an operator's file itself, from /files/<token>.
    files_by_url = True

    settings: ViberSettings

    def deep_link(self) -> str | None:
        return f"viber://pa?chatURI={self.settings.uri}" if self.settings.uri else None

    # ------------------------------------------------------------------ webhook
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise WebhookRejected(403, f"{SIGNATURE_HEADER} is missing")
        if not signed_with(given, self.settings.token, request.body):
            raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the body")
        event = parse_json(request.body)
        if not isinstance(event, dict) or not isinstance(event.get("event"), str):
            raise WebhookRejected(400, "not a Viber callback (no 'event')")
        kind = event["event"]
        if kind == "message":
            return WebhookResult(messages=[self._message(event)])
        if kind == "conversation_started":
            return self._conversation_started(event)
        if kind == "failed":
            log.warning(
                "viber %s: message %s to %s failed: %s",
                self.id,
                event.get("message_token"),
                event.get("user_id"),
                event.get("desc"),
            )
        # webhook (set_webhook's handshake), subscribed, unsubscribed, delivered, seen …
        return WebhookResult()

    def _message(self, event: dict[str, Any]) -> InboundMessage:
        sender = event.get("sender")
        message = event.get("message")
        token = event.get("message_token")
        if not isinstance(sender, dict) or not isinstance(sender.get("id"), str):
            raise WebhookRejected(400, "message without sender.id")
        if not isinstance(message, dict) or token is None:
            raise WebhookRejected(400, "message without message or message_token")
        kind = str(message.get("type") or "")
        raw_text = message.get("text")
        text = raw_text if isinstance(raw_text, str) else ""
        payload: str | None = None
        attachments: tuple[Attachment, ...] = ()
        files: tuple[RemoteFile, ...] = ()
        if kind == "text":
            text, payload = _decode_press(text, message.get("tracking_data"))
        else:
            attachments = (_attachment(kind, message),)
            files = _files(kind, message)
        return InboundMessage(
            files=files,
            channel_id=self.id,
            external_user_id=sender["id"],
            text=text or "",
            payload=payload,
            external_id=f"t:{token}",
            display_name=_name(sender),
            attachments=attachments,
            sent_at=unix_time(event.get("timestamp"), ms=True),
        )

    def _conversation_started(self, event: dict[str, Any]) -> WebhookResult:
        user = event.get("user")
        token = event.get("message_token")
        if not isinstance(user, dict) or not isinstance(user.get("id"), str) or token is None:
            raise WebhookRejected(400, "conversation_started without user.id or message_token")
        context = event.get("context") if isinstance(event.get("context"), str) else ""
        if event.get("subscribed") is True:
            # A subscriber opened the chat again (a deep link, the «Message» button).
            return WebhookResult(
                messages=[
                    InboundMessage(
                        channel_id=self.id,
                        external_user_id=user["id"],
                        text=f"/start {context}".strip(),
                        external_id=f"start:{token}",
                        display_name=_name(user),
                        sent_at=unix_time(event.get("timestamp"), ms=True),
                    )
                ]
            )
        if not self.settings.welcome:
            return WebhookResult()
        # Not subscribed: send_message would fail; the response body is the one message
        # Viber delivers. Nothing is stored until the customer writes (or presses).
        tracking: dict[str, Any] = {"v": 1, "start": START_TITLE}
        if context:
            tracking["ctx"] = context[:200]
        welcome = {
            **self._sender(),
            "type": "text",
            "text": self.settings.welcome,
            "keyboard": _keyboard((Button(START_TITLE, START_TITLE),)),
            "tracking_data": json.dumps(tracking, ensure_ascii=False),
        }
        return WebhookResult(
            body=json.dumps(welcome, ensure_ascii=False), media_type="application/json"
        )

    # ------------------------------------------------------------------ sending
    def _sender(self) -> dict[str, Any]:
        sender: dict[str, str] = {"name": self.settings.name}
        if self.settings.avatar:
            sender["avatar"] = self.settings.avatar
        return {"sender": sender}

    async def fetch_file(self, remote: dict[str, Any], limit: int) -> Fetched:
        """Viber gives a plain media URL (on its CDN, valid for a while)."""
        url = remote.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FetchError("no media URL", permanent=True)
        return Fetched(await download(self.http, url, limit), remote.get("name"))

    async def send(self, message: OutgoingMessage) -> SendResult:
        text = message.text
        buttons = message.buttons
        native = bool(buttons) and _fits_keyboard(buttons)
        if buttons and not native:
            text = numbered_text(text, buttons)
        parts = split_text(text, TEXT_LIMIT) if text or not message.files else []
        files = message.files

        async def send(i: int) -> str | None:
            if i >= len(parts):
                answer = await self._call(
                    "send_message",
                    {
                        "receiver": message.recipient,
                        **self._sender(),
                        **_file_body(files[i - len(parts)]),
                    },
                )
                return str(answer["message_token"]) if "message_token" in answer else None
            body: dict[str, Any] = {
                "receiver": message.recipient,
                "type": "text",
                "text": parts[i],
                **self._sender(),
            }
            if buttons and i == len(parts) - 1:
                if native:
                    body["keyboard"] = _keyboard(buttons)
                tracking = _tracking(buttons, numbered=not native)
                if tracking is not None:
                    body["tracking_data"] = tracking
            answer = await self._call("send_message", body)
            return str(answer["message_token"]) if "message_token" in answer else None

        token = await send_parts(len(parts) + len(files), message.skip_parts, send)
        return SendResult(external_id=token)

    async def _call(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        """One API call; a non-zero ``status`` (or a proxy's HTTP error) → ``SendError``."""
        try:
            response = await self.http.post(
                f"{self.api_base}/{endpoint}",
                json=body,
                headers={"X-Viber-Auth-Token": self.settings.token},
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if response.status_code == 429:
            raise SendError(
                "viber HTTP 429: too many requests",
                retry_after=retry_after_header(response, TOO_MANY_REQUESTS_DELAY),
            )
        if response.status_code >= 500 or response.status_code == 408:
            raise SendError(f"viber HTTP {response.status_code}: {response.text[:200]}")
        if response.status_code != 200:
            raise SendError(
                f"viber HTTP {response.status_code} on {endpoint}: {response.text[:200]}",
                permanent=True,
            )
        answer = response_json(response)
        if not isinstance(answer, dict) or not isinstance(answer.get("status"), int):
            raise SendError(f"viber: unexpected answer to {endpoint}: {response.text[:200]}")
        status: int = answer["status"]
        if status == 0:
            return answer
        said = str(answer.get("status_message") or "")
        if status == TOO_MANY_REQUESTS:
            raise SendError(
                f"viber 12: {said or 'tooManyRequests'}", retry_after=TOO_MANY_REQUESTS_DELAY
            )
        if status in PERMANENT_STATUSES:
            raise SendError(
                f"viber {status}: {said} ({PERMANENT_STATUSES[status]})", permanent=True
            )
        # 14 and up: "general failure" in Viber's words; worth the outbox's few retries.
        raise SendError(f"viber {status}: {said}")

    # ------------------------------------------------------------------ operations
    async def register(self, public_url: str) -> str:
        url = self.webhook_url(public_url)
        try:
            answer = await self._call(
                "set_webhook",
                {
                    "url": url,
                    "event_types": list(EVENT_TYPES),
                    "send_name": True,
                    "send_photo": True,
                },
            )
        except SendError as exc:
            raise RuntimeError(
                f"{self.id}: set_webhook {url} failed: {exc.reason}"
                " (Viber calls the URL at once: is the server running and reachable?)"
            ) from exc
        events = ", ".join(answer.get("event_types") or EVENT_TYPES)
        return f"{self.id}: Viber webhook set to {url} (events: message, {events})"

    async def check(self) -> str:
        try:
            info = await self._call("get_account_info", {})
        except SendError as exc:
            raise RuntimeError(f"{self.id}: get_account_info failed: {exc.reason}") from exc
        webhook = info.get("webhook") or "not set"
        return (
            f"{self.id}: Viber bot «{info.get('name', '?')}» (uri {info.get('uri', '?')}), "
            f"webhook {webhook}, {info.get('subscribers_count', '?')} subscribers"
        )


# --------------------------------------------------------------------------- helpers
def _fits_keyboard(buttons: tuple[Button, ...]) -> bool:
    return len(buttons) <= MAX_BUTTONS and all(
        0 < len(b.title) <= BUTTON_TEXT_LIMIT for b in buttons
    )


def _keyboard(buttons: tuple[Button, ...]) -> dict[str, Any]:
    """One full-width button a row; half-width when that would need more than 12 rows."""
    columns = 6 if len(buttons) <= MAX_ROWS else 3
    return {
        "Type": "keyboard",
        "DefaultHeight": False,
        "Buttons": [
            {
                "Columns": columns,
                "Rows": 1,
                "ActionType": "reply",
                "ActionBody": b.title,
                "Text": html.escape(b.title, quote=False),
            }
            for b in buttons
        ],
    }


def _tracking(buttons: tuple[Button, ...], *, numbered: bool) -> str | None:
    """The title → payload map Viber echoes with the customer's next message."""
    data: dict[str, Any] = {"v": 1, "b": [[b.title, b.payload] for b in buttons]}
    if numbered:
        data["n"] = 1
    encoded = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    if len(encoded) > TRACKING_LIMIT:
        return None  # the titles still arrive as text; the bot reads them as words
    return encoded


def _decode_press(text: str, tracking: Any) -> tuple[str, str | None]:
    """(text, payload): a press of a keyboard we sent, recognised via tracking_data."""
    if not isinstance(tracking, str) or not tracking.startswith("{"):
        return text, None
    try:
        data = json.loads(tracking)
    except ValueError:
        return text, None
    if not isinstance(data, dict) or data.get("v") != 1:
        return text, None
    if isinstance(data.get("start"), str) and text == data["start"]:
        context = data.get("ctx") if isinstance(data.get("ctx"), str) else ""
        return f"/start {context}".strip(), None
    pairs = [
        (p[0], p[1])
        for p in data.get("b") or []
        if isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p)
    ]
    for title, payload in pairs:
        if text == title:
            return title, payload
    if data.get("n"):
        match = _NUMBER_RE.match(text)
        if match and 1 <= int(match.group(1)) <= len(pairs):
            title, payload = pairs[int(match.group(1)) - 1]
            return title, payload
    return text, None


def _files(kind: str, message: dict[str, Any]) -> tuple[RemoteFile, ...]:
    """A picture, or a file named like a photo or a PDF, to fetch from its media URL."""
    media = message.get("media")
    if kind not in ("picture", "file") or not isinstance(media, str) or not media:
        return ()
    name = message.get("file_name") if isinstance(message.get("file_name"), str) else None
    size = message.get("size") if isinstance(message.get("size"), int) else None
    if kind == "file":
        lowered = (name or "").lower()
        if lowered.endswith(".pdf"):
            return (RemoteFile("document", {"url": media, "name": name}, name=name, size=size),)
        if not lowered.endswith(PHOTO_SUFFIXES):
            return ()
    return (RemoteFile("image", {"url": media, "name": name}, name=name, size=size),)


def _file_body(file: OutgoingFile) -> dict[str, Any]:
    """Viber downloads files itself, from a URL: a photo as ``picture`` (JPEG or PNG,
    with the thumbnail Viber makes), anything else as ``file``. Without a public URL
    the customer is told in words what was sent."""
    if file.url is None:
        return {"type": "text", "text": file_link_text(file)}
    if file.mime in ("image/jpeg", "image/png") and file.size <= PICTURE_LIMIT:
        return {"type": "picture", "media": file.url, "text": ""}
    return {"type": "file", "media": file.url, "size": file.size, "file_name": file.name}


def _attachment(kind: str, message: dict[str, Any]) -> Attachment:
    media = message.get("media") if isinstance(message.get("media"), str) else None
    name = message.get("file_name") if isinstance(message.get("file_name"), str) else None
    if kind == "location":
        location = message.get("location")
        if isinstance(location, dict) and "lat" in location and "lon" in location:
            media = f"geo:{location['lat']},{location['lon']}"
        name = location.get("address") if isinstance(location, dict) else None
    elif kind == "contact":
        contact = message.get("contact")
        if isinstance(contact, dict):
            phone = contact.get("phone_number")
            media = f"tel:{phone}" if isinstance(phone, str) and phone else None
            name = contact.get("name") if isinstance(contact.get("name"), str) else None
    elif kind == "sticker" and name is None and message.get("sticker_id") is not None:
        name = f"sticker {message['sticker_id']}"
    return Attachment(_ATTACHMENT_KINDS.get(kind, "other"), media, name)


def _name(user: dict[str, Any]) -> str | None:
    name = user.get("name")
    return name if isinstance(name, str) and name else None
