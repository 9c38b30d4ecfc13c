"""VK community messages over the Callback API.

What is peculiar about VK, and why the code looks the way it does:

* There is no header signature. The community's secret key travels *inside* the JSON
  body, so the body has to be parsed before it can be authenticated (malformed → 400,
  then the ``secret`` field is compared in constant time → 403). The one unsigned
  event is the ``confirmation`` handshake, answered with the community's confirmation
  string as a plain-text body; every other accepted event must be answered with the
  exact body ``ok`` — ignored ones too — or VK keeps re-sending it (with
  ``X-Retry-Counter``). The envelope's ``event_id`` is stable across those retries and
  is the dedupe key.
* The API always answers HTTP 200; failures are ``{"error": {"error_code": …}}`` in the
  body, so the error code, not the status, decides between retry and give-up.
* ``messages.send`` is the only send API here with a server-side idempotency key:
  ``random_id``. It is derived from our message id and the part index, so a send the
  outbox retries (or a long text resent from its first part) is not duplicated.
* Buttons are inline *text* buttons: a tap posts the label as the customer's own
  message (readable in the history, works in every client) and carries our payload
  as a JSON string in ``message.payload``. Callback-button presses (``message_event``)
  are understood as well and are answered with ``messages.sendMessageEventAnswer`` so
  the button stops spinning. Clients that report no inline keyboards (``client_info``,
  remembered per process) get the numbered text menu instead.
* Bots never see the customer's phone, and names are not in the event: the name is
  read once per user with ``users.get`` (best effort, cached).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
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
    answerable_id,
    download,
    numbered_text,
    parse_json,
    person_name,
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

TEXT_LIMIT = 9000  # messages.send ``message`` maxLength (vk-api-schema 5.199)
DOC_EXTENSIONS = frozenset({"pdf", "jpg", "jpeg", "png", "webp", "heic", "heif"})
LABEL_LIMIT = 40
PAYLOAD_LIMIT = 255
INLINE_MAX_BUTTONS = 10
INLINE_MAX_ROWS = 6
INLINE_MAX_PER_ROW = 5
# Peers above this are group chats (2000000000 + chat id), not a customer's dialog.
CHAT_PEER_BASE = 2_000_000_000
# random_id: message id × PARTS + part index, kept inside a positive int32.
PARTS = 32
INT32_MAX = 2**31 - 1
NAME_TIMEOUT = 3.0
NAME_CACHE = 10_000

# error_code → seconds to wait (None: the outbox's own backoff). Anything else is final.
TRANSIENT: dict[int, float | None] = {
    1: None,  # Unknown error occurred
    6: 1.0,  # Too many requests per second
    9: None,  # Flood control
    10: None,  # Internal server error
}
# What an operator should do about a final error, appended to VK's own wording.
HINTS: dict[int, str] = {
    5: "the community token is invalid or revoked",
    7: "the token lacks the 'messages' right",
    15: "the token lacks the right for this method",
    27: "the community token is invalid",
    29: "the daily method quota is used up",
    100: "a parameter was rejected",
    900: "the user is on the community's blacklist",
    901: "the user has not allowed messages from the community",
    902: "the user's privacy settings forbid messages",
    911: "the keyboard was refused",
    912: "enable 'Bot capabilities' in the community settings",
    914: "the text is too long",
    950: "the reply window has closed",
}

KIND = {
    "photo": "photo",
    "sticker": "sticker",
    "graffiti": "sticker",
    "audio_message": "voice",
    "video": "video",
    "doc": "file",
}


class VkSettings(ChannelSettings):
    """``[[channels]]`` entry of ``type = "vk"``."""

    token: str = Field(min_length=1, description="community access token (messages right)")
    secret: str = Field(min_length=1, description="Callback API secret key")
    confirmation: str = Field(
        default="",
        description="the confirmation string VK expects; empty: read it with the token",
    )
    group_id: int = Field(gt=0, description="the community's numeric id")
    api_version: str = "5.199"
    link: str = Field(default="", description="deep link; default https://vk.me/club<group_id>")
    fetch_names: bool = Field(default=True, description="read customers' names via users.get")


class VkApiError(Exception):
    """An ``{"error": …}`` answer (or a non-200 status) from the VK API."""

    def __init__(
        self, code: int, message: str, *, status: int = 200, retry_after: float | None = None
    ) -> None:
        super().__init__(f"vk {code}: {message}" if status == 200 else f"vk HTTP {status}")
        self.code = code
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def reason(self) -> str:
        if self.status != 200:
            return f"vk HTTP {self.status}: {self.message}"
        hint = HINTS.get(self.code)
        return f"vk {self.code}: {self.message}" + (f" ({hint})" if hint else "")


class VkChannel(MessengerChannel):
    type = "vk"
    settings_model = VkSettings
    default_api_base = "https://api.vk.com"

    settings: VkSettings

    def __init__(self, settings: ChannelSettings) -> None:
        super().__init__(settings)
        self._names: dict[int, str | None] = {}
        # Peers whose client said it shows no inline keyboards (client_info).
        self._plain_peers: set[str] = set()
        self._confirmation: str = self.settings.confirmation

    def deep_link(self) -> str | None:
        return self.settings.link or f"https://vk.me/club{self.settings.group_id}"

    def acknowledge(self) -> WebhookResult:
        # VK counts anything but the body ``ok`` as a failed delivery and retries it.
        return WebhookResult(body="ok")

    # ------------------------------------------------------------------ API
    async def call(self, method: str, params: dict[str, Any], wait: float | None = None) -> Any:
        """``POST /method/<method>``; the ``response`` value, or ``VkApiError``.
        The token goes in the form body, never in the URL (proxies log URLs)."""
        data = {k: _param(v) for k, v in params.items() if v is not None}
        data["v"] = self.settings.api_version
        data["access_token"] = self.settings.token
        response = await self.http.post(
            f"{self.api_base}/method/{method}",
            data=data,
            timeout=httpx.USE_CLIENT_DEFAULT if wait is None else wait,
        )
        if response.status_code != 200:
            raise VkApiError(
                0,
                response.text[:200] or response.reason_phrase,
                status=response.status_code,
                retry_after=retry_after_header(response),
            )
        body = response_json(response)
        if not isinstance(body, dict):
            raise VkApiError(0, f"unexpected answer: {response.text[:200]!r}")
        error = body.get("error")
        if isinstance(error, dict):
            code = error.get("error_code")
            raise VkApiError(
                code if isinstance(code, int) else 0, str(error.get("error_msg", "unknown error"))
            )
        if "response" not in body:
            raise VkApiError(0, f"unexpected answer: {response.text[:200]!r}")
        return body["response"]

    # ------------------------------------------------------------------ webhook
    async def handle_webhook(self, request: WebhookRequest) -> WebhookResult:
        event = parse_json(request.body)
        if not isinstance(event, dict):
            raise WebhookRejected(400, "callback body is not a JSON object")
        kind = event.get("type")
        if not isinstance(kind, str):
            raise WebhookRejected(400, "callback has no type")
        if kind == "confirmation":
            return await self._confirm(event)
        secret = event.get("secret")
        if not isinstance(secret, str) or not hmac.compare_digest(
            secret.encode(), self.settings.secret.encode()
        ):
            raise WebhookRejected(403, "wrong or missing secret")
        if event.get("group_id") != self.settings.group_id:
            raise WebhookRejected(403, "event for another community")
        retry = request.header("x-retry-counter")
        if retry:
            log.debug("vk %s: redelivery %s of event %s", self.id, retry, event.get("event_id"))
        obj = event.get("object")
        ok = WebhookResult(body="ok")
        if kind == "message_new":
            message = self._message_new(event, obj)
            if message is not None:
                ok.messages.append(await self._named(message))
        elif kind == "message_event":
            press = self._message_event(event, obj)
            if press is not None:
                message, answer = press
                ok.messages.append(await self._named(message))
                if answerable_id(event.get("object", {}).get("event_id")) is not None:
                    ok.follow_ups.append(answer)  # else VK could not have issued the id
        else:
            # message_reply (our own sends echoed), message_edit, typing, allow/deny …
            log.debug("vk %s: ignored event %s", self.id, kind)
        return ok

    async def _confirm(self, event: dict[str, Any]) -> WebhookResult:
        if event.get("group_id") != self.settings.group_id:
            raise WebhookRejected(403, "confirmation for another community")
        secret = event.get("secret")
        if (
            isinstance(secret, str)
            and secret
            and not hmac.compare_digest(secret.encode(), self.settings.secret.encode())
        ):
            raise WebhookRejected(403, "wrong secret")
        code = self._confirmation
        if not code:
            try:
                code = await self._confirmation_code()
            except (VkApiError, httpx.HTTPError) as exc:
                log.error("vk %s: cannot read the confirmation string: %s", self.id, exc)
                raise WebhookRejected(
                    503, "confirmation string is not configured and could not be read"
                ) from exc
            self._confirmation = code
        log.info("vk %s: answered VK's confirmation request", self.id)
        return WebhookResult(body=code)

    async def _confirmation_code(self) -> str:
        answer = await self.call(
            "groups.getCallbackConfirmationCode", {"group_id": self.settings.group_id}
        )
        code = answer.get("code") if isinstance(answer, dict) else None
        if not isinstance(code, str) or not code:
            raise VkApiError(0, f"no confirmation code in {answer!r}")
        return code

    def _message_new(self, event: dict[str, Any], obj: Any) -> InboundMessage | None:
        message = obj.get("message") if isinstance(obj, dict) else None
        if not isinstance(message, dict):
            raise WebhookRejected(400, "message_new without object.message")
        peer_id = message.get("peer_id")
        if not isinstance(peer_id, int) or isinstance(peer_id, bool):
            raise WebhookRejected(400, "message_new without peer_id")
        if peer_id >= CHAT_PEER_BASE or peer_id <= 0 or message.get("out") == 1:
            log.debug("vk %s: ignored a message in a group chat or from a community", self.id)
            return None
        recipient = str(peer_id)
        client = obj.get("client_info")
        if isinstance(client, dict) and "inline_keyboard" in client:
            if client.get("inline_keyboard") and client.get("keyboard", True):
                self._plain_peers.discard(recipient)
            else:
                self._plain_peers.add(recipient)
        text = message.get("text") if isinstance(message.get("text"), str) else ""
        payload = _button_payload(message.get("payload"))
        if payload == "/start":  # VK's «Начать» button: the first contact
            text, payload = "/start", None
        return InboundMessage(
            channel_id=self.id,
            external_user_id=recipient,
            text=text or "",
            payload=payload,
            external_id=_event_key(event, _message_key(peer_id, message)),
            sent_at=unix_time(message.get("date")),
            attachments=_attachments(message),
            files=_files(message),
        )

    def _message_event(
        self, event: dict[str, Any], obj: Any
    ) -> tuple[InboundMessage, Callable[[], Awaitable[None]]] | None:
        if not isinstance(obj, dict):
            raise WebhookRejected(400, "message_event without object")
        peer_id, user_id, press_id = obj.get("peer_id"), obj.get("user_id"), obj.get("event_id")
        if not isinstance(peer_id, int) or not isinstance(user_id, int):
            raise WebhookRejected(400, "message_event without peer_id/user_id")
        if not isinstance(press_id, str) or not press_id:
            raise WebhookRejected(400, "message_event without event_id")

        async def answer() -> None:
            # No event_data: the spinner stops; the bot's reply is the answer.
            await self.call(
                "messages.sendMessageEventAnswer",
                {"event_id": press_id, "user_id": user_id, "peer_id": peer_id},
            )

        if peer_id >= CHAT_PEER_BASE or peer_id <= 0:
            log.debug("vk %s: ignored a button press in a group chat", self.id)
            return None
        payload = obj.get("payload")
        if isinstance(payload, str):
            value = _button_payload(payload)
        elif isinstance(payload, dict) and isinstance(payload.get("p"), str):
            value = payload["p"]
        elif payload is None:
            value = None
        else:
            value = json.dumps(payload, ensure_ascii=False)
        message = InboundMessage(
            channel_id=self.id,
            external_user_id=str(peer_id),
            payload=value,
            external_id=_event_key(event, f"cb:{press_id}"),
        )
        return message, answer

    async def _named(self, message: InboundMessage) -> InboundMessage:
        """The sender's name from ``users.get``, once per user and process; on any
        failure the message goes on without it."""
        if not self.settings.fetch_names:
            return message
        user_id = int(message.external_user_id)
        if user_id not in self._names:
            name: str | None = None
            try:
                users = await self.call("users.get", {"user_ids": user_id}, wait=NAME_TIMEOUT)
                if isinstance(users, list) and users and isinstance(users[0], dict):
                    name = person_name(users[0])
            except (VkApiError, httpx.HTTPError) as exc:
                log.warning("vk %s: users.get for %s failed: %s", self.id, user_id, exc)
                return message
            if len(self._names) >= NAME_CACHE:
                self._names.clear()
            self._names[user_id] = name
        name = self._names[user_id]
        if name is None:
            return message
        return replace(message, display_name=name[:200])

    # ------------------------------------------------------------------ send
    async def fetch_file(self, remote: dict[str, Any], limit: int) -> Fetched:
        """VK's photo and document URLs are direct (signed) download addresses."""
        url = remote.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise FetchError("no download URL", permanent=True)
        return Fetched(await download(self.http, url, limit), remote.get("name"))

    async def send(self, message: OutgoingMessage) -> SendResult:
        text = message.text
        keyboard = None
        if message.buttons:
            if message.recipient not in self._plain_peers:
                keyboard = inline_keyboard(message.buttons)
            if keyboard is None:
                text = numbered_text(text, message.buttons)
        files = message.files
        # One file with a short text goes as one message: the text with the attachment.
        caption = text if len(files) == 1 and keyboard is None and len(text) <= TEXT_LIMIT else ""
        parts = split_text(text, TEXT_LIMIT) if text and not caption else []

        async def send(index: int) -> str | None:
            params: dict[str, Any] = {
                "peer_id": message.recipient,
                "random_id": random_id(message.message_id, index),
            }
            if index >= len(parts):
                # random_id makes a retried send a no-op at VK, uploads aside.
                params["attachment"] = await self._upload(
                    message.recipient, files[index - len(parts)]
                )
                if caption:
                    params["message"] = caption
            else:
                params["message"] = parts[index]
            if keyboard is not None and index == len(parts) - 1:
                params["keyboard"] = keyboard
            try:
                answer = await self.call("messages.send", params)
            except httpx.HTTPError as exc:
                raise transport_error(exc) from exc
            except VkApiError as exc:
                raise _send_error(exc) from exc
            return str(answer) if isinstance(answer, int | str) else None

        last_id = await send_parts(len(parts) + len(files), message.skip_parts, send)
        return SendResult(external_id=last_id, numbered=bool(message.buttons) and keyboard is None)

    async def _upload(self, peer_id: str, file: OutgoingFile) -> str:
        """A photo: ``photos.getMessagesUploadServer`` → upload (``photo``) →
        ``photos.saveMessagesPhoto``; a document: ``docs.getMessagesUploadServer`` →
        upload (``file``) → ``docs.save``. The attachment string for messages.send."""
        photo = file.kind == "image" and file.mime in ("image/jpeg", "image/png")
        try:
            if photo:
                server = await self.call("photos.getMessagesUploadServer", {"peer_id": peer_id})
            else:
                server = await self.call(
                    "docs.getMessagesUploadServer", {"peer_id": peer_id, "type": "doc"}
                )
            url = server.get("upload_url") if isinstance(server, dict) else None
            if not isinstance(url, str) or not url:
                raise SendError("vk: no upload_url")
            content = await asyncio.to_thread(file.read)
            field = "photo" if photo else "file"
            response = await self.http.post(url, files={field: (file.name, content, file.mime)})
            uploaded = response_json(response)
            if response.status_code != 200 or not isinstance(uploaded, dict):
                raise SendError(f"vk: upload failed: HTTP {response.status_code}")
            if photo:
                saved = await self.call(
                    "photos.saveMessagesPhoto",
                    {k: uploaded.get(k) for k in ("server", "photo", "hash")},
                )
                item = saved[0] if isinstance(saved, list) and saved else None
                if not isinstance(item, dict):
                    raise SendError("vk: photos.saveMessagesPhoto gave nothing")
                key = f"_{item['access_key']}" if item.get("access_key") else ""
                return f"photo{item['owner_id']}_{item['id']}{key}"
            if not isinstance(uploaded.get("file"), str):
                raise SendError(f"vk: upload refused: {uploaded.get('error', 'no file')}")
            saved = await self.call("docs.save", {"file": uploaded["file"], "title": file.name})
            doc = saved.get("doc") if isinstance(saved, dict) else None
            if not isinstance(doc, dict):
                raise SendError("vk: docs.save gave no doc")
            return f"doc{doc['owner_id']}_{doc['id']}"
        except httpx.HTTPError as exc:
            raise transport_error(exc) from exc
        except VkApiError as exc:
            raise _send_error(exc) from exc

    # ------------------------------------------------------------------ CLI
    async def register(self, public_url: str) -> str:
        url = self.webhook_url(public_url)
        steps = (
            f"{self.id}: in VK open Manage community → Settings → API usage → Callback API "
            f"and set: API version {self.settings.api_version}; address {url}; secret key = the "
            "configured secret; event types «Входящее сообщение» (message_new) and "
            "«Действие с сообщением» (message_event); then press Confirm"
        )
        try:
            code = await self._confirmation_code()
        except VkApiError as exc:
            if exc.code in (5, 27):
                raise RuntimeError(f"{self.id}: the VK token was refused: {exc.reason}") from exc
            note = (
                "the configured one" if self.settings.confirmation else "read with the token then"
            )
            return f"{steps}. VK will expect the confirmation string {note} ({exc.reason})"
        if self.settings.confirmation and self.settings.confirmation != code:
            raise RuntimeError(
                f"{self.id}: configured confirmation {self.settings.confirmation!r} differs from "
                f"VK's {code!r}; set confirmation = {code!r} and restart"
            )
        self._confirmation = code
        return f"{steps}. The confirmation string {code!r} will be answered"

    async def check(self) -> str:
        try:
            answer = await self.call("groups.getById", {"group_id": self.settings.group_id})
        except VkApiError as exc:
            raise RuntimeError(f"{self.id}: {exc.reason}") from exc
        groups = answer.get("groups") if isinstance(answer, dict) else answer
        group = groups[0] if isinstance(groups, list) and groups else None
        if not isinstance(group, dict) or group.get("id") != self.settings.group_id:
            raise RuntimeError(
                f"{self.id}: the token belongs to another community than {self.settings.group_id}"
            )
        return (
            f"{self.id}: token valid for community «{group.get('name', '?')}» "
            f"(club{self.settings.group_id}), API {self.settings.api_version}"
        )


