"""WhatsApp Business Cloud API (Meta Graph, ``graph.facebook.com``).

What is peculiar here, and why the code looks the way it does:

* Two secrets, two checks. Meta proves a callback URL once with a GET handshake
  (``hub.verify_token`` must equal ours, then we echo ``hub.challenge``), and signs
  every POST with ``X-Hub-Signature-256: sha256=<HMAC-SHA256(app secret, raw body)>``.
  A missing signature is 401 and a wrong one 403, as pywa's server answers.
* One app, many numbers. Meta delivers the events of every number the app is
  subscribed to, to the same callback URL unless a per-number override is set; each
  WhatsApp number is its own ``[[channels]]`` entry, and an entry for a
  ``metadata.phone_number_id`` that is not this channel's is acknowledged and dropped
  (the other channel gets it at its own URL), never answered from the wrong number.
* One POST batches several entries, changes and messages; statuses of our own
  messages (sent/delivered/read/failed) come the same way and are only acknowledged.
  A non-200 makes Meta redeliver for days, so the ack is 200 whenever the signature
  holds; the pipeline dedupes on the ``wamid``.
* The product serves private chats only: a message with a ``group_id`` (Groups API)
  is acknowledged and dropped, so that nobody's bill is read out to a group and the
  bot does not answer every participant in private.
* The sender's number is the WhatsApp id (``from``), so every message vouches for the
  customer's phone; a shared contact card is somebody's card, not the sender's.
  Customers with a username (BSUID, 2026) may come without ``from``: their
  ``user_id`` is the reply address (``"recipient"`` instead of ``"to"``) and there is
  no phone.
* Buttons: at most three reply buttons of 20 characters, or a list of at most ten
  rows of 24 characters (72 in the description). The bot's menu holds «Связаться с
  оператором» (22), so it goes out as a list where every title is shown whole; an
  interactive body holds only 1024 characters, so a longer text goes first as plain
  messages and the buttons ride on the last.
* Free-form messages are allowed only within 24 hours after the customer's last
  message (error 131047): that is permanent for this message, an operator has to
  use a template or another channel.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
from pydantic import Field, field_validator

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
from abonent.core.attachments import FETCHED_TYPES, Fetched, FetchError, too_large
from abonent.core.types import Attachment, Button, InboundMessage, RemoteFile

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
CAPTION_LIMIT = 1024
# What WhatsApp shows as a photo; anything else goes as a document.
IMAGE_MIMES = frozenset({"image/jpeg", "image/png"})
TEXT_LIMIT = 4096
BODY_LIMIT = 1024  # the body of an interactive message
REPLY_BUTTONS = 3
REPLY_TITLE_LIMIT = 20
REPLY_ID_LIMIT = 256
LIST_ROWS = 10
ROW_TITLE_LIMIT = 24
ROW_DESCRIPTION_LIMIT = 72
ROW_ID_LIMIT = 200
# The label of the button that opens a list (≤ 20 characters).
LIST_BUTTON = "Выбрать"
# The body of the buttons' own message when the text went ahead as plain messages.
BUTTONS_BODY = "Выберите действие:"

# Rate limits (pywa's ThrottlingError family) and what to wait when Meta gives no
# Retry-After: the number's throughput recovers within a second, a pair (one
# customer) takes about 6 s, app/WABA call limits and the spam limit need a minute.
RATE_DELAYS: dict[int, float] = {130429: 1.0, 131056: 6.0, 4: 60.0, 80007: 60.0, 131048: 60.0}
DEFAULT_RATE_DELAY = 5.0
# Unknown error / service unavailable: worth another try with the outbox's backoff.
TRANSIENT_CODES = frozenset({1, 2, 131000, 131016, 133004})
# What an operator reads on a message that could not be delivered.
PERMANENT_HINTS: dict[int, str] = {
    131047: "outside the 24-hour window: more than 24 hours since the customer's last "
    "message, only an approved template can be sent now",
    131026: "message undeliverable (not a WhatsApp user, an old app, or terms not accepted)",
    190: "access token invalid or expired: put a new one into the channel's token",
    0: "authentication failed: check the channel's token",
    10: "permission denied: the token lacks whatsapp_business_messaging",
    100: "invalid parameter",
    131051: "message type not supported",
    131008: "required parameter missing",
    131009: "parameter value not valid",
    131030: "recipient not in the test number's allowed list",
    131031: "business account locked",
    368: "business account temporarily blocked for a policy violation",
    131021: "recipient is the sender's own number",
    131042: "payment problem on the business account",
    131062: "this recipient cannot be reached by BSUID",
}

_GRAPH_VERSION_RE = re.compile(r"^v?(\d{1,3})(?:\.(\d))?$")
_WA_ID_RE = re.compile(r"^\d{6,15}$")
_MEDIA_KINDS = {
    "image": "photo",
    "video": "video",
    "audio": "voice",
    "document": "file",
    "sticker": "sticker",
}
# Events with nothing for the bot or an operator to read.
_IGNORED_TYPES = frozenset({"reaction", "system", "ephemeral", "revoke", "edit"})


class WhatsAppSettings(ChannelSettings):
    """``[[channels]] type = "whatsapp"``, one entry per WhatsApp number:
    ``token`` (system-user access token, sent as ``Authorization: Bearer``),
    ``secret`` (the Meta app's secret, signs the webhooks), ``verify_token`` (any
    string, typed into the dashboard too), ``phone_number_id`` (the number's id, not
    the number), ``api_version`` of the Graph API, ``phone`` for the ``wa.me`` link."""

    token: str = Field(min_length=1)
    secret: str = Field(min_length=1)
    verify_token: str = Field(min_length=1)
    phone_number_id: str = Field(pattern=r"^\d{1,32}$")
    api_version: str = "v25.0"
    phone: str = ""

    @field_validator("api_version")
    @classmethod
    def _graph_version(cls, value: str) -> str:
        match = _GRAPH_VERSION_RE.match(value.strip())
        if not match:
            raise ValueError("a Graph API version looks like v25.0")
        return f"v{match.group(1)}.{match.group(2) or '0'}"

    @field_validator("phone")
    @classmethod
    def _digits(cls, value: str) -> str:
        digits = re.sub(r"\D", "", value)
        if value.strip() and not 8 <= len(digits) <= 15:
            raise ValueError("the WhatsApp number in international form, e.g. +7 800 123-45-67")
        return digits


class WhatsAppChannel(MessengerChannel):
    type = "whatsapp"
    settings_model = WhatsAppSettings
    default_api_base = "https://graph.facebook.com"

    settings: WhatsAppSettings

    def deep_link(self) -> str | None:
        return f"https://wa.me/{self.settings.phone}" if self.settings.phone else None

    @property
    def _number_url(self) -> str:
        return f"{self.api_base}/{self.settings.api_version}/{self.settings.phone_number_id}"

    # ------------------------------------------------------------------ inbound
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        if request.method.upper() == "GET":
            return self._handshake(request)
        self._verify_signature(request)
        update = parse_json(request.body)
        if not isinstance(update, dict):
            raise WebhookRejected(400, "an update must be a JSON object")
        result = WebhookResult()
        entries = update.get("entry")
        if update.get("object") != "whatsapp_business_account" or not isinstance(entries, list):
            log.info("whatsapp %s: update of object %r ignored", self.id, update.get("object"))
            return result
        for entry in entries:
            for change in _dicts(entry.get("changes") if isinstance(entry, dict) else None):
                value = change.get("value")
                if change.get("field") != "messages" or not isinstance(value, dict):
                    continue
                result.messages.extend(self._value(value))
        return result

    def _handshake(self, request: WebhookRequest) -> WebhookResult:
        """Meta's GET check of the callback URL: echo the challenge if the token is ours."""
        mode = request.query.get("hub.mode")
        token = request.query.get("hub.verify_token") or ""
        challenge = request.query.get("hub.challenge") or ""
        if mode != "subscribe" or not challenge:
            raise WebhookRejected(403, "not a hub.mode=subscribe verification request")
        if not hmac.compare_digest(token.encode(), self.settings.verify_token.encode()):
            raise WebhookRejected(403, "hub.verify_token does not match the channel's")
        log.info("whatsapp %s: callback URL verified", self.id)
        return WebhookResult(status=200, body=challenge, media_type="text/plain")

    def _verify_signature(self, request: WebhookRequest) -> None:
        given = request.header(SIGNATURE_HEADER)
        if not given:
            raise WebhookRejected(401, f"{SIGNATURE_HEADER} is missing")
        if not signed_with(given, self.settings.secret, request.body, prefix="sha256="):
            raise WebhookRejected(403, f"{SIGNATURE_HEADER} does not match the body")

    def _value(self, value: dict[str, Any]) -> list[InboundMessage]:
        metadata = value.get("metadata")
        number_id = metadata.get("phone_number_id") if isinstance(metadata, dict) else None
        if str(number_id) != self.settings.phone_number_id:
            # Another number of the same app: its own channel answers it.
            log.info("whatsapp %s: event for phone_number_id %s ignored", self.id, number_id)
            return []
        for status in _dicts(value.get("statuses")):
            if status.get("status") == "failed":
                codes = [e.get("code") for e in _dicts(status.get("errors"))]
                log.warning(
                    "whatsapp %s: message %s failed on the platform, codes %s",
                    self.id,
                    status.get("id"),
                    codes,
                )
        for error in _dicts(value.get("errors")):
            log.warning(
                "whatsapp %s: webhook error %s: %s", self.id, error.get("code"), error.get("title")
            )
        contacts = _dicts(value.get("contacts"))
        names: dict[str, str] = {}
        for contact in contacts:
            profile = contact.get("profile")
            name = profile.get("name") if isinstance(profile, dict) else None
            if isinstance(name, str) and name.strip():
                for key in ("wa_id", "user_id"):
                    if isinstance(contact.get(key), str):
                        names[contact[key]] = name.strip()
        parsed: list[InboundMessage] = []
        for message in _dicts(value.get("messages")):
            inbound = self._message(message, names, contacts)
            if inbound is not None:
                parsed.append(inbound)
        return parsed

    def _message(
        self, message: dict[str, Any], names: dict[str, str], contacts: list[dict[str, Any]]
    ) -> InboundMessage | None:
        wamid = message.get("id")
        kind = message.get("type")
        if not isinstance(wamid, str) or not wamid or kind in _IGNORED_TYPES:
            return None
        if message.get("group_id"):
            log.info("whatsapp %s: group message %s ignored", self.id, wamid)
            return None
        sender, phone = _sender(message, contacts)
        if sender is None:
            log.warning("whatsapp %s: message %s without a sender ignored", self.id, wamid)
            return None
        text, payload, attachments = _content(message, self._media_url)
        return InboundMessage(
            channel_id=self.id,
            external_user_id=sender,
            text=text,
            payload=payload,
            external_id=f"w:{wamid}",
            display_name=names.get(sender),
            phone=phone,
            attachments=attachments,
            files=_files(message),
            sent_at=unix_time(message.get("timestamp")),
        )

    def _media_url(self, media_id: str) -> str:
        """Where the media's download address is fetched (with the channel's token)."""
        return f"{self.api_base}/{self.settings.api_version}/{media_id}"

    async def fetch_file(self, remote: dict[str, Any], limit: int) -> Fetched:
        """The media id names a short-lived download URL (``GET /<media id>``), which is
        fetched with the same bearer token."""
        media_id = remote.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise FetchError("no media id", permanent=True)
        try:
            response = await self.http.get(self._media_url(media_id), headers=self._auth())
        except httpx.HTTPError as exc:
            raise FetchError(f"network: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            error = send_error(response)
            raise FetchError(error.reason, permanent=error.permanent)
        data = response_json(response)
        url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(url, str) or not url:
            raise FetchError("the media has no url", permanent=True)
        size = data.get("file_size") if isinstance(data, dict) else None
        if isinstance(size, int) and size > limit:
            raise FetchError(str(too_large(size, limit)), permanent=True)
        return Fetched(await download(self.http, url, limit, self._auth()), remote.get("name"))

    # ------------------------------------------------------------------ outbound
    async def send(self, message: OutgoingMessage) -> SendResult:
        files = message.files
        # One file with a short text goes as one message: the photo with its caption.
        caption = (
            message.text
            if len(files) == 1 and not message.buttons and 0 < len(message.text) <= CAPTION_LIMIT
            else ""
        )
        bodies = render(message.text, message.buttons) if message.text and not caption else []
        count = len(bodies) + len(files)

        async def send(i: int) -> str | None:
            if i >= len(bodies):
                return await self._send_file(message.recipient, files[i - len(bodies)], caption)
            return await self._post_message(message.recipient, bodies[i])

        external_id = await send_parts(count, message.skip_parts, send)
        native = any(body.get("type") == "interactive" for body in bodies)
        return SendResult(external_id=external_id, numbered=bool(message.buttons) and not native)

    async def send_template(
        self,
        recipient: str,
        name: str,
        language: str,
        parameters: list[str],
        *,
        quick_reply: str | None = None,
    ) -> SendResult:
        """An approved template (``type: template``): the only message WhatsApp lets a
        business start outside the 24-hour window (reminders). ``parameters`` fill the
        body's {{1}}, {{2}} … in order; ``quick_reply`` is the payload of the template's
        first quick-reply button (an «Отписаться» the template was approved with)."""
        components: list[dict[str, Any]] = []
        if parameters:
            components.append(
                {
                    "type": "body",
                    "parameters": [{"type": "text", "text": p or "—"} for p in parameters],
                }
            )
        if quick_reply:
            components.append(
                {
                    "type": "button",
                    "sub_type": "quick_reply",
                    "index": "0",
                    "parameters": [{"type": "payload", "payload": quick_reply}],
                }
            )
        template: dict[str, Any] = {"name": name, "language": {"code": language}}
        if components:
            template["components"] = components
        wamid = await self._post_message(recipient, {"type": "template", "template": template})
        return SendResult(external_id=wamid)

    async def _post_message(self, recipient: str, body: dict[str, Any]) -> str | None:
        # A WhatsApp id is digits; a username's business-scoped id (BSUID) is not.
        address = "to" if recipient.isdigit() else "recipient"
        payload = {
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            address: recipient,
            **body,
        }
        try:
            response = await self.http.post(
                f"{self._number_url}/messages", json=payload, headers=self._auth()
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if response.is_success:
            data = response_json(response)
            sent = data.get("messages") if isinstance(data, dict) else None
            first = sent[0] if isinstance(sent, list) and sent else None
            wamid = first.get("id") if isinstance(first, dict) else None
            return wamid if isinstance(wamid, str) else None
        raise send_error(response)

    async def _send_file(self, recipient: str, file: OutgoingFile, caption: str) -> str | None:
        """Upload to ``/<number id>/media``, then send the media id as an image (JPEG
        and PNG only: WhatsApp takes WebP as stickers) or a document."""
        content = await asyncio.to_thread(file.read)
        try:
            response = await self.http.post(
                f"{self._number_url}/media",
                data={"messaging_product": "whatsapp", "type": file.mime},
                files={"file": (file.name, content, file.mime)},
                headers=self._auth(),
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if not response.is_success:
            raise send_error(response)
        data = response_json(response)
        media_id = data.get("id") if isinstance(data, dict) else None
        if not isinstance(media_id, str) or not media_id:
            raise SendError("whatsapp: the upload gave no media id")
        if file.mime in IMAGE_MIMES:
            media: dict[str, Any] = {"id": media_id}
            kind = "image"
        else:
            media = {"id": media_id, "filename": file.name}
            kind = "document"
        if caption:
            media["caption"] = caption
        return await self._post_message(recipient, {"type": kind, kind: media})

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.token}"}

    # ------------------------------------------------------------------ admin
    async def register(self, public_url: str) -> str:
        """The number's token cannot set the callback (that needs the app's own token),
        so this is the one line of dashboard steps."""
        url = self.webhook_url(public_url)
        return (
            f"{self.id}: in the Meta App Dashboard open WhatsApp → Configuration, set "
            f"Callback URL {url} and Verify token = this channel's verify_token, press "
            f"«Verify and save», then subscribe to the 'messages' webhook field "
            f"(phone_number_id {self.settings.phone_number_id})"
        )

    async def check(self) -> str:
        try:
            response = await self.http.get(
                self._number_url,
                params={"fields": "display_phone_number,verified_name,quality_rating"},
                headers=self._auth(),
            )
        except httpx.HTTPError as exc:
            raise RuntimeError(f"Graph API unreachable: {type(exc).__name__}: {exc}") from exc
        if not response.is_success:
            raise RuntimeError(
                f"phone_number_id {self.settings.phone_number_id}: {_error_reason(response)}"
            )
        data = response_json(response)
        data = data if isinstance(data, dict) else {}
        return (
            f"{self.id}: WhatsApp number {data.get('display_phone_number', '?')} "
            f"«{data.get('verified_name', '?')}», quality {data.get('quality_rating', '?')}"
        )


# --------------------------------------------------------------------------- rendering
def render(text: str, buttons: tuple[Button, ...]) -> list[dict[str, Any]]:
    """The message bodies (``type`` and its object) that show ``text`` and ``buttons``:
    reply buttons, else a list, else a numbered menu in plain text."""
    interactive = _interactive(buttons)
    if interactive is None:
        if buttons:
            text = numbered_text(text, buttons)
        return [_text(part) for part in split_text(text, TEXT_LIMIT) if part.strip()]
    leading: list[str] = []
    if text.strip() and len(text) <= BODY_LIMIT:
        body = text
    else:
        leading = [p for p in split_text(text, TEXT_LIMIT) if p.strip()] if text.strip() else []
        body = leading.pop() if leading and len(leading[-1]) <= BODY_LIMIT else BUTTONS_BODY
    interactive["body"] = {"text": body}
    return [*(_text(part) for part in leading), {"type": "interactive", "interactive": interactive}]


def _text(part: str) -> dict[str, Any]:
    return {"type": "text", "text": {"body": part, "preview_url": False}}


def _interactive(buttons: tuple[Button, ...]) -> dict[str, Any] | None:
    if not buttons:
        return None
    titles = [b.title.strip() for b in buttons]
    ids = [b.payload for b in buttons]
    if not all(titles) or not all(ids) or len(set(ids)) != len(ids):
        return None
    if (
        len(buttons) <= REPLY_BUTTONS
        and all(len(t) <= REPLY_TITLE_LIMIT for t in titles)
        and all(len(i) <= REPLY_ID_LIMIT for i in ids)
        and len(set(titles)) == len(titles)
    ):
        return {
            "type": "button",
            "action": {
                "buttons": [
                    {"type": "reply", "reply": {"id": i, "title": t}}
                    for i, t in zip(ids, titles, strict=True)
                ]
            },
        }
    if (
        len(buttons) <= LIST_ROWS
        and all(len(t) <= ROW_DESCRIPTION_LIMIT for t in titles)
        and all(len(i) <= ROW_ID_LIMIT for i in ids)
    ):
        rows: list[dict[str, str]] = []
        for i, t in zip(ids, titles, strict=True):
            if len(t) <= ROW_TITLE_LIMIT:
                rows.append({"id": i, "title": t})
            else:  # the whole title stays readable in the description under it
                rows.append({"id": i, "title": t[: ROW_TITLE_LIMIT - 1] + "…", "description": t})
        return {"type": "list", "action": {"button": LIST_BUTTON, "sections": [{"rows": rows}]}}
    return None


# --------------------------------------------------------------------------- errors
def send_error(response: httpx.Response) -> SendError:
    """A Graph API error as the outbox needs it: rate limits wait, outages retry,
    everything the customer or the configuration must change is permanent."""
    error = _error(response)
    code = error.get("code")
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    reason = _error_reason(response, error)
    status = response.status_code
    if code in RATE_DELAYS:
        return SendError(reason, retry_after=retry_after_header(response, RATE_DELAYS[code]))
    if status == 429:
        return SendError(reason, retry_after=retry_after_header(response, DEFAULT_RATE_DELAY))
    if code is not None and (
        code in PERMANENT_HINTS or 200 <= code < 300 or 132000 <= code < 133000
    ):
        return SendError(reason, permanent=True)
    if code in TRANSIENT_CODES or error.get("is_transient") is True or status >= 500:
        return SendError(reason, retry_after=retry_after_header(response))
    return SendError(reason, permanent=400 <= status < 500)


def _error(response: httpx.Response) -> dict[str, Any]:
    data = response_json(response)
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, dict) else {}


def _error_reason(response: httpx.Response, error: dict[str, Any] | None = None) -> str:
    """«whatsapp 400 #131047: outside the 24-hour window … (Re-engagement message)»."""
    error = _error(response) if error is None else error
    code = error.get("code")
    message = error.get("message")
    data = error.get("error_data")
    details = data.get("details") if isinstance(data, dict) else None
    text = message if isinstance(message, str) and message else response.text[:200]
    if isinstance(details, str) and details and details not in text:
        text = f"{text}: {details}"
    if code is None:
        return f"whatsapp {response.status_code}: {text or response.reason_phrase}"
    hint = PERMANENT_HINTS.get(code) if isinstance(code, int) else None
    if hint:
        return f"whatsapp {response.status_code} #{code}: {hint} ({text})"
    return f"whatsapp {response.status_code} #{code}: {text}"


# --------------------------------------------------------------------------- parsing
def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _sender(
    message: dict[str, Any], contacts: list[dict[str, Any]]
) -> tuple[str | None, str | None]:
    """The reply address and the phone it proves: the WhatsApp id (``from``) is the
    customer's number; a username's BSUID (``user_id``) is an address only."""
    wa_id = message.get("from")
    if isinstance(wa_id, str) and wa_id:
        return wa_id, f"+{wa_id}" if _WA_ID_RE.match(wa_id) else None
    for key in ("from_user_id", "user_id"):
        if isinstance(message.get(key), str) and message[key]:
            return message[key], None
    if len(contacts) == 1:  # the only contact of the change is the sender
        user_id = contacts[0].get("user_id")
        if isinstance(user_id, str) and user_id:
            return user_id, None
    return None, None


def _files(message: dict[str, Any]) -> tuple[RemoteFile, ...]:
    """An image, or a document that is an image or a PDF, to fetch by its media id."""
    kind = message.get("type")
    if kind not in ("image", "document"):
        return ()
    body = message.get(kind)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str) or not body["id"]:
        return ()
    mime = body.get("mime_type")
    mime = mime.split(";", 1)[0].strip() if isinstance(mime, str) else None
    if mime is not None and mime not in FETCHED_TYPES:
        return ()
    name = body.get("filename") if isinstance(body.get("filename"), str) else None
    return (
        RemoteFile(
            "document" if mime == "application/pdf" else "image",
            {"media_id": body["id"], "name": name},
            name=name,
            mime=mime,
        ),
    )


