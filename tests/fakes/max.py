"""A fake MAX Bot API (``platform-api2.max.ru``) and MAX's side of the webhook.

It checks what MAX checks: the raw token in ``Authorization`` (401 ``verify.token``
otherwise, the ``access_token`` query parameter is no longer accepted), recipient ids
in the query string only, text ≤ 4000, and the inline keyboard's limits (210 buttons,
30 rows, 7 a row — 3 in rows with link/contact/geo/app buttons, 1–128 chars a title,
1024 a payload). Errors come as MAX words them: a real HTTP status and
``{"code", "message"}``. Sent messages get ``mid.<hex>`` ids and millisecond stamps,
and are kept so a button press can be built from the message the button was on.
"""

from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from fakes.base import FakePlatform, Recorded, Reply, parse_multipart

TOKEN = "max-test-token-001"
SECRET = "Max_Secret-2026"
BOT_ID = 229229229
BOT_USERNAME = "energo_test_bot"

TEXT_LIMIT = 4000
MAX_BUTTONS = 210
MAX_ROWS = 30
MAX_PER_ROW = 7
MAX_PER_WIDE_ROW = 3
WIDE_TYPES = frozenset({"link", "open_app", "request_geo_location", "request_contact"})
BUTTON_TYPES = WIDE_TYPES | {"callback", "chat", "message", "clipboard"}
_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{5,256}$")


def now_ms() -> int:
    return int(time.time() * 1000)


def new_mid() -> str:
    return f"mid.{secrets.token_hex(16)}"


