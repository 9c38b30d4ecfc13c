"""Telegram Bot API: webhook updates in, ``sendMessage`` out; files both ways.

What is peculiar here, and why the code looks the way it does:

* There is no signature over the body. The only proof that a request comes from
  Telegram is the ``X-Telegram-Bot-Api-Secret-Token`` header echoing the
  ``secret_token`` given to ``setWebhook``. So a channel without a secret refuses
  every webhook (403) instead of trusting anyone who knows the URL.
* ``update_id`` is not a stable dedupe key: after a week without updates Telegram
  restarts it from a random value. A message is keyed by ``(chat id, message id)``
  and a button press by the callback query id, which never repeat.
* A button press (``callback_query``) leaves a spinner on the customer's button until
  the bot calls ``answerCallbackQuery``; that call is a follow-up, made after the
  press is stored. The press carries only ``callback_data``; the title is looked up
  in the keyboard of the message it was pressed under.
* ``callback_data`` is limited to 64 *bytes*, so a Cyrillic payload runs out at 32
  letters. A message whose payloads do not fit is sent as a numbered text menu
  rather than with some buttons missing.
* The HTTP status of an API error equals ``error_code``; a 429 carries its wait in
  ``parameters.retry_after``. 400/401/403 never get better by retrying (bad request,
  bad token, the customer blocked the bot).
* A shared contact may be anyone's: the phone is taken only when
  ``contact.user_id`` is the sender's own id.
* A photo arrives as a list of sizes (``file_id`` each); the largest is fetched with
  ``getFile`` and ``/file/bot<token>/<file_path>`` (bots may download up to 20 MB).
  Operators' files go out as multipart ``sendPhoto`` / ``sendDocument``.
* The bot serves private chats only; a message in a group it was added to is
  acknowledged and dropped, or the bot would answer every member's chatter.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar

import httpx
from pydantic import Field, field_validator

from abonent.billing.accounts import normalise_phone
from abonent.channels.base import (
    FollowUp,
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
from abonent.clock import utcnow
from abonent.config import ChannelSettings
from abonent.core.attachments import FETCHED_TYPES, Fetched, FetchError, too_large
from abonent.core.types import Attachment, Button, InboundMessage, RemoteFile

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024
CALLBACK_DATA_LIMIT = 64  # bytes, UTF-8
# Not documented; about 100 buttons per keyboard is what clients are seen to accept.
BUTTON_LIMIT = 100
# A title longer than this gets a row of its own; shorter ones go two to a row.
SHORT_TITLE = 20
ALLOWED_UPDATES = ("message", "callback_query")

# Message fields that carry something other than text, in the order they are looked
# at, with the attachment kind each becomes. ``animation`` comes with a duplicate
# ``document`` and ``venue`` with a duplicate ``location``: the first one wins.
_MEDIA: tuple[tuple[str, str], ...] = (
    ("photo", "photo"),
    ("sticker", "sticker"),
    ("voice", "voice"),
    ("video_note", "video"),
    ("video", "video"),
    ("animation", "video"),
    ("audio", "file"),
    ("document", "file"),
    ("venue", "location"),
    ("location", "location"),
    ("poll", "other"),
    ("dice", "other"),
    ("game", "other"),
    ("story", "other"),
)
_DUPLICATES = {"animation": "document", "venue": "location"}


class TelegramSettings(ChannelSettings):
    """``[[channels]]`` entry of ``type = "telegram"``."""

    # From @BotFather: "<bot id>:<key>"; it goes into the API path, hence the alphabet.
    token: str = Field(pattern=r"^\d+:[A-Za-z0-9_-]+$")
    # ``secret_token`` of setWebhook, echoed in X-Telegram-Bot-Api-Secret-Token.
    # Empty is accepted at start so a half-configured channel can still be checked,
    # but then every webhook is refused.
    secret: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,256}$")
    # The bot's @username, for the widget's deep link https://t.me/<username>.
    username: str = Field(default="", pattern=r"^@?([A-Za-z0-9_]{4,32})?$")

    @field_validator("username")
    @classmethod
    def _without_at(cls, value: str) -> str:
        return value.removeprefix("@")


class TelegramChannel(MessengerChannel):
    settings_model: ClassVar[type[ChannelSettings]] = TelegramSettings
    default_api_base: ClassVar[str] = "https://api.telegram.org"
    type = "telegram"  # after the annotation above: it shadows the builtin in here

    settings: TelegramSettings

    def deep_link(self) -> str | None:
        return f"https://t.me/{self.settings.username}" if self.settings.username else None

    # ------------------------------------------------------------------ webhooks
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        require_secret_header(request, SECRET_HEADER, self.settings.secret, self.id)
        update = parse_json(request.body)
        if not isinstance(update, dict):
            raise WebhookRejected(400, "an update must be a JSON object")
        result = WebhookResult()  # Telegram wants any 2xx; an empty 200 it is
        if isinstance(update.get("message"), dict):
            message = self._message(update["message"])
            if message is not None:
                result.messages.append(message)
        elif isinstance(update.get("callback_query"), dict):
            query = update["callback_query"]
            query_id = _required_str(query, "id")
            message = self._callback(query, query_id)
            if message is not None:
                result.messages.append(message)
            answerable = answerable_id(query_id)
            if answerable is not None:  # else Telegram could not have issued it
                result.follow_ups.append(self._answer_callback(answerable))
        # edited_message, my_chat_member (blocked/unblocked) and the rest: ack only.
        return result

    def _message(self, message: dict[str, Any]) -> InboundMessage | None:
        chat = message.get("chat")
        if not isinstance(chat, dict) or "id" not in chat or "message_id" not in message:
            raise WebhookRejected(400, "message without chat.id or message_id")
        if chat.get("type", "private") != "private":
            return None
        sender = _obj(message, "from")
        text = message.get("text") or message.get("caption") or ""
        attachments: list[Attachment] = []
        phone: str | None = None
        contact = message.get("contact")
        if isinstance(contact, dict):
            own = contact.get("user_id") is not None and contact.get("user_id") == sender.get("id")
            phone = normalise_phone(str(contact.get("phone_number") or "")) if own else None
            if phone is not None:
                attachments.append(Attachment("contact"))
            else:
                # Someone else's card, or a number we cannot read: kept for the
                # operator, but not "the customer's phone".
                why = "not the sender's own" if not own else "number not recognised"
                attachments.append(Attachment("other", name=f"contact ({why})"))
        attachments.extend(_media(message))
        if not text and not attachments:
            return None  # a service message (pinned, write access allowed …)
        return InboundMessage(
            files=_files(message),
            channel_id=self.id,
            external_user_id=str(chat["id"]),
            text=str(text),
            external_id=f"m:{chat['id']}:{message['message_id']}",
            display_name=_name(sender),
            phone=phone,
            attachments=tuple(attachments),
            sent_at=unix_time(message.get("date")),
        )

    def _callback(self, query: dict[str, Any], query_id: str) -> InboundMessage | None:
        data = query.get("data")
        if not isinstance(data, str) or not data:
            return None  # a game's button: nothing for the bot
        sender = _obj(query, "from")
        origin = _obj(query, "message")
        chat = _obj(origin, "chat")
        if chat.get("type", "private") != "private":
            return None
        target = chat.get("id", sender.get("id"))
        if target is None:
            raise WebhookRejected(400, "callback_query without message.chat.id or from.id")
        return InboundMessage(
            channel_id=self.id,
            external_user_id=str(target),
            text=_button_title(origin, data) or "",
            payload=data,
            external_id=f"cb:{query_id}",
            display_name=_name(sender),
            sent_at=utcnow(),
        )

    def _answer_callback(self, query_id: str) -> FollowUp:
        async def answer() -> None:
            try:
                response = await self.http.post(
                    self._method_url("answerCallbackQuery"),
                    json={"callback_query_id": query_id},
                )
            except httpx.HTTPError as exc:
                log.warning("%s: answerCallbackQuery failed: %s", self.id, exc)
                return
            if response.status_code != 200:
                log.warning(
                    "%s: answerCallbackQuery failed: %s",
                    self.id,
                    _error_reason(response, response_json(response)),
                )

        return answer

    async def fetch_file(self, remote: dict[str, Any], limit: int) -> Fetched:
        """``getFile`` names the file's path; the file itself is under ``/file/bot<T>/``."""
        file_id = remote.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise FetchError("no file_id", permanent=True)
        try:
            result = await self._call("getFile", {"file_id": file_id})
        except SendError as exc:
            raise FetchError(exc.reason, permanent=exc.permanent) from exc
        path = result.get("file_path") if isinstance(result, dict) else None
        if not isinstance(path, str) or not path:
            raise FetchError("getFile gave no file_path (a file over 20 MB?)", permanent=True)
        size = result.get("file_size")
        if isinstance(size, int) and size > limit:
            raise FetchError(str(too_large(size, limit)), permanent=True)
        url = f"{self.api_base}/file/bot{self.settings.token}/{path}"
        return Fetched(await download(self.http, url, limit), remote.get("name"))

    # ------------------------------------------------------------------ sending
    async def send(self, message: OutgoingMessage) -> SendResult:
        text, markup = render(message.text, message.buttons)
        files = message.files
        # One file with a short text goes as one message: the photo with its caption.
        caption = text if len(files) == 1 and 0 < len(text) <= CAPTION_LIMIT else ""
        parts = split_text(text, TEXT_LIMIT) if text and not caption else []
        chat_id: int | str = _chat_id(message.recipient)
        count = len(parts) + len(files)

        async def send(i: int) -> str | None:
            last = i == count - 1
            if i >= len(parts):
                file = files[i - len(parts)]
                result = await self._send_file(
                    chat_id, file, caption, markup if last and not parts else None
                )
            else:
                body: dict[str, Any] = {
                    "chat_id": chat_id,
                    "text": parts[i],
                    # Links in the bot's texts (payment, reception) need no preview card.
                    "link_preview_options": {"is_disabled": True},
                }
                if markup is not None and i == len(parts) - 1:
                    body["reply_markup"] = markup
                result = await self._call("sendMessage", body)
            message_id = result.get("message_id") if isinstance(result, dict) else None
            return str(message_id) if message_id is not None else None

        return SendResult(
            external_id=await send_parts(count, message.skip_parts, send),
            numbered=bool(message.buttons) and markup is None,
        )

    async def _send_file(
        self, chat_id: int | str, file: OutgoingFile, caption: str, markup: dict[str, Any] | None
    ) -> Any:
        """``sendPhoto`` for a photo, ``sendDocument`` for a PDF, as a multipart upload."""
        method, field = (
            ("sendPhoto", "photo") if file.kind == "image" else ("sendDocument", "document")
        )
        data: dict[str, str] = {"chat_id": str(chat_id)}
        if caption:
            data["caption"] = caption
        if markup is not None:
            data["reply_markup"] = json.dumps(markup, ensure_ascii=False)
        content = await asyncio.to_thread(file.read)
        return await self._call(method, form=data, files={field: (file.name, content, file.mime)})

    async def _call(
        self,
        method: str,
        body: dict[str, Any] | None = None,
        *,
        form: dict[str, str] | None = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
    ) -> Any:
        """One API call (JSON, or multipart with ``files``); its ``result``, or
        ``SendError`` classified for the outbox."""
        try:
            if files is not None:
                response = await self.http.post(self._method_url(method), data=form, files=files)
            else:
                response = await self.http.post(self._method_url(method), json=body or {})
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        data = response_json(response)
        if response.status_code == 200 and isinstance(data, dict) and data.get("ok") is True:
            return data.get("result")
        reason = _error_reason(response, data)
        code = _error_code(response, data)
        if code == 429:
            parameters = data.get("parameters") if isinstance(data, dict) else None
            hint = parameters.get("retry_after") if isinstance(parameters, dict) else None
            retry_after = (
                float(hint) if isinstance(hint, int | float) else retry_after_header(response)
            )
            raise SendError(reason, retry_after=retry_after)
        if code >= 500 or response.status_code >= 500:
            raise SendError(reason)
        if 400 <= code < 500:
            # 400 bad request / chat not found, 401 bad token, 403 blocked by the user,
            # 404 wrong method or token: no retry makes them succeed.
            raise SendError(reason, permanent=True)
        raise SendError(reason)  # a 200 we cannot read: try again

    def _method_url(self, method: str) -> str:
        return f"{self.api_base}/bot{self.settings.token}/{method}"

    # ------------------------------------------------------------------ set-up
    async def register(self, public_url: str) -> str:
        if not self.settings.secret:
            raise ValueError(
                f"{self.id}: the secret must be configured before registering "
                "(1-256 characters A-Z a-z 0-9 _ -); without it every webhook is refused"
            )
        url = self.webhook_url(public_url)
        await self._setup_call(
            "setWebhook",
            {
                "url": url,
                "secret_token": self.settings.secret,
                "allowed_updates": list(ALLOWED_UPDATES),
            },
        )
        return f"{self.id}: Telegram webhook set to {url} (updates: {', '.join(ALLOWED_UPDATES)})"

    async def check(self) -> str:
        me = await self._setup_call("getMe", {})
        info = await self._setup_call("getWebhookInfo", {})
        me = me if isinstance(me, dict) else {}
        info = info if isinstance(info, dict) else {}
        bot = f"@{me['username']}" if me.get("username") else f"id {me.get('id')}"
        url = info.get("url") or ""
        where = url or "NOT SET"
        if url and not url.endswith(f"/webhooks/{self.id}"):
            where += f" (not this channel's route /webhooks/{self.id})"
        line = (
            f"{self.id}: bot {bot}, webhook {where}, "
            f"pending updates {info.get('pending_update_count', 0)}"
        )
        if info.get("last_error_message"):
            when = unix_time(info.get("last_error_date"))
            at = f" at {when:%Y-%m-%d %H:%M} UTC" if when else ""
            line += f", last error{at}: {info['last_error_message']}"
        if self.settings.username and me.get("username") not in (None, self.settings.username):
            line += f"; configured username @{self.settings.username} differs"
        return line

    async def _setup_call(self, method: str, body: dict[str, Any]) -> Any:
        try:
            return await self._call(method, body)
        except SendError as exc:
            raise RuntimeError(f"{self.id}: {method} failed: {exc.reason}") from exc


