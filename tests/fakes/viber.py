"""A fake Viber REST Bot API (``POST /pa/<endpoint>``) and Viber's side of the webhook.

Answers as Viber does: always HTTP 200, the outcome in ``status``/``status_message``.
It keeps what the real service keeps and the product depends on: who has subscribed
(``send_message`` to anyone else is status 6), the webhook (``set_webhook`` calls the
URL with a signed ``webhook`` event and fails unless it answers 200), and the
``tracking_data`` of the last message each customer got, which Viber echoes on the
customer's next message — that is how a keyboard press is told from typed text.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from typing import Any

import httpx

from fakes.base import FakePlatform, Recorded, Reply

TEXT_LIMIT = 7000
SENDER_NAME_LIMIT = 28
TRACKING_LIMIT = 4000
REQUEST_LIMIT = 30 * 1024
BUTTON_TEXT_LIMIT = 250
KEYBOARD_ROWS = 12
UNANSWERED_LIMIT = 100  # messages to one user an hour without a reply
ACTION_TYPES = {"reply", "open-url", "location-picker", "share-phone", "none"}
ALL_EVENTS = ["delivered", "seen", "failed", "subscribed", "unsubscribed", "conversation_started"]


def ok(**extra: Any) -> Reply:
    return Reply(200, {"status": 0, "status_message": "ok", **extra})


def error(status: int, message: str) -> Reply:
    return Reply(200, {"status": status, "status_message": message})


class FakeViber(FakePlatform):
    def __init__(self, token: str = "viber-test-token", name: str = "ЭнергоСбыт") -> None:
        super().__init__()
        self.token = token
        self.account_name = name
        self.uri = "energosbyt_test"
        self.webhook: str | None = None
        self.event_types: list[str] = []
        # The product's public address → where it really listens (the handshake calls it).
        self.routes: dict[str, str] = {}
        self.subscribed: set[str] = set()
        self.last_tracking: dict[str, str] = {}
        self.unanswered: dict[str, int] = {}
        self._sent: list[dict[str, Any]] = []
        self._tokens = itertools.count(5890000000000000001)
        # Customers' media on Viber's CDN (name → bytes), and what Viber downloaded of
        # the product's files (media URL → bytes).
        self.hosted: dict[str, bytes] = {}
        self.downloaded: dict[str, bytes] = {}
        self._state = threading.Lock()

    # ------------------------------------------------------------------ the API
    def api(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.startswith("/media/"):
            hosted = self.hosted.get(request.path[len("/media/") :])
            if hosted is None:
                return Reply(404, text="Not Found")
            return Reply(200, content=hosted, media_type="application/octet-stream")
        if request.method != "POST" or not request.path.startswith("/pa/"):
            return Reply(404, text="Not Found")
        endpoint = request.path[len("/pa/") :]
        try:
            body = json.loads(request.body) if request.body else {}
        except ValueError:
            return error(3, "badData")
        if not isinstance(body, dict):
            return error(3, "badData")
        token = request.headers.get("x-viber-auth-token") or body.get("auth_token")
        if not token:
            return error(2, "missing_auth_token")
        if token != self.token:
            return error(2, "invalidAuthToken")
        if len(request.body) > REQUEST_LIMIT:
            return error(3, "badData: request is larger than 30 KB")
        handler = {
            "set_webhook": self._set_webhook,
            "send_message": self._send_message,
            "get_account_info": self._account_info,
        }.get(endpoint)
        if handler is None:
            return Reply(404, text="Not Found")
        return handler(body)

    def _set_webhook(self, body: dict[str, Any]) -> Reply:
        url = body.get("url")
        if not isinstance(url, str):
            return error(4, "missingData: url")
        if url == "":
            self.webhook = None
            return ok()
        if not url.startswith("https://"):
            return error(1, "invalidUrl")
        event_types = body.get("event_types")
        types = list(event_types) if isinstance(event_types, list) else list(ALL_EVENTS)
        # Viber checks the URL before it accepts it: a signed ``webhook`` callback.
        callback = {
            "event": "webhook",
            "timestamp": _now_ms(),
            "chat_hostname": "SN-CALLBACK-05_",
            "message_token": next(self._tokens),
        }
        try:
            answer = self.deliver_event(self._reachable(url), callback)
        except httpx.HTTPError:
            return error(1, "invalidUrl")
        if answer.status_code != 200:
            return error(1, "invalidUrl")
        self.webhook = url
        self.event_types = types
        return ok(event_types=types)

    def _send_message(self, body: dict[str, Any]) -> Reply:
        receiver = body.get("receiver")
        if not isinstance(receiver, str) or not receiver:
            return error(4, "missingData: receiver")
        kind = body.get("type")
        if kind in ("picture", "file"):
            problem = self._media_problem(kind, body)
            if problem:
                return error(3, f"badData: {problem}")
        elif kind != "text":
            return error(3, "badData: type")
        text = body.get("text")
        if kind == "text" and (not isinstance(text, str) or not text):
            return error(4, "missingData: text")
        if isinstance(text, str) and len(text) > (TEXT_LIMIT if kind == "text" else 768):
            return error(3, "badData: text is too long")
        sender = body.get("sender")
        if not isinstance(sender, dict) or not isinstance(sender.get("name"), str):
            return error(4, "missingData: sender.name")
        if not sender["name"] or len(sender["name"]) > SENDER_NAME_LIMIT:
            return error(3, "badData: sender.name")
        tracking = body.get("tracking_data", "")
        if not isinstance(tracking, str) or len(tracking) > TRACKING_LIMIT:
            return error(3, "badData: tracking_data")
        if "keyboard" in body:
            problem = _keyboard_problem(body["keyboard"])
            if problem:
                return error(3, f"badData: keyboard is not valid. {problem}")
        with self._state:
            if receiver not in self.subscribed:
                return error(6, "notSubscribed")
            if self.unanswered.get(receiver, 0) >= UNANSWERED_LIMIT:
                return error(12, "Too many requests")
            self.unanswered[receiver] = self.unanswered.get(receiver, 0) + 1
            self.last_tracking[receiver] = tracking
            self._sent.append(body)
        return ok(message_token=next(self._tokens), chat_hostname="SN-CHAT-05_", billing_status=1)

    def _media_problem(self, kind: str, body: dict[str, Any]) -> str | None:
        """Viber fetches the media itself: a URL it cannot download fails the send."""
        media = body.get("media")
        if not isinstance(media, str) or not media.startswith("https://"):
            return "media must be an https URL"
        if kind == "file":
            name, size = body.get("file_name"), body.get("size")
            if not isinstance(name, str) or not name or len(name) > 256:
                return "file_name"
            if not isinstance(size, int) or size <= 0:
                return "size"
        try:
            got = httpx.get(self._reachable(media), timeout=10)
        except httpx.HTTPError:
            return "media cannot be downloaded"
        if got.status_code != 200:
            return f"media cannot be downloaded (HTTP {got.status_code})"
        if kind == "picture" and not got.content.startswith((b"\xff\xd8\xff", b"\x89PNG")):
            return "picture must be JPEG or PNG"
        if kind == "file" and body["size"] != len(got.content):
            return "size does not match the file"
        with self._state:
            self.downloaded[media] = got.content
        return None

    def picture_update(self, user_id: str, data: bytes, caption: str = "") -> dict[str, Any]:
        """A photo from a customer: a URL on Viber's CDN with a thumbnail."""
        name = f"{len(self.hosted) + 1}.jpg"
        self.hosted[name] = data
        media = f"{self.url}/media/{name}"
        message = {
            "type": "picture",
            "text": caption,
            "media": media,
            "thumbnail": media,
            "file_name": f"IMG_{name}",
            "size": len(data),
        }
        return self.message_event(user_id, message)

    def file_update(self, user_id: str, data: bytes, file_name: str) -> dict[str, Any]:
        key = f"{len(self.hosted) + 1}-{file_name}"
        self.hosted[key] = data
        message = {
            "type": "file",
            "media": f"{self.url}/media/{key}",
            "file_name": file_name,
            "size": len(data),
        }
        return self.message_event(user_id, message)

    def _account_info(self, body: dict[str, Any]) -> Reply:
        return ok(
            id="pa:5000000000000000001",
            name=self.account_name,
            uri=self.uri,
            icon="https://example.invalid/icon.png",
            category="Utilities",
            country="RU",
            webhook=self.webhook or "",
            event_types=self.event_types,
            subscribers_count=len(self.subscribed),
            members=[{"id": "admin01=", "name": "Admin", "role": "admin"}],
        )

    # ------------------------------------------------------------------ assertions
    @property
    def sent(self) -> list[dict[str, Any]]:
        """Every accepted ``send_message`` body, oldest first."""
        with self._state:
            return list(self._sent)

    def sent_to(self, user_id: str) -> list[dict[str, Any]]:
        return [m for m in self.sent if m["receiver"] == user_id]

    def wait_sent(
        self, user_id: str, count: int = 1, timeout: float = 10.0
    ) -> list[dict[str, Any]]:
        """The messages ``user_id`` got, once there are at least ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(found := self.sent_to(user_id)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} messages to {user_id}, got {len(found)}")
            time.sleep(0.02)
        return found

    # ------------------------------------------------------------------ Viber's side
    def sign(self, body: bytes) -> str:
        return hmac.new(self.token.encode(), body, hashlib.sha256).hexdigest()

    def deliver_event(self, url: str, event: dict[str, Any]) -> httpx.Response:
        """POST a callback signed as Viber signs it (over the exact bytes sent)."""
        raw = json.dumps(event, ensure_ascii=False).encode()
        return self.deliver(url, raw, {"X-Viber-Content-Signature": self.sign(raw)})

    def _reachable(self, url: str) -> str:
        for public, real in self.routes.items():
            if url.startswith(public):
                return real + url[len(public) :]
        return url

    def message_event(
        self,
        user_id: str,
        message: dict[str, Any],
        *,
        name: str = "Иван Петров",
        token: int | None = None,
    ) -> dict[str, Any]:
        """A ``message`` callback; sending it subscribes the user, as in Viber, and it
        carries the tracking_data of the last message the user got."""
        with self._state:
            self.subscribed.add(user_id)
            self.unanswered[user_id] = 0
            tracking = self.last_tracking.get(user_id, "")
        if tracking and "tracking_data" not in message:
            message = {**message, "tracking_data": tracking}
        return {
            "event": "message",
            "timestamp": _now_ms(),
            "chat_hostname": "SN-376_",
            "message_token": token if token is not None else next(self._tokens),
            "sender": {
                "id": user_id,
                "name": name,
                "avatar": "https://example.invalid/avatar.jpg",
                "language": "ru",
                "country": "RU",
                "api_version": 10,
            },
            "message": message,
            "silent": False,
        }

    def text_update(self, user_id: str, text: str, **kw: Any) -> dict[str, Any]:
        return self.message_event(user_id, {"type": "text", "text": text}, **kw)

    def press(self, user_id: str, title: str, **kw: Any) -> dict[str, Any]:
        """The customer taps the reply button titled ``title`` on the keyboard on screen:
        Viber sends its ActionBody as the customer's text."""
        keyboards = [m["keyboard"] for m in self.sent_to(user_id) if "keyboard" in m]
        if not keyboards:
            raise AssertionError(f"no keyboard was sent to {user_id}")
        for button in keyboards[-1]["Buttons"]:
            if button["Text"] == title and button["ActionType"] == "reply":
                return self.message_event(
                    user_id, {"type": "text", "text": button["ActionBody"]}, **kw
                )
        raise AssertionError(f"no button {title!r} on the last keyboard sent to {user_id}")

    def conversation_started(
        self, user_id: str, *, subscribed: bool = False, context: str | None = None
    ) -> dict[str, Any]:
        event: dict[str, Any] = {
            "event": "conversation_started",
            "timestamp": _now_ms(),
            "chat_hostname": "SN-376_",
            "message_token": next(self._tokens),
            "type": "open",
            "user": {"id": user_id, "name": "Иван Петров", "language": "ru", "country": "RU"},
            "subscribed": subscribed,
        }
        if context is not None:
            event["context"] = context
        return event

    def open_chat(
        self, url: str, user_id: str, *, subscribed: bool = False, context: str | None = None
    ) -> httpx.Response:
        """The customer opens the chat; a welcome in the answer is shown to them (and its
        tracking_data echoed on their next message), as Viber does."""
        event = self.conversation_started(user_id, subscribed=subscribed, context=context)
        answer = self.deliver_event(url, event)
        if answer.status_code == 200 and answer.content:
            welcome = answer.json()
            with self._state:
                self.last_tracking[user_id] = str(welcome.get("tracking_data", ""))
        return answer

    def receipt(self, kind: str, user_id: str) -> dict[str, Any]:
        """``delivered``/``seen``/``subscribed``/``unsubscribed``/``failed`` callbacks."""
        event: dict[str, Any] = {
            "event": kind,
            "timestamp": _now_ms(),
            "message_token": next(self._tokens),
        }
        if kind == "subscribed":
            event["user"] = {"id": user_id, "name": "Иван Петров"}
        else:
            event["user_id"] = user_id
        if kind == "failed":
            event["desc"] = "keyboard is not valid"
        return event