@dataclass
class Sent:
    """One message MAX accepted from the product."""

    user_id: str | None
    chat_id: str | None
    text: str
    keyboard: list[list[dict[str, Any]]] | None
    auth: str | None
    mid: str
    at: float
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(title, payload) of every callback button, row after row."""
        return [(b["text"], b.get("payload", "")) for row in self.keyboard or [] for b in row]

    @property
    def payloads(self) -> list[str]:
        return [p for _, p in self.buttons]


def error(status: int, code: str, message: str) -> Reply:
    return Reply(status, {"code": code, "message": message})


class FakeMax(FakePlatform):
    def __init__(self, token: str = TOKEN, secret: str = SECRET) -> None:
        super().__init__()
        self.token = token
        self.secret = secret
        self.subscriptions: list[dict[str, Any]] = []
        self._sent: list[Sent] = []
        self._messages: dict[str, dict[str, Any]] = {}
        self._state = threading.Lock()
        # Customers' files on MAX's CDN, the product's uploads by token, and how many
        # more sends with a fresh upload answer ``attachment.not.ready``.
        self.hosted: dict[str, bytes] = {}
        self.uploaded: dict[str, dict[str, Any]] = {}
        self._slots: dict[str, str] = {}
        self.not_ready = 0

    # ------------------------------------------------------------------ the API
    def api(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.startswith("/cdn/"):
            # Attachment URLs are signed links of MAX's CDN: no token needed.
            hosted = self.hosted.get(request.path[len("/cdn/") :])
            if hosted is None:
                return Reply(404, text="Not Found")
            return Reply(200, content=hosted)
        if request.headers.get("authorization") != self.token:
            return error(401, "verify.token", "Invalid access_token")
        route = (request.method, request.path.rstrip("/") or "/")
        if route == ("POST", "/uploads"):
            return self._upload_slot(request)
        if request.method == "POST" and request.path.startswith("/upload/"):
            return self._upload(request)
        if route == ("POST", "/messages"):
            return self._send_message(request)
        if route == ("POST", "/answers"):
            return self._answer(request)
        if route == ("GET", "/subscriptions"):
            with self._state:
                return Reply(200, {"subscriptions": [dict(s) for s in self.subscriptions]})
        if route == ("POST", "/subscriptions"):
            return self._subscribe(request)
        if route == ("DELETE", "/subscriptions"):
            return self._unsubscribe(request)
        if route == ("GET", "/me"):
            return Reply(200, self.bot_user())
        known = {"/messages", "/answers", "/subscriptions", "/me"}
        if request.path in known:
            return error(405, "method.not.allowed", f"Method {request.method} is not allowed")
        return error(404, "not.found", f"Path {request.path} is not recognized")

    def bot_user(self) -> dict[str, Any]:
        return {
            "user_id": BOT_ID,
            "first_name": "ЭнергоСбыт",
            "username": BOT_USERNAME,
            "is_bot": True,
            "last_activity_time": now_ms(),
        }

    def _send_message(self, request: Recorded) -> Reply:
        user_id = request.query.get("user_id")
        chat_id = request.query.get("chat_id")
        if not user_id and not chat_id:
            return error(400, "proto.payload", "Either chat_id or user_id must be set")
        body = _json_body(request)
        if not isinstance(body, dict):
            return error(400, "proto.payload", "Request body must be a JSON object")
        text = body.get("text")
        if text is not None and not isinstance(text, str):
            return error(400, "proto.payload", "text must be a string")
        if text is not None and len(text) > TEXT_LIMIT:
            return error(400, "proto.payload", f"text: size must be between 0 and {TEXT_LIMIT}")
        keyboard: list[list[dict[str, Any]]] | None = None
        for attachment in body.get("attachments") or []:
            if not isinstance(attachment, dict):
                return error(400, "proto.payload", "attachment must be an object")
            if attachment.get("type") in ("image", "file"):
                payload = attachment.get("payload")
                token = payload.get("token") if isinstance(payload, dict) else None
                found = self.uploaded.get(str(token))
                if found is None or found["type"] != attachment["type"]:
                    return error(400, "proto.payload", "attachment token is not valid")
                with self._state:
                    if self.not_ready > 0:
                        self.not_ready -= 1
                        return error(
                            400,
                            "attachment.not.ready",
                            "Key: errors.process.attachment.file.not.processed",
                        )
                continue
            if attachment.get("type") != "inline_keyboard":
                continue
            problem = _keyboard_problem(attachment.get("payload"))
            if problem:
                return error(400, "proto.payload", problem)
            keyboard = attachment["payload"]["buttons"]
        if not text and not body.get("attachments"):
            return error(400, "proto.payload", "Message text or attachments must be set")
        mid = new_mid()
        stamp = now_ms()
        recipient_user = int(user_id) if user_id and user_id.lstrip("-").isdigit() else None
        message = {
            "sender": self.bot_user(),
            "recipient": {
                "chat_id": int(chat_id) if chat_id else 900000000 + (recipient_user or 0),
                "chat_type": "dialog",
                "user_id": recipient_user,
            },
            "timestamp": stamp,
            "body": {
                "mid": mid,
                "seq": stamp,
                "text": text,
                "attachments": body.get("attachments"),
            },
        }
        with self._state:
            self._messages[mid] = message
            self._sent.append(
                Sent(
                    user_id=user_id,
                    chat_id=chat_id,
                    text=text or "",
                    keyboard=keyboard,
                    auth=request.headers.get("authorization"),
                    mid=mid,
                    at=request.at,
                    body=body,
                )
            )
        return Reply(200, {"message": message})

    def _upload_slot(self, request: Recorded) -> Reply:
        kind = request.query.get("type")
        if kind not in ("image", "file", "video", "audio"):
            return error(400, "proto.payload", "type must be image, video, audio or file")
        slot = secrets.token_hex(6)
        with self._state:
            self._slots[slot] = kind
        return Reply(200, {"url": f"{self.url}/upload/{slot}"})

    def _upload(self, request: Recorded) -> Reply:
        with self._state:
            kind = self._slots.pop(request.path[len("/upload/") :], None)
        if kind is None:
            return error(404, "not.found", "upload URL is not valid")
        try:
            _, files = parse_multipart(request.headers, request.body)
        except ValueError:
            return error(400, "proto.payload", "multipart/form-data expected")
        data = files.get("data")
        if data is None:
            return error(400, "proto.payload", "the file must be in the 'data' field")
        token = secrets.token_hex(12)
        with self._state:
            self.uploaded[token] = {
                "type": kind,
                "name": data.filename,
                "mime": data.content_type,
                "data": data.data,
            }
        if kind == "image":
            return Reply(200, {"photos": {secrets.token_hex(4): {"token": token}}})
        return Reply(200, {"fileId": len(self.uploaded), "token": token})

    def photo_attachment(self, data: bytes) -> dict[str, Any]:
        """A customer's photo, on the CDN."""
        name = f"p{len(self.hosted) + 1}"
        self.hosted[name] = data
        return {
            "type": "image",
            "payload": {
                "photo_id": 4243,
                "token": secrets.token_hex(8),
                "url": f"{self.url}/cdn/{name}",
            },
        }

    def file_attachment(self, data: bytes, filename: str) -> dict[str, Any]:
        name = f"f{len(self.hosted) + 1}"
        self.hosted[name] = data
        return {
            "type": "file",
            "payload": {
                "url": f"{self.url}/cdn/{name}",
                "token": secrets.token_hex(8),
                "fileId": 77,
            },
            "filename": filename,
            "size": len(data),
        }

    def _answer(self, request: Recorded) -> Reply:
        if not request.query.get("callback_id"):
            return error(400, "proto.payload", "callback_id is required")
        body = _json_body(request)
        if not isinstance(body, dict) or not (body.get("notification") or body.get("message")):
            return error(400, "proto.payload", "notification or message must be set")
        return Reply(200, {"success": True})

    def _subscribe(self, request: Recorded) -> Reply:
        body = _json_body(request)
        if not isinstance(body, dict) or not isinstance(body.get("url"), str):
            return error(400, "proto.payload", "url is required")
        if not body["url"].startswith("https://"):
            return error(400, "proto.payload", "url must be HTTPS")
        secret = body.get("secret")
        if secret is not None and not (isinstance(secret, str) and _SECRET_RE.match(secret)):
            return error(400, "proto.payload", "secret must match [A-Za-z0-9_-]{5,256}")
        types = body.get("update_types")
        if types is not None and not isinstance(types, list):
            return error(400, "proto.payload", "update_types must be an array")
        with self._state:
            self.subscriptions = [s for s in self.subscriptions if s["url"] != body["url"]]
            self.subscriptions.append(
                {
                    "url": body["url"],
                    "time": now_ms(),
                    "update_types": types or [],
                    "version": "0.0.30",
                    # Not in MAX's answer; kept so tests can see what was registered.
                    "secret": secret,
                }
            )
        return Reply(200, {"success": True})

    def _unsubscribe(self, request: Recorded) -> Reply:
        url = request.query.get("url")
        if not url:
            return error(400, "proto.payload", "url is required")
        with self._state:
            self.subscriptions = [s for s in self.subscriptions if s["url"] != url]
        return Reply(200, {"success": True})

    # ------------------------------------------------------------------ assertions
    @property
    def sent(self) -> list[Sent]:
        with self._state:
            return list(self._sent)

    def sent_to(self, user_id: int | str) -> list[Sent]:
        return [s for s in self.sent if s.user_id == str(user_id)]

    def wait_sent(self, count: int, timeout: float = 10.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} sent messages, got {len(self.sent)}")
            time.sleep(0.02)
        return self.sent

    # ------------------------------------------------------------------ webhook side
    @staticmethod
    def user(user_id: int, first_name: str = "Иван", last_name: str = "Петров") -> dict[str, Any]:
        return {
            "user_id": user_id,
            "first_name": first_name,
            "last_name": last_name,
            "name": f"{first_name} {last_name}",
            "username": None,
            "is_bot": False,
            "last_activity_time": now_ms(),
        }

    def message_update(
        self,
        user_id: int,
        text: str | None = None,
        *,
        attachments: list[dict[str, Any]] | None = None,
        mid: str | None = None,
        chat_type: str = "dialog",
        chat_id: int | None = None,
    ) -> dict[str, Any]:
        stamp = now_ms()
        return {
            "update_type": "message_created",
            "timestamp": stamp + 100,
            "user_locale": "ru",
            "message": {
                "sender": self.user(user_id),
                "recipient": {
                    "chat_id": chat_id if chat_id is not None else 900000000 + user_id,
                    "chat_type": chat_type,
                    "user_id": BOT_ID,
                },
                "timestamp": stamp,
                "body": {
                    "mid": mid or new_mid(),
                    "seq": stamp,
                    "text": text,
                    "attachments": attachments,
                },
            },
        }

    def callback_update(
        self,
        user_id: int,
        payload: str,
        *,
        message: dict[str, Any] | None = None,
        callback_id: str | None = None,
    ) -> dict[str, Any]:
        """A press on a callback button; ``message`` (the one the button was on) defaults
        to the last message this fake accepted for the user, keyboard included."""
        if message is None:
            with self._state:
                mine = [s for s in self._sent if s.user_id == str(user_id)]
                message = self._messages[mine[-1].mid] if mine else None
        stamp = now_ms()
        return {
            "update_type": "message_callback",
            "timestamp": stamp,
            "user_locale": "ru",
            "callback": {
                "timestamp": stamp,
                "callback_id": callback_id or secrets.token_urlsafe(48),
                "payload": payload,
                "user": self.user(user_id),
            },
            "message": message
            or {
                "recipient": {"chat_id": 900000000 + user_id, "chat_type": "dialog"},
                "body": {"mid": new_mid(), "seq": 1, "text": "…"},
                "sender": self.bot_user(),
                "timestamp": stamp - 1000,
            },
        }

    def bot_started_update(self, user_id: int, payload: str | None = None) -> dict[str, Any]:
        update: dict[str, Any] = {
            "update_type": "bot_started",
            "timestamp": now_ms(),
            "chat_id": 900000000 + user_id,
            "user": self.user(user_id),
            "user_id": user_id,
            "user_locale": "ru",
        }
        if payload is not None:
            update["payload"] = payload
        return update

    @staticmethod
    def contact_attachment(owner_id: int, phone: str, name: str = "Иван Петров") -> dict[str, Any]:
        vcard = f"BEGIN:VCARD\r\nVERSION:3.0\r\nTEL;TYPE=cell:{phone}\r\nFN:{name}\r\nEND:VCARD\r\n"
        return {
            "type": "contact",
            "payload": {
                "vcf_info": vcard,
                "max_info": {
                    "user_id": owner_id,
                    "first_name": name.split()[0],
                    "is_bot": False,
                    "last_activity_time": now_ms(),
                },
                "hash": secrets.token_hex(8),
            },
        }

    @staticmethod
    def image_attachment() -> dict[str, Any]:
        return {
            "type": "image",
            "payload": {
                "photo_id": 4242,
                "token": secrets.token_hex(8),
                "url": "https://i.oneme.ru/i?r=photo4242",
            },
        }

    @staticmethod
    def sticker_attachment() -> dict[str, Any]:
        return {
            "type": "sticker",
            "payload": {"url": "https://i.oneme.ru/s?r=st777", "code": "st777"},
            "width": 256,
            "height": 256,
        }

    def deliver_update(
        self,
        url: str,
        update: dict[str, Any] | bytes,
        secret: str | None = None,
        *,
        header: bool = True,
    ) -> httpx.Response:
        """POST an update as MAX does, with ``X-Max-Bot-Api-Secret`` (this fake's secret
        unless ``secret`` is given; ``header=False`` sends none)."""
        headers = {"X-Max-Bot-Api-Secret": secret or self.secret} if header else {}
        return self.deliver(url, update, headers)