# --------------------------------------------------------------------------- helpers
def _param(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


def random_id(message_id: int, part: int) -> int:
    """Deterministic per (message, part), positive int32, never 0 (0 turns dedupe off)."""
    return (message_id * PARTS + part % PARTS) % INT32_MAX + 1


def button_payload(payload: str) -> str:
    return json.dumps({"p": payload}, ensure_ascii=False, separators=(",", ":"))


def inline_keyboard(buttons: tuple[Button, ...]) -> str | None:
    """The inline keyboard as VK's JSON string, or None when the buttons do not fit
    (more than 10, or a payload over 255 characters): the caller sends numbered text.
    One button per row while six rows suffice, two per row up to ten buttons."""
    if not buttons or len(buttons) > INLINE_MAX_BUTTONS:
        return None
    cells: list[dict[str, Any]] = []
    for b in buttons:
        payload = button_payload(b.payload)
        if len(payload) > PAYLOAD_LIMIT:
            return None
        label = b.title if len(b.title) <= LABEL_LIMIT else b.title[: LABEL_LIMIT - 1] + "…"
        cells.append({"action": {"type": "text", "label": label, "payload": payload}})
    per_row = 1 if len(cells) <= INLINE_MAX_ROWS else 2
    rows = [cells[i : i + per_row] for i in range(0, len(cells), per_row)]
    return json.dumps(
        {"one_time": False, "inline": True, "buttons": rows},
        ensure_ascii=False,
        separators=(",", ":"),
    )


def _button_payload(raw: Any) -> str | None:
    """Our payload back from ``message.payload`` (a JSON string): ``{"p": …}`` is ours,
    VK's «Начать» button sends ``{"command": "start"}``; anything else is kept verbatim."""
    if not isinstance(raw, str) or not raw:
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        return raw
    if isinstance(value, dict):
        if isinstance(value.get("p"), str):
            return str(value["p"])
        if value.get("command") == "start":
            return "/start"
    return raw


def _event_key(event: dict[str, Any], fallback: str | None) -> str | None:
    """``e:<event_id>``: VK repeats the envelope's id on every redelivery. Without one
    (an old API version) the message's own ids are the next best key."""
    event_id = event.get("event_id")
    return f"e:{event_id}" if isinstance(event_id, str) and event_id else fallback


def _message_key(peer_id: int, message: dict[str, Any]) -> str | None:
    cmid, mid = message.get("conversation_message_id"), message.get("id")
    if isinstance(cmid, int) and cmid:
        return f"c:{peer_id}:{cmid}"
    return f"m:{mid}" if isinstance(mid, int) and mid else None


def _files(message: dict[str, Any]) -> tuple[RemoteFile, ...]:
    """Photos (the largest size), and documents that are photos or PDFs, to fetch."""
    found: list[RemoteFile] = []
    items = message.get("attachments")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or item.get("type") not in ("photo", "doc"):
            continue
        body = item.get(item["type"])
        if not isinstance(body, dict):
            continue
        url = _media_url(item["type"], body)
        if url is None:
            continue
        if item["type"] == "photo":
            found.append(RemoteFile("image", {"url": url}))
            continue
        ext = str(body.get("ext") or "").lower()
        if ext not in DOC_EXTENSIONS:
            continue
        title = _str(body.get("title")) or f"документ.{ext}"
        size = body.get("size") if isinstance(body.get("size"), int) else None
        kind = "document" if ext == "pdf" else "image"
        found.append(RemoteFile(kind, {"url": url, "name": title}, name=title, size=size))
    return tuple(found)


def _attachments(message: dict[str, Any]) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    items = message.get("attachments")
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("type"), str):
            continue
        kind = item["type"]
        media = item.get(kind)
        body: dict[str, Any] = media if isinstance(media, dict) else {}
        found.append(Attachment(KIND.get(kind, "other"), _media_url(kind, body), _name(kind, body)))
    geo = message.get("geo")
    if isinstance(geo, dict):
        coords = geo.get("coordinates")
        url = None
        if isinstance(coords, dict):
            url = f"geo:{coords.get('latitude')},{coords.get('longitude')}"
        found.append(Attachment("location", url))
    return tuple(found)