def _keyboard_problem(keyboard: Any) -> str | None:
    """What Viber's keyboard validation would reject (None when it is fine)."""
    if not isinstance(keyboard, dict) or keyboard.get("Type") != "keyboard":
        return "Type must be 'keyboard'"
    buttons = keyboard.get("Buttons")
    if not isinstance(buttons, list) or not buttons:
        return "Buttons is required"
    used = 0  # columns used on the current row
    rows = 0
    for b in buttons:
        if not isinstance(b, dict):
            return "a button is not an object"
        columns, height = b.get("Columns", 6), b.get("Rows", 1)
        if not isinstance(columns, int) or not 1 <= columns <= 6:
            return f"Columns {columns!r} not in 1..6"
        if not isinstance(height, int) or not 1 <= height <= 2:
            return f"Rows {height!r} not in 1..2"
        if b.get("ActionType", "reply") not in ACTION_TYPES:
            return f"instance value ({b.get('ActionType')!r}) not found in enum"
        if not isinstance(b.get("ActionBody"), str) or not b["ActionBody"]:
            return "ActionBody is required"
        if not isinstance(b.get("Text", ""), str) or len(b.get("Text", "")) > BUTTON_TEXT_LIMIT:
            return "Text is too long"
        if used == 0 or used + columns > 6:
            rows += height
            used = 0
        used += columns
    if rows > KEYBOARD_ROWS:
        return f"{rows} rows, more than {KEYBOARD_ROWS} (portrait mode)"
    return None


def _now_ms() -> int:
    return int(time.time() * 1000)
