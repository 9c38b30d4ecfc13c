"""A fake VK API (``/method/<name>``) and the Callback API's side of the webhook.

Answers as VK does: always HTTP 200, failures as ``{"error": {"error_code", "error_msg",
"request_params"}}``. Checks what VK checks on the calls the product makes: the token
(``access_token`` or ``Authorization: Bearer``), ``v``, ``random_id`` on sends (and
dedupes on it, returning the first message's id), text length, and the keyboard JSON
string against VK's limits (error 911).
"""

from __future__ import annotations

import itertools
import json
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

import httpx

from fakes.base import FakePlatform, Recorded, Reply, parse_multipart

GROUP_ID = 229000000
TOKEN = "vk1.a.community-token"
SECRET = "S3cr3t_key"
CONFIRMATION = "a1b2c3d4"

TEXT_LIMIT = 9000
LABEL_LIMIT = 40
PAYLOAD_LIMIT = 255
BUTTON_TYPES = {"text", "callback", "open_link", "location", "vkpay", "open_app"}


def vk_error(code: int, message: str, params: dict[str, str] | None = None) -> Reply:
    shown = [{"key": k, "value": v} for k, v in (params or {}).items() if k != "access_token"]
    return Reply(
        200, {"error": {"error_code": code, "error_msg": message, "request_params": shown}}
    )


