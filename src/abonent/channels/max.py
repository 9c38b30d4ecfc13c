"""MAX (the Russian messenger's Bot API, ``platform-api2.max.ru``).

What is peculiar here, and why the code looks the way it does:

* Authentication is a shared secret, not a signature: MAX echoes the ``secret`` given
  to ``POST /subscriptions`` in ``X-Max-Bot-Api-Secret`` on every delivery. Without a
  configured secret anyone who guesses the URL could speak for any customer, so an
  empty secret refuses everything (403) instead of trusting everyone; a wrong or
  missing header is 401, as MAX's own Go handler answers.
* The envelope has no update id. Messages dedupe on ``body.mid``, presses on
  ``callback_id``, and ``bot_started`` (which has neither) on user and timestamp — MAX
  re-delivers every 30–60 s for up to 8 hours until it gets a 200.
* A press (``message_callback``) carries the button's payload but not its title; the
  title is looked up in the keyboard of the message the button was on, which MAX sends
  along. The press must be answered (``POST /answers``) or the client keeps spinning.
* ``bot_started`` (the «Начать» button or a ``max.ru/<bot>/start/<payload>`` deep link)
  becomes «/start» so the bot greets like on Telegram.
* The product serves private dialogs only: messages from group chats and channels
  (``chat_type`` other than ``dialog``) are acknowledged and dropped, because a reply
  by ``user_id`` would land in a private dialog the person never opened, and a reply
  by ``chat_id`` would read someone's bill out to a group. Replies go to
  ``?user_id=`` (the customer's id, stable across dialogs), the ids in the query.
* A phone comes only from a ``contact`` attachment whose ``max_info.user_id`` is the
  sender: anybody can forward somebody else's card.
* Errors are real HTTP statuses with ``{"code", "message"}``; ``attachment.not.ready``
  is a 400 that is nevertheless worth retrying (the official clients do).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import re
from datetime import datetime
from typing import Any

import httpx
from pydantic import field_validator

from abonent.billing.accounts import normalise_phone
from abonent.channels.base import (
    MessengerChannel,
    OutgoingFile,
    OutgoingMessage,
    SendError,
    SendResult,
    WebhookRejected,
    WebhookRequest,
    WebhookResult,
    answerable_id,
    download,
    numbered_text,
    parse_json,
    person_name,
    require_secret_header,
    response_json,
    retry_after_header,
    send_parts,
    split_text,
    transport_error,
    unix_time,
)
from abonent.config import ChannelSettings
from abonent.core.attachments import Fetched, FetchError
from abonent.core.types import Attachment, Button, InboundMessage, RemoteFile

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Max-Bot-Api-Secret"
TEXT_LIMIT = 4000
PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif")
MAX_BUTTONS = 210
MAX_ROWS = 30
MAX_PER_ROW = 7
BUTTON_TEXT_LIMIT = 128
BUTTON_PAYLOAD_LIMIT = 1024
UPDATE_TYPES = ("message_created", "message_callback", "bot_started")
# What the customer's client shows for a moment after a press: the bot's answer follows
# as a message, so the toast only confirms the tap.
CALLBACK_NOTIFICATION = "Принято"
# A 429 without Retry-After: MAX allows 30 requests/s, so a second is plenty.
DEFAULT_RATE_DELAY = 1.0
# 400 codes that are a passing state, not a bad request.
TRANSIENT_CODES = frozenset({"attachment.not.ready"})
# messages.external_id is VARCHAR(128); MAX's callback ids are ~110 characters today.
EXTERNAL_ID_LIMIT = 128

_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{5,256}$")
_ATTACHMENT_KINDS = {
    "image": "photo",
    "video": "video",
    "audio": "voice",
    "file": "file",
    "sticker": "sticker",
    "location": "location",
    "share": "other",
    "contact": "contact",
}


class MaxSettings(ChannelSettings):
    """``[[channels]] type = "max"``: ``token`` from business.max.ru (sent raw in
    ``Authorization``), ``secret`` of 5–256 ``[A-Za-z0-9_-]`` chars (MAX's own rule),
    ``username`` of the bot for the site widget's link."""

    username: str = ""

    @field_validator("secret")
    @classmethod
    def _secret_alphabet(cls, value: str) -> str:
        if value and not _SECRET_RE.match(value):
            raise ValueError("MAX accepts a secret of 5-256 characters A-Z, a-z, 0-9, _ and -")
        return value

    @field_validator("username")
    @classmethod
    def _bare_username(cls, value: str) -> str:
        return value.strip().removeprefix("@").removeprefix("https://max.ru/").strip("/")


class MaxChannel(MessengerChannel):
    type = "max"
    settings_model = MaxSettings
    default_api_base = "https://platform-api2.max.ru"

    settings: MaxSettings

    def deep_link(self) -> str | None:
        return f"https://max.ru/{self.settings.username}" if self.settings.username else None

    # ------------------------------------------------------------------ inbound
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        require_secret_header(request, SECRET_HEADER, self.settings.secret, self.id)
        update = parse_json(request.body)
        if not isinstance(update, dict):
            raise WebhookRejected(400, "an update must be a JSON object")
        kind = update.get("update_type")
        result = WebhookResult()
        if kind == "message_created":
            message = self._message_created(update)
            if message is not None:
                result.messages.append(message)
        elif kind == "message_callback":
            parsed = self._message_callback(update)
            if parsed is not None:
                message, callback_id = parsed
                result.messages.append(message)
                answerable = answerable_id(callback_id, limit=1024)
                if answerable is not None:  # else MAX could not have issued it
                    result.follow_ups.append(lambda: self._answer_callback(answerable))
        elif kind == "bot_started":
            message = self._bot_started(update)
            if message is not None:
                result.messages.append(message)
        elif not isinstance(kind, str):
            raise WebhookRejected(400, "update_type is missing")
        return result

    def _message_created(self, update: dict[str, Any]) -> InboundMessage | None:
        message = _object(update.get("message"), "message")
        if not _is_dialog(message):
            log.info("max %s: message from a group chat or channel ignored", self.id)
            return None
        sender = _object(message.get("sender"), "message.sender")
        if sender.get("is_bot"):
            return None
        user_id = _user_id(sender, "message.sender")
        body = _object(message.get("body"), "message.body")
        mid = body.get("mid")
        if not isinstance(mid, str) or not mid:
            raise WebhookRejected(400, "message.body.mid is missing")
        attachments, phone = _attachments(body.get("attachments"), user_id)
        text = body.get("text")
        return InboundMessage(
            channel_id=self.id,
            external_user_id=user_id,
            text=text if isinstance(text, str) else "",
            external_id=_dedupe_id("m", mid),
            display_name=_name(sender),
            phone=phone,
            attachments=attachments,
            files=_files(body.get("attachments")),
            sent_at=_moment(message.get("timestamp"), update.get("timestamp")),
        )

    def _message_callback(self, update: dict[str, Any]) -> tuple[InboundMessage, str] | None:
        callback = _object(update.get("callback"), "callback")
        callback_id = callback.get("callback_id")
        if not isinstance(callback_id, str) or not callback_id:
            raise WebhookRejected(400, "callback.callback_id is missing")
        message = update.get("message")
        message = message if isinstance(message, dict) else {}
        if not _is_dialog(message):
            log.info("max %s: button press in a group chat or channel ignored", self.id)
            return None
        user = _object(callback.get("user"), "callback.user")
        payload = callback.get("payload")
        payload = payload if isinstance(payload, str) else ""
        inbound = InboundMessage(
            channel_id=self.id,
            external_user_id=_user_id(user, "callback.user"),
            text=_button_title(message, payload),
            payload=payload,
            external_id=_dedupe_id("cb", callback_id),
            display_name=_name(user),
            sent_at=_moment(callback.get("timestamp"), update.get("timestamp")),
        )
        return inbound, callback_id

    def _bot_started(self, update: dict[str, Any]) -> InboundMessage | None:
        user = _object(update.get("user"), "user")
        user_id = _user_id(user, "user")
        stamp = update.get("timestamp")
        start = update.get("payload")
        return InboundMessage(
            channel_id=self.id,
            external_user_id=user_id,
            text=f"/start {start}" if isinstance(start, str) and start else "/start",
            external_id=f"s:{user_id}:{stamp}",
            display_name=_name(user),
            sent_at=unix_time(stamp, ms=True),
        )

    async def _answer_callback(self, callback_id: str) -> None:
        """Stop the spinner on the pressed button; a failure only costs the toast."""
        try:
            response = await self.http.post(
                f"{self.api_base}/answers",
                params={"callback_id": callback_id},
                json={"notification": CALLBACK_NOTIFICATION},
                headers=self._auth(),
            )
        except httpx.HTTPError as exc:
            log.warning("max %s: /answers failed: %s", self.id, type(exc).__name__)
            return
        if response.status_code != 200:
            log.warning("max %s: /answers refused: %s", self.id, _error_text(response))

    # ------------------------------------------------------------------ outbound
    async def fetch_file(self, remote: dict[str, Any], limit: int) -> Fetched:
        """A MAX attachment's ``payload.url`` is a signed download address."""
        url = remote.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FetchError("no download URL", permanent=True)
        return Fetched(await download(self.http, url, limit), remote.get("name"))

    async def send(self, message: OutgoingMessage) -> SendResult:
        keyboard = _keyboard(message.buttons)
        text = message.text
        if message.buttons and keyboard is None:
            text = numbered_text(text, message.buttons)
        files = message.files
        # One file with a short text goes as one message: the text and the attachment.
        caption = text if len(files) == 1 and keyboard is None and len(text) <= TEXT_LIMIT else ""
        parts = split_text(text, TEXT_LIMIT) if text and not caption else []

        async def send(i: int) -> str | None:
            if i >= len(parts):
                return await self._send_file(message.recipient, files[i - len(parts)], caption)
            body: dict[str, Any] = {"text": parts[i]}
            if keyboard is not None and i == len(parts) - 1:
                body["attachments"] = [keyboard]
            return await self._post_message(message.recipient, body)

        external_id = await send_parts(len(parts) + len(files), message.skip_parts, send)
        return SendResult(
            external_id=external_id, numbered=bool(message.buttons) and keyboard is None
        )

    async def _send_file(self, user_id: str, file: OutgoingFile, caption: str) -> str | None:
        """``POST /uploads?type=image|file`` names an upload URL; the file goes there as
        ``data``; the token it answers is attached to the message. MAX may still be
        processing the file (``attachment.not.ready``): the send is tried again after
        1, 2 and 4 seconds, as MAX's own clients do."""
        kind = "image" if file.kind == "image" else "file"
        try:
            slot = await self.http.post(
                f"{self.api_base}/uploads", params={"type": kind}, headers=self._auth()
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if slot.status_code != 200:
            raise _send_error(slot)
        data = response_json(slot)
        upload_url = data.get("url") if isinstance(data, dict) else None
        if not isinstance(upload_url, str) or not upload_url:
            raise SendError("max: /uploads gave no url")
        content = await asyncio.to_thread(file.read)
        try:
            uploaded = await self.http.post(
                upload_url, files={"data": (file.name, content, file.mime)}, headers=self._auth()
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if uploaded.status_code != 200:
            raise _send_error(uploaded)
        token = _upload_token(response_json(uploaded))
        if token is None:
            raise SendError("max: the upload gave no token")
        body = {"text": caption, "attachments": [{"type": kind, "payload": {"token": token}}]}
        for delay in (1.0, 2.0, 4.0, None):
            try:
                return await self._post_message(user_id, body)
            except SendError as exc:
                if delay is None or "attachment.not.ready" not in exc.reason:
                    raise
                await asyncio.sleep(delay)
        return None  # pragma: no cover (the loop returns or raises)

    async def _post_message(self, user_id: str, body: dict[str, Any]) -> str | None:
        try:
            response = await self.http.post(
                f"{self.api_base}/messages",
                params={"user_id": user_id},
                json=body,
                headers=self._auth(),
            )
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        if response.status_code == 200:
            data = response_json(response)
            sent = data.get("message") if isinstance(data, dict) else None
            body_out = sent.get("body") if isinstance(sent, dict) else None
            mid = body_out.get("mid") if isinstance(body_out, dict) else None
            return mid if isinstance(mid, str) else None
        raise _send_error(response)

    def _auth(self) -> dict[str, str]:
        return {"Authorization": self.settings.token}

    # ------------------------------------------------------------------ admin
    async def register(self, public_url: str) -> str:
        if not self.settings.secret:
            raise RuntimeError(
                "set `secret` for this channel first (5-256 chars A-Z a-z 0-9 _ -): "
                "without it every delivery is refused"
            )
        url = self.webhook_url(public_url)
        response = await self._admin(
            "POST",
            "/subscriptions",
            json={"url": url, "update_types": list(UPDATE_TYPES), "secret": self.settings.secret},
        )
        data = response_json(response)
        if isinstance(data, dict) and data.get("success") is False:
            raise RuntimeError(f"MAX refused the subscription: {data.get('message') or data}")
        return f"{self.id}: MAX delivers {', '.join(UPDATE_TYPES)} to {url}"

    async def check(self) -> str:
        me = response_json(await self._admin("GET", "/me"))
        me = me if isinstance(me, dict) else {}
        bot = f"@{me['username']}" if me.get("username") else str(me.get("first_name") or "?")
        bot += f" (id {me.get('user_id', '?')})"
        subs = response_json(await self._admin("GET", "/subscriptions"))
        found = subs.get("subscriptions") if isinstance(subs, dict) else None
        ours = [
            s
            for s in (found if isinstance(found, list) else [])
            if isinstance(s, dict) and str(s.get("url", "")).endswith(f"/webhooks/{self.id}")
        ]
        if not ours:
            raise RuntimeError(
                f"token works (bot {bot}) but no webhook subscription ends with "
                f"/webhooks/{self.id}; run `abonent channels register`"
            )
        sub = ours[0]
        types = sub.get("update_types") or []
        missing = [t for t in UPDATE_TYPES if types and t not in types]
        line = f"{self.id}: bot {bot}, webhook {sub.get('url')}"
        if missing:
            line += f"; not subscribed to {', '.join(missing)} (run register again)"
        return line

    async def _admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = await self.http.request(
            method, f"{self.api_base}{path}", headers=self._auth(), **kwargs
        )
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {_error_text(response)}")
        return response


# --------------------------------------------------------------------------- parsing
def _dedupe_id(kind: str, platform_id: str) -> str:
    """``cb:<callback_id>``; an id too long for the column (128) is keyed by its hash,
    which is as stable across redeliveries as the id itself."""
    key = f"{kind}:{platform_id}"
    if len(key) <= EXTERNAL_ID_LIMIT:
        return key
    return f"{kind}:sha256:{hashlib.sha256(platform_id.encode()).hexdigest()}"


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WebhookRejected(400, f"{where} is missing or not an object")
    return value


def _user_id(user: dict[str, Any], where: str) -> str:
    value = user.get("user_id")
    if isinstance(value, bool) or not isinstance(value, int | str) or value == "":
        raise WebhookRejected(400, f"{where}.user_id is missing")
    return str(value)


def _is_dialog(message: dict[str, Any]) -> bool:
    recipient = message.get("recipient")
    chat_type = recipient.get("chat_type") if isinstance(recipient, dict) else None
    return chat_type in (None, "dialog")


def _name(user: dict[str, Any]) -> str | None:
    name = person_name(user)
    if name is None and isinstance(user.get("name"), str):  # ``name`` is deprecated
        name = user["name"].strip() or None
    return name


def _moment(*stamps: Any) -> datetime | None:
    """The first usable stamp (MAX's are unix milliseconds)."""
    for stamp in stamps:
        moment = unix_time(stamp, ms=True)
        if moment is not None:
            return moment
    return None


def _attachments(raw: Any, sender_id: str) -> tuple[tuple[Attachment, ...], str | None]:
    """Stored attachments, and the sender's phone if one of them is their own card."""
    if not isinstance(raw, list):
        return (), None
    found: list[Attachment] = []
    phone: str | None = None
    for item in raw:
        if not isinstance(item, dict) or item.get("type") == "inline_keyboard":
            continue
        kind = _ATTACHMENT_KINDS.get(str(item.get("type")), "other")
        payload = item.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        url = payload.get("url") if isinstance(payload.get("url"), str) else None
        name: str | None = None
        if kind == "file" and isinstance(item.get("filename"), str):
            name = item["filename"]
        elif kind == "location":
            lat, lon = item.get("latitude"), item.get("longitude")
            if isinstance(lat, int | float) and isinstance(lon, int | float):
                url = f"geo:{lat},{lon}"
        elif kind == "other" and isinstance(item.get("title"), str):
            name = item["title"]
        elif kind == "contact":
            url = None
            owner = payload.get("max_info")
            owner_id = owner.get("user_id") if isinstance(owner, dict) else None
            if owner_id is not None and str(owner_id) == sender_id:
                phone = phone or _vcard_phone(payload.get("vcf_info"))
        found.append(Attachment(kind, url, name))
    return tuple(found), phone


def _files(raw: Any) -> tuple[RemoteFile, ...]:
    """Photos, and files named like a photo or a PDF, to fetch from ``payload.url``."""
    found: list[RemoteFile] = []
    for item in raw if isinstance(raw, list) else []:
        if not isinstance(item, dict) or item.get("type") not in ("image", "file"):
            continue
        payload = item.get("payload")
        url = payload.get("url") if isinstance(payload, dict) else None
        if not isinstance(url, str) or not url:
            continue
        name = item.get("filename") if isinstance(item.get("filename"), str) else None
        size = item.get("size") if isinstance(item.get("size"), int) else None
        kind = "image"
        if item["type"] == "file":
            lowered = (name or "").lower()
            if lowered.endswith(".pdf"):
                kind = "document"
            elif not lowered.endswith(PHOTO_SUFFIXES):
                continue
        found.append(RemoteFile(kind, {"url": url, "name": name}, name=name, size=size))
    return tuple(found)


def _upload_token(data: Any) -> str | None:
    """The token of an upload: ``{"token"}`` for a file, ``{"photos": {id: {"token"}}}``
    for an image."""
    if not isinstance(data, dict):
        return None
    if isinstance(data.get("token"), str):
        return str(data["token"])
    photos = data.get("photos")
    if isinstance(photos, dict):
        for photo in photos.values():
            if isinstance(photo, dict) and isinstance(photo.get("token"), str):
                return str(photo["token"])
    return None


def _vcard_phone(vcard: Any) -> str | None:
    if not isinstance(vcard, str):
        return None
    for line in vcard.splitlines():
        field, sep, value = line.partition(":")
        if sep and field.split(";", 1)[0].strip().upper() == "TEL":
            number = normalise_phone(value)
            if number:
                return number
    return None


def _button_title(message: dict[str, Any], payload: str) -> str:
    """The pressed button's title, found in the keyboard of the message it was on."""
    body = message.get("body")
    attachments = body.get("attachments") if isinstance(body, dict) else None
    for item in attachments if isinstance(attachments, list) else []:
        if not isinstance(item, dict) or item.get("type") != "inline_keyboard":
            continue
        keyboard = item.get("payload")
        rows = keyboard.get("buttons") if isinstance(keyboard, dict) else None
        for row in rows if isinstance(rows, list) else []:
            for button in row if isinstance(row, list) else []:
                if (
                    isinstance(button, dict)
                    and button.get("type") == "callback"
                    and button.get("payload") == payload
                    and isinstance(button.get("text"), str)
                ):
                    title: str = button["text"]
                    return title
    return ""


# --------------------------------------------------------------------------- sending
def _keyboard(buttons: tuple[Button, ...]) -> dict[str, Any] | None:
    """An ``inline_keyboard`` attachment, or None when the buttons do not fit MAX's limits
    (the caller then numbers them in the text). One button per row reads best; more
    than 30 buttons share rows evenly, up to 7 a row."""
    if not buttons or len(buttons) > MAX_BUTTONS:
        return None
    for b in buttons:
        if not 1 <= len(b.title) <= BUTTON_TEXT_LIMIT:
            return None
        if not b.payload or len(b.payload) > BUTTON_PAYLOAD_LIMIT:
            return None
    per_row = max(1, math.ceil(len(buttons) / MAX_ROWS))
    if per_row > MAX_PER_ROW:
        return None
    rows = [
        [{"type": "callback", "text": b.title, "payload": b.payload} for b in chunk]
        for chunk in (buttons[i : i + per_row] for i in range(0, len(buttons), per_row))
    ]
    return {"type": "inline_keyboard", "payload": {"buttons": rows}}


def _error_text(response: httpx.Response) -> str:
    """``max 403: chat.denied: …`` from MAX's ``{"code", "message"}`` error body."""
    data = response_json(response)
    if isinstance(data, dict) and ("code" in data or "message" in data):
        words = [str(data[k]) for k in ("code", "message") if data.get(k)]
    else:
        words = [response.text[:200]] if response.text.strip() else []
    return ": ".join([f"max {response.status_code}", *words])


def _send_error(response: httpx.Response) -> SendError:
    status = response.status_code
    reason = _error_text(response)
    data = response_json(response)
    code = data.get("code") if isinstance(data, dict) else None
    if status == 429:
        return SendError(reason, retry_after=retry_after_header(response, DEFAULT_RATE_DELAY))
    if status >= 500 or code in TRANSIENT_CODES:
        return SendError(reason)
    if status == 401:
        reason += " (check the channel's token)"
    elif status == 403:
        reason += " (the user blocked the bot or MAX denied the dialog)"
    elif status == 404:
        reason += " (no such user or dialog)"
    return SendError(reason, permanent=True)