# --------------------------------------------------------------------------- rendering
def render(text: str, buttons: tuple[Button, ...]) -> tuple[str, dict[str, Any] | None]:
    """The text and the inline keyboard for ``buttons``; a numbered text menu when they
    do not fit (a payload over 64 bytes, too many buttons)."""
    if not buttons:
        return text, None
    fits = len(buttons) <= BUTTON_LIMIT and all(
        b.title and 0 < len(b.payload.encode()) <= CALLBACK_DATA_LIMIT for b in buttons
    )
    if not fits:
        return numbered_text(text, buttons), None
    rows: list[list[dict[str, str]]] = []
    pending: list[dict[str, str]] = []
    for b in buttons:
        button = {"text": b.title, "callback_data": b.payload}
        if len(b.title) > SHORT_TITLE:
            if pending:
                rows.append(pending)
                pending = []
            rows.append([button])
            continue
        pending.append(button)
        if len(pending) == 2:
            rows.append(pending)
            pending = []
    if pending:
        rows.append(pending)
    return text, {"inline_keyboard": rows}


# --------------------------------------------------------------------------- helpers
def _files(message: dict[str, Any]) -> tuple[RemoteFile, ...]:
    """Photos and documents worth fetching: the largest size of a photo (the list runs
    from the thumbnail up), a document that says it is an image or a PDF."""
    found: list[RemoteFile] = []
    photo = message.get("photo")
    if isinstance(photo, list) and photo and isinstance(photo[-1], dict):
        best = photo[-1]
        if isinstance(best.get("file_id"), str):
            size = best.get("file_size")
            found.append(
                RemoteFile(
                    "image",
                    {"file_id": best["file_id"]},
                    size=size if isinstance(size, int) else None,
                )
            )
    document = message.get("document")
    if isinstance(document, dict) and isinstance(document.get("file_id"), str):
        mime = document.get("mime_type")
        if not isinstance(mime, str) or mime in FETCHED_TYPES:
            name = document.get("file_name") if isinstance(document.get("file_name"), str) else None
            size = document.get("file_size")
            found.append(
                RemoteFile(
                    "document" if mime == "application/pdf" else "image",
                    {"file_id": document["file_id"], "name": name},
                    name=name,
                    mime=mime if isinstance(mime, str) else None,
                    size=size if isinstance(size, int) else None,
                )
            )
    return tuple(found)