class FakeVk(FakePlatform):
    def __init__(
        self,
        *,
        token: str = TOKEN,
        secret: str = SECRET,
        group_id: int = GROUP_ID,
        confirmation: str = CONFIRMATION,
        group_name: str = "ЭнергоСбыт Тест",
    ) -> None:
        super().__init__()
        self.token = token
        self.secret = secret
        self.group_id = group_id
        self.confirmation = confirmation
        self.group_name = group_name
        # user id → (first name, last name); unknown users get a made-up name.
        self.users: dict[int, tuple[str, str]] = {}
        # Users who never allowed the community to write (→ 901).
        self.denied: set[int] = set()
        self._message_ids = itertools.count(5000)
        self._event_ids = itertools.count(1)
        self._incoming_ids = itertools.count(100)
        self._by_random_id: dict[int, int] = {}
        self._sent: list[dict[str, Any]] = []
        self._state = threading.Lock()
        # Customers' files on VK's CDN; upload slots (id → photo|doc); saved photos and
        # documents by attachment string ("photo-229000000_457239017_key" → bytes).
        self.hosted: dict[str, bytes] = {}
        self._slots: dict[str, str] = {}
        self._pending: dict[str, tuple[str, bytes]] = {}
        self.saved: dict[str, tuple[str, bytes]] = {}
        self._media_ids = itertools.count(457239017)

    # ------------------------------------------------------------------ API side
    def api(self, request: Recorded) -> Reply:
        if request.method == "GET" and request.path.startswith("/cdn/"):
            hosted = self.hosted.get(request.path.removeprefix("/cdn/"))
            if hosted is None:
                return Reply(404, text="Not Found")
            return Reply(200, content=hosted)
        if request.method == "POST" and request.path.startswith("/upload/"):
            return self._upload(request)
        if not request.path.startswith("/method/"):
            return Reply(404, text="Not Found")
        method = request.path.removeprefix("/method/")
        params = self.params(request)
        bearer = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = params.get("access_token") or bearer
        if token != self.token:
            return vk_error(5, "User authorization failed: invalid access_token (4).", params)
        if not params.get("v"):
            return vk_error(8, "Invalid request: v (version) is required", params)
        handler = getattr(self, "m_" + method.replace(".", "_"), None)
        if handler is None:
            return vk_error(3, "Unknown method passed", params)
        reply: Reply = handler(params)
        return reply

    @staticmethod
    def params(request: Recorded) -> dict[str, str]:
        """Query and form parameters together, as VK reads them."""
        values = dict(request.query)
        if request.body:
            values.update(parse_qsl(request.body.decode(), keep_blank_values=True))
        return values

    def m_messages_send(self, p: dict[str, str]) -> Reply:
        peer = p.get("peer_id") or p.get("user_id")
        if not peer or not peer.lstrip("-").isdigit():
            return vk_error(
                100, "One of the parameters specified was missing or invalid: peer_id", p
            )
        if "random_id" not in p or not p["random_id"].lstrip("-").isdigit():
            return vk_error(
                100, "One of the parameters specified was missing or invalid: random_id", p
            )
        rid = int(p["random_id"])
        if not -(2**31) <= rid < 2**31:
            return vk_error(
                100, "One of the parameters specified was missing or invalid: random_id", p
            )
        text = p.get("message", "")
        if not text and not p.get("attachment"):
            return vk_error(
                100, "One of the parameters specified was missing or invalid: message", p
            )
        if len(text) > TEXT_LIMIT:
            return vk_error(914, "Message is too long", p)
        keyboard = None
        if "keyboard" in p:
            keyboard, problem = check_keyboard(p["keyboard"])
            if problem:
                return vk_error(911, f"Keyboard format is invalid: {problem}", p)
        if int(peer) in self.denied:
            return vk_error(901, "Can't send messages for users without permission", p)
        with self._state:
            if rid and rid in self._by_random_id:  # VK: the same random_id is sent once
                return Reply(200, {"response": self._by_random_id[rid]})
            message_id = next(self._message_ids)
            if rid:
                self._by_random_id[rid] = message_id
            attachment = p.get("attachment") or None
            if attachment is not None and attachment not in self.saved:
                return vk_error(
                    100, "One of the parameters specified was missing or invalid: attachment", p
                )
            self._sent.append(
                {
                    "id": message_id,
                    "peer_id": int(peer),
                    "message": text,
                    "random_id": rid,
                    "keyboard": keyboard,
                    "attachment": attachment,
                }
            )
        return Reply(200, {"response": message_id})

    # ------------------------------------------------------------------ uploads
    def _slot(self, kind: str, p: dict[str, str]) -> Reply:
        if not p.get("peer_id"):
            return vk_error(
                100, "One of the parameters specified was missing or invalid: peer_id", p
            )
        slot = f"{kind}{next(self._media_ids)}"
        with self._state:
            self._slots[slot] = kind
        body: dict[str, Any] = {"upload_url": f"{self.url}/upload/{slot}"}
        if kind == "photo":
            body.update(album_id=-64, group_id=self.group_id)
        return Reply(200, {"response": body})

    def m_photos_getMessagesUploadServer(self, p: dict[str, str]) -> Reply:
        return self._slot("photo", p)

    def m_docs_getMessagesUploadServer(self, p: dict[str, str]) -> Reply:
        if p.get("type", "doc") != "doc":
            return vk_error(100, "One of the parameters specified was missing or invalid: type", p)
        return self._slot("doc", p)

    def _upload(self, request: Recorded) -> Reply:
        """The upload server: multipart ``photo`` or ``file``; answers what the save
        method then takes (as VK does, with an error field rather than a status)."""
        slot = request.path.removeprefix("/upload/")
        with self._state:
            kind = self._slots.pop(slot, None)
        if kind is None:
            return Reply(200, {"error": "invalid upload url"})
        try:
            _, files = parse_multipart(request.headers, request.body)
        except ValueError:
            return Reply(200, {"error": "multipart/form-data expected"})
        field = "photo" if kind == "photo" else "file"
        upload = files.get(field)
        if upload is None:
            return Reply(200, {"error": f"no {field} field"})
        key = secrets.token_hex(8)
        with self._state:
            self._pending[key] = (upload.filename or "", upload.data)
        if kind == "photo":
            if not upload.data.startswith((b"\xff\xd8\xff", b"\x89PNG")):
                return Reply(200, {"server": 1, "photo": "[]", "hash": key})
            return Reply(200, {"server": 845117, "photo": f'[{{"photo":"{key}"}}]', "hash": key})
        return Reply(200, {"file": key})

    def m_photos_saveMessagesPhoto(self, p: dict[str, str]) -> Reply:
        key = p.get("hash", "")
        with self._state:
            pending = self._pending.pop(key, None)
        if pending is None or p.get("photo") in (None, "", "[]"):
            return vk_error(
                100, "One of the parameters specified was missing or invalid: photo is undefined", p
            )
        photo_id, access_key = next(self._media_ids), secrets.token_hex(9)
        with self._state:
            self.saved[f"photo-{self.group_id}_{photo_id}_{access_key}"] = pending
        return Reply(
            200,
            {"response": [{"id": photo_id, "owner_id": -self.group_id, "access_key": access_key}]},
        )

    def m_docs_save(self, p: dict[str, str]) -> Reply:
        with self._state:
            pending = self._pending.pop(p.get("file", ""), None)
        if pending is None:
            return vk_error(100, "One of the parameters specified was missing or invalid: file", p)
        doc_id = next(self._media_ids)
        title = p.get("title") or pending[0]
        with self._state:
            self.saved[f"doc-{self.group_id}_{doc_id}"] = (title, pending[1])
        doc = {"id": doc_id, "owner_id": -self.group_id, "title": title, "size": len(pending[1])}
        return Reply(200, {"response": {"type": "doc", "doc": doc}})

    def photo_attachment(self, data: bytes) -> dict[str, Any]:
        """A customer's photo in VK's sizes; the largest is the real file."""
        name = f"p{len(self.hosted) + 1}.jpg"
        self.hosted[name] = data
        sizes = [
            {"type": "s", "url": f"{self.url}/cdn/small-{name}", "width": 75, "height": 56},
            {"type": "x", "url": f"{self.url}/cdn/{name}", "width": 604, "height": 453},
        ]
        return {"type": "photo", "photo": {"id": 1, "owner_id": 510000001, "sizes": sizes}}

    def doc_attachment(self, data: bytes, title: str, ext: str) -> dict[str, Any]:
        name = f"d{len(self.hosted) + 1}.{ext}"
        self.hosted[name] = data
        doc = {
            "id": 2,
            "owner_id": 510000001,
            "title": title,
            "size": len(data),
            "ext": ext,
            "url": f"{self.url}/cdn/{name}",
            "type": 1,
        }
        return {"type": "doc", "doc": doc}

    def m_messages_sendMessageEventAnswer(self, p: dict[str, str]) -> Reply:
        for key in ("event_id", "user_id", "peer_id"):
            if not p.get(key):
                return vk_error(
                    100, f"One of the parameters specified was missing or invalid: {key}", p
                )
        if "event_data" in p:
            try:
                json.loads(p["event_data"])
            except ValueError:
                return vk_error(100, "One of the parameters specified was missing or invalid", p)
        return Reply(200, {"response": 1})

    def m_users_get(self, p: dict[str, str]) -> Reply:
        result = []
        for raw in p.get("user_ids", "").split(","):
            if raw.strip().isdigit():
                uid = int(raw)
                first, last = self.users.get(uid, ("Иван", "Петров"))
                result.append(
                    {
                        "id": uid,
                        "first_name": first,
                        "last_name": last,
                        "can_access_closed": True,
                        "is_closed": False,
                    }
                )
        return Reply(200, {"response": result})

    def m_groups_getById(self, p: dict[str, str]) -> Reply:
        if p.get("group_id", str(self.group_id)) != str(self.group_id):
            return vk_error(100, "One of the parameters specified was missing or invalid", p)
        group = {
            "id": self.group_id,
            "name": self.group_name,
            "screen_name": f"club{self.group_id}",
            "is_closed": 0,
            "type": "group",
        }
        return Reply(200, {"response": {"groups": [group], "profiles": []}})

    def m_groups_getCallbackConfirmationCode(self, p: dict[str, str]) -> Reply:
        if p.get("group_id") != str(self.group_id):
            return vk_error(15, "Access denied: no access to call this method", p)
        return Reply(200, {"response": {"code": self.confirmation}})

    # ------------------------------------------------------------------ assertions
    @property
    def sent(self) -> list[dict[str, Any]]:
        """Messages VK accepted (a repeated random_id is not a new message), oldest first;
        ``keyboard`` is the parsed keyboard or None."""
        with self._state:
            return list(self._sent)

    def send_calls(self) -> list[dict[str, str]]:
        return [self.params(r) for r in self.calls("/method/messages.send")]

    # ------------------------------------------------------------------ callback side
    def envelope(
        self,
        kind: str,
        obj: dict[str, Any],
        *,
        secret: str | None = None,
        group_id: int | None = None,
        event_id: str | None = None,
    ) -> dict[str, Any]:
        """A Callback API event with the next event id and the community's secret."""
        return {
            "group_id": self.group_id if group_id is None else group_id,
            "type": kind,
            "event_id": event_id or f"{next(self._event_ids):040x}",
            "v": "5.199",
            "object": obj,
            "secret": self.secret if secret is None else secret,
        }

    def message_new(
        self,
        peer_id: int,
        text: str = "",
        *,
        payload: str | None = None,
        attachments: list[dict[str, Any]] | None = None,
        inline_keyboard: bool = True,
        **envelope: Any,
    ) -> dict[str, Any]:
        number = next(self._incoming_ids)
        message: dict[str, Any] = {
            "id": number,
            "date": int(time.time()),
            "peer_id": peer_id,
            "from_id": peer_id,
            "out": 0,
            "text": text,
            "conversation_message_id": number,
            "random_id": 0,
            "attachments": attachments or [],
            "fwd_messages": [],
            "important": False,
            "is_hidden": False,
        }
        if payload is not None:
            message["payload"] = payload
        client_info = {
            "button_actions": ["text", "vkpay", "open_app", "location", "open_link", "callback"],
            "keyboard": True,
            "inline_keyboard": inline_keyboard,
            "carousel": True,
            "lang_id": 0,
        }
        return self.envelope(
            "message_new", {"message": message, "client_info": client_info}, **envelope
        )

    def press(self, peer_id: int, button: dict[str, Any], **envelope: Any) -> dict[str, Any]:
        """What VK sends when the customer taps ``button`` (a cell of a sent keyboard)."""
        action = button["action"]
        if action["type"] == "callback":
            return self.message_event(peer_id, json.loads(action["payload"]), **envelope)
        return self.message_new(peer_id, action["label"], payload=action.get("payload"), **envelope)

    def message_event(
        self, peer_id: int, payload: dict[str, Any], **envelope: Any
    ) -> dict[str, Any]:
        obj = {
            "user_id": peer_id,
            "peer_id": peer_id,
            "event_id": f"{next(self._event_ids):012x}",
            "payload": payload,
            "conversation_message_id": next(self._incoming_ids),
        }
        return self.envelope("message_event", obj, **envelope)

    def confirmation_request(self, group_id: int | None = None) -> dict[str, Any]:
        return {"type": "confirmation", "group_id": self.group_id if group_id is None else group_id}

    def send_event(
        self, url: str, event: dict[str, Any] | bytes, *, retry: int | None = None
    ) -> httpx.Response:
        """POST an event as VK does; ``retry`` adds ``X-Retry-Counter`` (a redelivery)."""
        headers = {"X-Retry-Counter": str(retry)} if retry else {}
        return self.deliver(url, event, headers)