def _media_url(kind: str, body: dict[str, Any]) -> str | None:
    if kind == "photo":
        orig = body.get("orig_photo")
        if isinstance(orig, dict) and isinstance(orig.get("url"), str):
            return str(orig["url"])
        return _largest(body.get("sizes"))
    if kind in ("sticker", "graffiti"):
        return _largest(body.get("images")) or _str(body.get("url"))
    if kind == "audio_message":
        return _str(body.get("link_mp3")) or _str(body.get("link_ogg"))
    if kind == "video":
        owner, vid = body.get("owner_id"), body.get("id")
        return f"https://vk.com/video{owner}_{vid}" if owner is not None and vid else None
    if kind in ("doc", "link", "audio"):
        return _str(body.get("url"))
    if kind == "wall":
        owner, post = body.get("owner_id") or body.get("to_id"), body.get("id")
        return f"https://vk.com/wall{owner}_{post}" if owner is not None and post else None
    return None


def _name(kind: str, body: dict[str, Any]) -> str | None:
    if kind == "audio":
        parts = (_str(body.get("artist")), _str(body.get("title")))
        return " — ".join(p for p in parts if p) or None
    if kind in ("doc", "video", "link"):
        return _str(body.get("title"))
    if kind not in KIND:
        return kind  # wall, link, poll, market, gift … : say what it was
    return None


def _largest(sizes: Any) -> str | None:
    if not isinstance(sizes, list):
        return None
    best: tuple[int, str] | None = None
    for size in sizes:
        if isinstance(size, dict) and isinstance(size.get("url"), str):
            area = int(size.get("width") or 0) * int(size.get("height") or 0)
            if best is None or area >= best[0]:
                best = (area, size["url"])
    return best[1] if best else None


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _send_error(exc: VkApiError) -> SendError:
    if exc.status != 200:
        # A real HTTP failure (proxy, outage): 429 and 5xx are worth another try.
        if exc.status == 429 or exc.status >= 500:
            return SendError(exc.reason, retry_after=exc.retry_after)
        return SendError(exc.reason, permanent=True)
    if exc.code == 0:  # an answer we could not read: the platform is not itself
        return SendError(exc.reason)
    if exc.code in TRANSIENT:
        return SendError(exc.reason, retry_after=TRANSIENT[exc.code])
    return SendError(exc.reason, permanent=True)