def _media(message: dict[str, Any]) -> list[Attachment]:
    found: list[Attachment] = []
    skip: set[str] = set()
    for field, kind in _MEDIA:
        value = message.get(field)
        if field in skip or not value:
            continue
        if field in _DUPLICATES:
            skip.add(_DUPLICATES[field])
        found.append(Attachment(kind, url=_location_url(field, value), name=_media_name(value)))
    return found


def _location_url(field: str, value: Any) -> str | None:
    if field == "venue" and isinstance(value, dict):
        value = value.get("location")
    if field in ("venue", "location") and isinstance(value, dict):
        lat, lon = value.get("latitude"), value.get("longitude")
        if isinstance(lat, int | float) and isinstance(lon, int | float):
            return f"geo:{lat},{lon}"
    return None


def _media_name(value: Any) -> str | None:
    """A file's own name, a sticker's emoji, a venue's title: what an operator can read.
    (A file's download URL would contain the bot token, so none is stored.)"""
    if not isinstance(value, dict):
        return None
    for key in ("file_name", "emoji", "title"):
        if isinstance(value.get(key), str) and value[key]:
            return str(value[key])
    return None


def _button_title(origin: dict[str, Any], data: str) -> str | None:
    markup = origin.get("reply_markup")
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else []:
        for button in row if isinstance(row, list) else []:
            if isinstance(button, dict) and button.get("callback_data") == data:
                title = button.get("text")
                return title if isinstance(title, str) else None
    return None


def _obj(parent: dict[str, Any], key: str) -> dict[str, Any]:
    value = parent.get(key)
    return value if isinstance(value, dict) else {}


def _required_str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str | int) or value == "":
        raise WebhookRejected(400, f"callback_query without {key}")
    return str(value)


def _name(sender: dict[str, Any]) -> str | None:
    username = sender.get("username")
    at = f"@{username}" if isinstance(username, str) and username else None
    return person_name(sender) or at


def _chat_id(recipient: str) -> int | str:
    return int(recipient) if recipient.lstrip("-").isdigit() else recipient


def _error_code(response: httpx.Response, data: Any) -> int:
    code = data.get("error_code") if isinstance(data, dict) else None
    return code if isinstance(code, int) else response.status_code


def _error_reason(response: httpx.Response, data: Any) -> str:
    code = _error_code(response, data)
    description = data.get("description") if isinstance(data, dict) else None
    if not isinstance(description, str) or not description:
        description = response.reason_phrase or "no description"
    if code == 401:
        description += " (check the bot token)"
    return f"telegram {code}: {description}"