def check_keyboard(raw: str) -> tuple[dict[str, Any] | None, str | None]:
    """The keyboard parsed, or the reason VK would give error 911."""
    try:
        keyboard = json.loads(raw)
    except ValueError:
        return None, "not JSON"
    if not isinstance(keyboard, dict) or not isinstance(keyboard.get("buttons"), list):
        return None, "buttons is required"
    rows = keyboard["buttons"]
    inline = bool(keyboard.get("inline"))
    max_rows, max_total = (6, 10) if inline else (10, 40)
    if len(rows) > max_rows:
        return None, f"too many rows ({len(rows)} > {max_rows})"
    total = 0
    for row in rows:
        if not isinstance(row, list):
            return None, "a row must be an array"
        if len(row) > 5:
            return None, "too many buttons in a row"
        for cell in row:
            total += 1
            action = cell.get("action") if isinstance(cell, dict) else None
            if not isinstance(action, dict) or action.get("type") not in BUTTON_TYPES:
                return None, "action.type is invalid"
            if action["type"] in ("text", "callback", "open_link", "open_app"):
                label = action.get("label")
                if not isinstance(label, str) or not label:
                    return None, "action.label is required"
                if len(label) > LABEL_LIMIT:
                    return None, f"action.label is too long ({len(label)} > {LABEL_LIMIT})"
            if "payload" in action:
                payload = action["payload"]
                if not isinstance(payload, str) or len(payload) > PAYLOAD_LIMIT:
                    return None, "action.payload is too long or not a string"
                try:
                    json.loads(payload)
                except ValueError:
                    return None, "action.payload is not JSON"
    if total > max_total:
        return None, f"too many buttons ({total} > {max_total})"
    return keyboard, None