def _json_body(request: Recorded) -> Any:
    try:
        return request.json()
    except ValueError:
        return None


def _keyboard_problem(payload: Any) -> str | None:
    """MAX's keyboard rules; the wording of the real errors is not published."""
    if not isinstance(payload, dict) or not isinstance(payload.get("buttons"), list):
        return "inline_keyboard: payload.buttons must be an array of rows"
    rows = payload["buttons"]
    if len(rows) > MAX_ROWS:
        return f"inline_keyboard: at most {MAX_ROWS} rows are allowed"
    total = 0
    for row in rows:
        if not isinstance(row, list) or not row:
            return "inline_keyboard: a row must be a non-empty array"
        wide = any(isinstance(b, dict) and b.get("type") in WIDE_TYPES for b in row)
        limit = MAX_PER_WIDE_ROW if wide else MAX_PER_ROW
        if len(row) > limit:
            return f"inline_keyboard: at most {limit} buttons are allowed in this row"
        total += len(row)
        for button in row:
            if not isinstance(button, dict) or button.get("type") not in BUTTON_TYPES:
                return "inline_keyboard: unknown button type"
            text = button.get("text")
            if not isinstance(text, str) or not 1 <= len(text) <= 128:
                return "inline_keyboard: button text must be 1-128 characters"
            if button["type"] == "callback":
                data = button.get("payload")
                if not isinstance(data, str) or len(data) > 1024:
                    return "inline_keyboard: callback payload must be at most 1024 characters"
            if button["type"] == "link" and len(str(button.get("url", ""))) > 2048:
                return "inline_keyboard: url must be at most 2048 characters"
    if total > MAX_BUTTONS:
        return f"inline_keyboard: at most {MAX_BUTTONS} buttons are allowed"
    return None
