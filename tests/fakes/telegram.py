"""A fake Telegram Bot API: ``POST /bot<token>/<method>``, answered as Telegram does.

Checks what Telegram checks on the calls the product makes (the token in the path,
``chat_id``, text length, ``callback_data`` of 1–64 bytes, known callback query ids)
and answers with Telegram's envelope: ``{"ok": true, "result": …}`` or
``{"ok": false, "error_code": N, "description": …}`` with HTTP status N.

It also plays Telegram's side of the webhook: builders for updates (increasing
``update_id``, message ids counted per chat as Telegram does in private chats) and
``deliver_update``, which posts one with the ``X-Telegram-Bot-Api-Secret-Token`` header.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import httpx

from fakes.base import FakePlatform, FormFile, Recorded, Reply, parse_multipart

TOKEN = "123456789:TEST-token_abc"
SECRET = "tg-webhook-secret_1"
USER_ID = 111222333
BOT = {
    "id": 123456789,
    "is_bot": True,
    "first_name": "ЭнергоСбыт",
    "username": "energo_test_bot",
    "can_join_groups": False,
    "can_read_all_group_messages": False,
    "supports_inline_queries": False,
}
_PATH = re.compile(r"^/bot(?P<token>[^/]*)/(?P<method>[A-Za-z]+)$")
_FILE_PATH = re.compile(r"^/file/bot(?P<token>[^/]*)/(?P<path>.+)$")
# Bot API limits: downloads up to 20 MB, photos up to 10 MB, other files up to 50 MB.
DOWNLOAD_LIMIT = 20 * 1024 * 1024
PHOTO_LIMIT = 10 * 1024 * 1024
DOCUMENT_LIMIT = 50 * 1024 * 1024
_SECRET_TOKEN = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_DEFAULT = object()
_CANT_PARSE = "can't parse inline keyboard button"


def error(code: int, description: str, **parameters: Any) -> Reply:
    """Telegram's error envelope with the HTTP status equal to ``error_code``."""
    body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return Reply(code, body)


def ok(result: Any, description: str | None = None) -> Reply:
    body: dict[str, Any] = {"ok": True, "result": result}
    if description:
        body["description"] = description
    return Reply(200, body)


@dataclass(frozen=True)
class Sent:
    """One message the fake accepted from ``sendMessage``."""

    chat_id: int | str
    text: str
    message_id: int
    keyboard: list[list[tuple[str, str]]]  # rows of (title, callback_data)
    body: dict[str, Any]

    @property
    def payloads(self) -> list[str]:
        return [data for row in self.keyboard for _, data in row]

    @property
    def titles(self) -> list[str]:
        return [title for row in self.keyboard for title, _ in row]


@dataclass(frozen=True)
class SentFile:
    """One file the fake accepted from ``sendPhoto`` / ``sendDocument``."""

    chat_id: int | str
    kind: str  # photo | document
    filename: str | None
    content_type: str | None
    data: bytes
    caption: str | None
    message_id: int