def _content(
    message: dict[str, Any], media_url: Callable[[str], str]
) -> tuple[str, str | None, tuple[Attachment, ...]]:
    """Text, button payload and attachments of one message."""
    kind = message.get("type")
    body = message.get(kind) if isinstance(kind, str) else None
    body = body if isinstance(body, dict) else {}
    if kind == "text":
        text = body.get("body")
        return (text if isinstance(text, str) else ""), None, ()
    if kind == "interactive":
        reply = body.get(str(body.get("type")))
        if isinstance(reply, dict) and isinstance(reply.get("id"), str):
            title = reply.get("title")
            return (title if isinstance(title, str) else ""), reply["id"], ()
        return "", None, (Attachment("other", name=str(body.get("type"))),)
    if kind == "button":  # a template's quick-reply button
        payload, text = body.get("payload"), body.get("text")
        return (
            text if isinstance(text, str) else "",
            payload if isinstance(payload, str) and payload else None,
            (),
        )
    if kind == "request_welcome":  # the customer opened the chat for the first time
        return "/start", None, ()
    if kind in _MEDIA_KINDS:
        media_id = body.get("id")
        caption = body.get("caption")
        name = body.get("filename") if kind == "document" else None
        attachment = Attachment(
            _MEDIA_KINDS[kind],
            media_url(media_id) if isinstance(media_id, str) and media_id else None,
            name if isinstance(name, str) else None,
        )
        return (caption if isinstance(caption, str) else ""), None, (attachment,)
    if kind == "location":
        lat, lon = body.get("latitude"), body.get("longitude")
        url = (
            f"geo:{lat},{lon}"
            if isinstance(lat, int | float) and isinstance(lon, int | float)
            else None
        )
        label = [body.get(k) for k in ("name", "address")]
        name = ", ".join(p for p in label if isinstance(p, str) and p) or None
        return "", None, (Attachment("location", url, name),)
    if kind == "contacts":
        cards = _dicts(message.get("contacts"))
        return "", None, tuple(_card(card) for card in cards) or (Attachment("contact"),)
    return "", None, (Attachment("other", name=str(kind)),)


def _card(card: dict[str, Any]) -> Attachment:
    """Somebody's contact card: a ``tel:`` link and the name, never the sender's phone."""
    name_obj = card.get("name")
    name = name_obj.get("formatted_name") if isinstance(name_obj, dict) else None
    phones = _dicts(card.get("phones"))
    url: str | None = None
    if phones:
        wa_id = phones[0].get("wa_id")
        raw = wa_id if isinstance(wa_id, str) and wa_id else str(phones[0].get("phone") or "")
        digits = re.sub(r"\D", "", raw)
        url = f"tel:+{digits}" if digits else None
    return Attachment("contact", url, name if isinstance(name, str) else None)