class FakeTelegram(FakePlatform):
    def __init__(self, token: str = TOKEN, secret: str = SECRET) -> None:
        super().__init__()
        self.token = token
        self.secret = secret
        self.webhook: dict[str, Any] = {"url": ""}
        self.pending_update_count = 0
        self.last_error: tuple[int, str] | None = None  # (unix date, message)
        self.blocked: set[int | str] = set()  # chats whose user blocked the bot
        self.accepted: list[Sent] = []
        self.answered: list[dict[str, Any]] = []
        self._update_id = 700_000_000
        self._message_ids: dict[str, int] = {}
        self._callbacks: set[str] = set()
        self._callback_seq = 0
        self.stored_files: dict[str, tuple[str, bytes]] = {}  # file_id -> (file_path, data)
        self.files_sent: list[SentFile] = []
        self._file_seq = 0

    # ------------------------------------------------------------------ the Bot API
    def api(self, request: Recorded) -> Reply:
        download = _FILE_PATH.match(request.path)
        if download is not None:
            return self._download(request, download["token"], download["path"])
        match = _PATH.match(request.path)
        if request.method not in ("POST", "GET") or match is None:
            return error(404, "Not Found")
        if match["token"] != self.token:
            return error(401, "Unauthorized")
        try:
            params = self._params(request)
        except ValueError:
            return error(400, "Bad Request: can't parse JSON object")
        handler = getattr(self, f"_m_{match['method'].lower()}", None)
        if handler is None:
            return error(404, "Not Found")
        reply: Reply = handler(params)
        return reply

    @staticmethod
    def _params(request: Recorded) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.body:
            if request.headers.get("content-type", "").startswith("multipart/form-data"):
                fields, files = parse_multipart(request.headers, request.body)
                params.update(fields)
                params.update(files)
            elif request.headers.get("content-type", "").startswith("application/json"):
                body = json.loads(request.body)
                if not isinstance(body, dict):
                    raise ValueError("not an object")
                params.update(body)
            else:
                params.update(parse_qsl(request.body.decode()))
        return params

    def _m_getme(self, params: dict[str, Any]) -> Reply:
        return ok(BOT)

    def _m_setwebhook(self, params: dict[str, Any]) -> Reply:
        url = str(params.get("url", ""))
        if not url:
            self.webhook = {"url": ""}
            return ok(True, "Webhook was deleted")
        if not url.startswith("https://"):
            return error(400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook")
        secret = params.get("secret_token")
        if secret is not None and not _SECRET_TOKEN.match(str(secret)):
            return error(400, "Bad Request: secret token contains unallowed characters")
        allowed = params.get("allowed_updates", self.webhook.get("allowed_updates"))
        if isinstance(allowed, str):
            allowed = json.loads(allowed)
        self.webhook = {"url": url, "secret_token": secret, "allowed_updates": allowed}
        return ok(True, "Webhook was set")

    def _m_deletewebhook(self, params: dict[str, Any]) -> Reply:
        self.webhook = {"url": ""}
        return ok(True, "Webhook was deleted")

    def _m_getwebhookinfo(self, params: dict[str, Any]) -> Reply:
        info: dict[str, Any] = {
            "url": self.webhook["url"],
            "has_custom_certificate": False,
            "pending_update_count": self.pending_update_count,
        }
        if self.webhook["url"]:
            info["max_connections"] = 40
            if self.webhook.get("allowed_updates") is not None:
                info["allowed_updates"] = self.webhook["allowed_updates"]
        if self.last_error is not None:
            info["last_error_date"], info["last_error_message"] = self.last_error
        return ok(info)

    def _m_sendmessage(self, params: dict[str, Any]) -> Reply:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            return error(400, "Bad Request: chat_id is empty")
        text = params.get("text")
        if not isinstance(text, str) or not text.strip():
            return error(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            return error(400, "Bad Request: message is too long")
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
        keyboard: list[list[tuple[str, str]]] = []
        if markup is not None:
            problem = _check_inline_keyboard(markup)
            if problem:
                return error(400, f"Bad Request: {problem}")
            keyboard = [
                [(b["text"], b.get("callback_data", "")) for b in row]
                for row in markup.get("inline_keyboard", [])
            ]
        if chat_id in self.blocked or str(chat_id) in {str(c) for c in self.blocked}:
            return error(403, "Forbidden: bot was blocked by the user")
        message_id = self._next_message_id(chat_id)
        with self._lock:
            self.accepted.append(Sent(chat_id, text, message_id, keyboard, params))
        result: dict[str, Any] = {
            "message_id": message_id,
            "from": {k: BOT[k] for k in ("id", "is_bot", "first_name", "username")},
            "chat": {"id": chat_id, "type": "private", "first_name": "Иван"},
            "date": int(time.time()),
            "text": text,
        }
        if markup is not None:
            result["reply_markup"] = markup
        return ok(result)

    # ------------------------------------------------------------------ files
    def add_file(self, data: bytes, name: str | None = None, mime: str | None = None) -> str:
        """A file on Telegram's servers (what a customer sent); its ``file_id``."""
        with self._lock:
            self._file_seq += 1
            file_id = f"BQACAgIAAxkBAAI{self._file_seq:04d}"
            folder = "photos" if name is None else "documents"
            path = f"{folder}/file_{self._file_seq}.{(name or 'x.jpg').rsplit('.', 1)[-1]}"
            self.stored_files[file_id] = (path, data)
        return file_id

    def _m_getfile(self, params: dict[str, Any]) -> Reply:
        file_id = str(params.get("file_id", ""))
        with self._lock:
            stored = self.stored_files.get(file_id)
        if stored is None:
            return error(400, "Bad Request: invalid file_id")
        path, data = stored
        result: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": "AgAD" + file_id[-6:],
            "file_size": len(data),
        }
        if len(data) <= DOWNLOAD_LIMIT:  # bigger files get no path: bots cannot download them
            result["file_path"] = path
        return ok(result)

    def _download(self, request: Recorded, token: str, path: str) -> Reply:
        if token != self.token:
            return error(401, "Unauthorized")
        with self._lock:
            found = next((d for p, d in self.stored_files.values() if p == path), None)
        if found is None:
            return error(404, "Not Found: file not found")
        return Reply(200, content=found)

    def _m_sendphoto(self, params: dict[str, Any]) -> Reply:
        return self._send_file("photo", params, PHOTO_LIMIT)

    def _m_senddocument(self, params: dict[str, Any]) -> Reply:
        return self._send_file("document", params, DOCUMENT_LIMIT)

    def _send_file(self, field: str, params: dict[str, Any], limit: int) -> Reply:
        chat_id = params.get("chat_id")
        if chat_id in (None, ""):
            return error(400, "Bad Request: chat_id is empty")
        upload = params.get(field)
        if not isinstance(upload, FormFile):
            # A file_id or URL string would be valid on Telegram; the product uploads.
            return error(400, f"Bad Request: there is no {field} in the request")
        if len(upload.data) > limit:
            return error(413, "Request Entity Too Large")
        if field == "photo" and not upload.data.startswith((b"\xff\xd8\xff", b"\x89PNG", b"RIFF")):
            return error(400, "Bad Request: IMAGE_PROCESS_FAILED")
        caption = params.get("caption")
        if isinstance(caption, str) and len(caption) > 1024:
            return error(400, "Bad Request: message caption is too long")
        if str(chat_id) in {str(c) for c in self.blocked}:
            return error(403, "Forbidden: bot was blocked by the user")
        markup = params.get("reply_markup")
        if isinstance(markup, str):
            markup = json.loads(markup)
            problem = _check_inline_keyboard(markup)
            if problem:
                return error(400, f"Bad Request: {problem}")
        message_id = self._next_message_id(chat_id)
        sent = SentFile(
            chat_id, field, upload.filename, upload.content_type, upload.data, caption, message_id
        )
        with self._lock:
            self.files_sent.append(sent)
        result: dict[str, Any] = {
            "message_id": message_id,
            "chat": {"id": chat_id, "type": "private"},
            "date": int(time.time()),
        }
        if field == "photo":
            result["photo"] = [{"file_id": f"AgAC{message_id}", "width": 1280, "height": 960}]
        else:
            result["document"] = {"file_id": f"BQAC{message_id}", "file_name": upload.filename}
        if caption:
            result["caption"] = caption
        return ok(result)

    def _m_answercallbackquery(self, params: dict[str, Any]) -> Reply:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callbacks:
            return error(
                400,
                "Bad Request: query is too old and response timeout expired or query ID is invalid",
            )
        if len(str(params.get("text", ""))) > 200:
            return error(400, "Bad Request: MESSAGE_TOO_LONG")
        with self._lock:
            self._callbacks.discard(query_id)
            self.answered.append(params)
        return ok(True)

    def _m_editmessagereplymarkup(self, params: dict[str, Any]) -> Reply:
        if params.get("chat_id") in (None, "") or not params.get("message_id"):
            return error(400, "Bad Request: message to edit not found")
        return ok(True)

    # ------------------------------------------------------------------ assertions
    @property
    def sent(self) -> list[Sent]:
        """Messages accepted by ``sendMessage`` (faulted attempts are not here)."""
        with self._lock:
            return list(self.accepted)

    def wait_sent(self, count: int = 1, timeout: float = 10.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while len(self.sent) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} sent messages, got {len(self.sent)}")
            time.sleep(0.02)
        return self.sent

    # ------------------------------------------------------------------ updates
    def _next_message_id(self, chat_id: Any) -> int:
        with self._lock:
            key = str(chat_id)
            self._message_ids[key] = self._message_ids.get(key, 0) + 1
            return self._message_ids[key]

    def update(self, **payload: Any) -> dict[str, Any]:
        """``{"update_id": <next>, **payload}``."""
        with self._lock:
            self._update_id += 1
            return {"update_id": self._update_id, **payload}

    @staticmethod
    def user(
        user_id: int = USER_ID, first_name: str = "Иван", last_name: str | None = "Петров"
    ) -> dict[str, Any]:
        user: dict[str, Any] = {
            "id": user_id,
            "is_bot": False,
            "first_name": first_name,
            "username": "ivan_p",
            "language_code": "ru",
        }
        if last_name:
            user["last_name"] = last_name
        return user

    def message(
        self, chat_id: int = USER_ID, *, sender: dict[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        """A ``message`` update from a private chat with ``fields`` (text, photo …)."""
        sender = sender or self.user(chat_id)
        chat = {"id": chat_id, "type": "private", "first_name": sender.get("first_name")}
        chat.update(fields.pop("chat", {}))
        message = {
            "message_id": self._next_message_id(chat_id),
            "from": sender,
            "chat": chat,
            "date": int(time.time()),
            **fields,
        }
        return self.update(message=message)

    def text_update(self, text: str, chat_id: int = USER_ID, **kw: Any) -> dict[str, Any]:
        return self.message(chat_id, text=text, **kw)

    def contact_update(
        self, phone: str, chat_id: int = USER_ID, *, user_id: int | None = None
    ) -> dict[str, Any]:
        """A shared contact; ``user_id`` defaults to the sender's own (their own number)."""
        contact = {
            "phone_number": phone,
            "first_name": "Иван",
            "last_name": "Петров",
            "user_id": chat_id if user_id is None else user_id,
        }
        return self.message(chat_id, contact=contact)

    def photo_update(
        self, chat_id: int = USER_ID, caption: str | None = None, data: bytes | None = None
    ) -> dict[str, Any]:
        """A photo in three sizes; with ``data`` the largest is a real file to fetch."""
        sizes = [
            {"file_id": f"AgACAgIAAx{n}", "file_unique_id": f"AQAD{n}", "width": w, "height": w}
            for n, w in enumerate((90, 320, 1280))
        ]
        if data is not None:
            sizes[-1]["file_id"] = self.add_file(data)
            sizes[-1]["file_size"] = len(data)
        extra: dict[str, Any] = {"caption": caption} if caption else {}
        return self.message(chat_id, photo=sizes, **extra)

    def document_update(
        self, data: bytes, name: str, mime: str, chat_id: int = USER_ID
    ) -> dict[str, Any]:
        """A file sent "as a document" (a PDF receipt, an uncompressed photo)."""
        document = {
            "file_id": self.add_file(data, name, mime),
            "file_unique_id": "AgADdoc",
            "file_name": name,
            "mime_type": mime,
            "file_size": len(data),
        }
        return self.message(chat_id, document=document)

    def sticker_update(self, chat_id: int = USER_ID, emoji: str = "👍") -> dict[str, Any]:
        sticker = {
            "file_id": "CAACAgIAAxkBAAE",
            "file_unique_id": "AgADxyz",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
            "emoji": emoji,
        }
        return self.message(chat_id, sticker=sticker)

    def button_update(
        self, data: str, chat_id: int = USER_ID, *, sender: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """A press on an inline button: under the last message sent to the chat that
        has a button with this ``callback_data`` (as a customer would press it)."""
        origin: dict[str, Any] | None = None
        for sent in reversed(self.sent):
            if str(sent.chat_id) == str(chat_id) and data in sent.payloads:
                origin = {
                    "message_id": sent.message_id,
                    "from": {k: BOT[k] for k in ("id", "is_bot", "first_name", "username")},
                    "chat": {"id": chat_id, "type": "private"},
                    "date": int(time.time()),
                    "text": sent.text,
                    "reply_markup": sent.body["reply_markup"],
                }
                break
        if origin is None:
            origin = {
                "message_id": self._next_message_id(chat_id),
                "chat": {"id": chat_id, "type": "private"},
                "date": int(time.time()),
                "text": "Выберите",
            }
        with self._lock:
            self._callback_seq += 1
            query_id = f"43820{self._callback_seq:04d}bfdwdsb323b2d9"
            self._callbacks.add(query_id)
        query = {
            "id": query_id,
            "chat_instance": "-8123456789",
            "from": sender or self.user(chat_id),
            "message": origin,
            "data": data,
        }
        return self.update(callback_query=query)

    # ------------------------------------------------------------------ webhook side
    def deliver_update(
        self, url: str, update: dict[str, Any] | bytes, secret: Any = _DEFAULT
    ) -> httpx.Response:
        """POST an update as Telegram does: the secret header when one is set
        (``secret=None`` leaves it out; another string forges it)."""
        value = self.secret if secret is _DEFAULT else secret
        headers = {"X-Telegram-Bot-Api-Secret-Token": value} if value is not None else {}
        return self.deliver(url, update, headers)


def _check_inline_keyboard(markup: Any) -> str | None:
    """Telegram's own complaint about an inline keyboard, or None when it is valid."""
    if not isinstance(markup, dict):
        return "can't parse reply keyboard markup JSON object"
    if "inline_keyboard" not in markup:
        return None  # reply keyboard / remove_keyboard: not checked here
    rows = markup["inline_keyboard"]
    if not isinstance(rows, list) or not all(isinstance(r, list) for r in rows):
        return 'field "inline_keyboard" of the InlineKeyboardMarkup must be an Array of Arrays'
    for row in rows:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                return f"{_CANT_PARSE}: Text buttons are unallowed in the inline keyboard"
            actions = [k for k in ("callback_data", "url", "web_app", "copy_text") if k in button]
            if len(actions) != 1:
                return f"{_CANT_PARSE}: exactly one of the optional fields must be used"
            if "callback_data" in button:
                size = len(str(button["callback_data"]).encode())
                if not 1 <= size <= 64:
                    return "BUTTON_DATA_INVALID"
    return None
