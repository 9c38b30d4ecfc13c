"""A fake WhatsApp Cloud API (Graph ``/{version}/{phone_number_id}/messages``).

It checks what Meta checks — the bearer token, the phone number id, the body's shape,
the interactive limits, the 24-hour window per customer — and answers with Graph's
error object and real HTTP statuses. On the webhook side it builds
``whatsapp_business_account`` events for one or several numbers, signs them with the
app secret (``X-Hub-Signature-256``) and plays the GET verification handshake.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from fakes.base import FakePlatform, Recorded, Reply, parse_multipart

TOKEN = "EAAG-fake-whatsapp-token"
APP_SECRET = "fake-app-secret"
VERIFY_TOKEN = "fake-verify-token"
PHONE_NUMBER_ID = "1122334455667"
SECOND_PHONE_NUMBER_ID = "2233445566778"
CUSTOMER = "79001234567"
CUSTOMER_NAME = "Иван Петров"
WINDOW = 24 * 3600.0

_PATH_RE = re.compile(r"^/(v\d+\.\d+)/([^/]+)(/messages|/media)?/?$")
_DOWNLOAD_RE = re.compile(r"^/whatsapp_business/attachments/(?P<media>[^/]+)$")
# Cloud API media limits: images (JPEG, PNG) up to 5 MB, documents up to 100 MB.
IMAGE_LIMIT = 5 * 1024 * 1024
DOCUMENT_LIMIT = 100 * 1024 * 1024
UPLOAD_TYPES = {
    "image/jpeg": "image",
    "image/png": "image",
    "image/webp": "sticker",
    "application/pdf": "document",
}


@dataclass
class Number:
    """One WhatsApp business number of the fake app."""

    phone_number_id: str
    display_phone_number: str
    verified_name: str
    quality_rating: str = "GREEN"


@dataclass
class Sent:
    """One message the fake accepted, easy to assert on."""

    phone_number_id: str
    to: str
    type: str
    body: dict[str, Any]
    wamid: str
    authorization: str
    at: float = field(default_factory=time.monotonic)

    @property
    def text(self) -> str:
        """The message's visible text: a text body or an interactive body."""
        if self.type == "text":
            return str(self.body["text"]["body"])
        if self.type == "interactive":
            return str(self.body["interactive"]["body"]["text"])
        return ""

    @property
    def interactive_type(self) -> str | None:
        return str(self.body["interactive"]["type"]) if self.type == "interactive" else None

    @property
    def buttons(self) -> list[tuple[str, str]]:
        """(id, title) of reply buttons or list rows, in order."""
        if self.type != "interactive":
            return []
        action = self.body["interactive"]["action"]
        if "buttons" in action:
            return [(b["reply"]["id"], b["reply"]["title"]) for b in action["buttons"]]
        return [(r["id"], r["title"]) for s in action["sections"] for r in s["rows"]]

    @property
    def rows(self) -> list[dict[str, str]]:
        if self.interactive_type != "list":
            return []
        return [r for s in self.body["interactive"]["action"]["sections"] for r in s["rows"]]


def graph_error(
    status: int,
    code: int,
    message: str,
    *,
    subcode: int | None = None,
    details: str | None = None,
    type_: str = "OAuthException",
    headers: dict[str, str] | None = None,
) -> Reply:
    """Graph API's error object, as Meta answers a failed call."""
    error: dict[str, Any] = {
        "message": message,
        "type": type_,
        "code": code,
        "fbtrace_id": "A" + secrets.token_hex(10),
    }
    if subcode is not None:
        error["error_subcode"] = subcode
    if details is not None:
        error["error_data"] = {"messaging_product": "whatsapp", "details": details}
    return Reply(status, {"error": error}, headers=headers or {})


def invalid_parameter(details: str) -> Reply:
    return graph_error(400, 131009, "(#131009) Parameter value is not valid", details=details)


def rate_limited(retry_after: float | None = 1) -> Reply:
    """Throughput exceeded (#130429), answered 429 with ``Retry-After``."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return graph_error(
        429,
        130429,
        "(#130429) Rate limit hit",
        details="Cloud API message throughput has been reached.",
        headers=headers,
    )


def outside_window() -> Reply:
    return graph_error(
        400,
        131047,
        "(#131047) Re-engagement message",
        subcode=2494010,
        details="Message failed to send because more than 24 hours have passed since the "
        "customer last replied to this number.",
    )


class FakeWhatsApp(FakePlatform):
    """``FakeWhatsApp(numbers=[...])``; one app (token, secret) with several numbers."""

    def __init__(
        self,
        *,
        token: str = TOKEN,
        app_secret: str = APP_SECRET,
        numbers: list[Number] | None = None,
        enforce_window: bool = True,
    ) -> None:
        super().__init__()
        self.token = token
        self.app_secret = app_secret
        self.numbers = {
            n.phone_number_id: n
            for n in numbers
            or [
                Number(PHONE_NUMBER_ID, "+7 800 123-45-67", "ЭнергоСбыт Тест"),
                Number(SECOND_PHONE_NUMBER_ID, "+7 800 765-43-21", "ЭнергоСбыт Юг"),
            ]
        }
        self.enforce_window = enforce_window
        # (phone_number_id, customer id) → monotonic time of the customer's last message
        self.last_inbound: dict[tuple[str, str], float] = {}
        self._sent: list[Sent] = []
        self._ids = itertools.count(1)
        # media id → (mime type, bytes): what customers sent and what the product uploaded
        self.media: dict[str, tuple[str, bytes]] = {}
        self.uploads: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ the Graph API
    def api(self, request: Recorded) -> Reply:
        auth = request.headers.get("authorization", "")
        bearer = auth[7:] if auth.startswith("Bearer ") else request.query.get("access_token", "")
        download = _DOWNLOAD_RE.match(request.path)
        if download is not None:
            # The media URL needs the same bearer token; without it Meta answers 401.
            if bearer != self.token:
                return Reply(401, text="Unauthorized")
            found = self.media.get(download["media"])
            if found is None:
                return Reply(404, text="Not Found")
            return Reply(200, content=found[1], media_type=found[0])
        match = _PATH_RE.match(request.path)
        if match is None:
            return graph_error(400, 2500, "Unknown path components: " + request.path)
        _version, object_id, messages = match.groups()
        if bearer != self.token:
            return graph_error(
                401, 190, "Invalid OAuth access token - Cannot parse access token", subcode=None
            )
        number = self.numbers.get(object_id)
        if number is None and request.method == "GET" and object_id in self.media:
            mime, data = self.media[object_id]
            return Reply(
                200,
                {
                    "messaging_product": "whatsapp",
                    "url": f"{self.url}/whatsapp_business/attachments/{object_id}",
                    "mime_type": mime,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "file_size": len(data),
                    "id": object_id,
                },
            )
        if number is None:
            verb = "post" if request.method == "POST" else "get"
            return graph_error(
                400,
                100,
                f"Unsupported {verb} request. Object with ID '{object_id}' does not exist, "
                "cannot be loaded due to missing permissions, or does not support this "
                "operation.",
                subcode=33,
                type_="GraphMethodException",
            )
        if messages == "/media" and request.method == "POST":
            return self._upload(request, number)
        if messages and request.method == "POST":
            return self._send(request, number)
        if not messages and request.method == "GET":
            return self._number(request, number)
        return graph_error(400, 100, f"Unsupported {request.method.lower()} request.")

    def _number(self, request: Recorded, number: Number) -> Reply:
        fields = request.query.get("fields", "display_phone_number,verified_name")
        data: dict[str, Any] = {"id": number.phone_number_id}
        for name in fields.split(","):
            name = name.strip()
            if name in ("display_phone_number", "verified_name", "quality_rating"):
                data[name] = getattr(number, name)
        return Reply(200, data)

    def _upload(self, request: Recorded, number: Number) -> Reply:
        """``POST /{phone_number_id}/media``: multipart with messaging_product, type, file."""
        try:
            fields, files = parse_multipart(request.headers, request.body)
        except ValueError:
            return graph_error(400, 100, "(#100) The request must be multipart/form-data")
        if fields.get("messaging_product") != "whatsapp":
            return graph_error(400, 100, "(#100) The parameter messaging_product is required.")
        upload = files.get("file")
        if upload is None:
            return graph_error(400, 100, "(#100) The parameter file is required.")
        mime = fields.get("type") or upload.content_type or ""
        kind = UPLOAD_TYPES.get(mime)
        if kind is None:
            return graph_error(400, 131053, "(#131053) Media upload error", details=mime)
        limit = DOCUMENT_LIMIT if kind == "document" else IMAGE_LIMIT
        if len(upload.data) > limit:
            return graph_error(400, 131053, "(#131053) Media upload error", details="too large")
        media_id = f"{next(self._ids):016d}"
        self.media[media_id] = (mime, upload.data)
        self.uploads.append(
            {"id": media_id, "mime": mime, "filename": upload.filename, "data": upload.data}
        )
        return Reply(200, {"id": media_id})

    def customer_file(self, data: bytes, mime: str) -> str:
        """A file on Meta's servers that a customer sent; its media id."""
        media_id = f"{next(self._ids) + 900000000000000:016d}"
        self.media[media_id] = (mime, data)
        return media_id

    def media_event(
        self,
        data: bytes,
        mime: str,
        *,
        filename: str | None = None,
        caption: str | None = None,
        wa_id: str = CUSTOMER,
        phone_number_id: str = PHONE_NUMBER_ID,
    ) -> dict[str, Any]:
        """An ``image`` (a photo) or, with ``filename``, a ``document`` from a customer."""
        content: dict[str, Any] = {
            "mime_type": mime,
            "sha256": hashlib.sha256(data).hexdigest(),
            "id": self.customer_file(data, mime),
        }
        if filename is not None:
            content["filename"] = filename
        if caption is not None:
            content["caption"] = caption
        kind = "document" if filename is not None else "image"
        msg = self.message(kind, content, wa_id=wa_id)
        return self.event(self.value(msg, phone_number_id=phone_number_id, wa_id=wa_id))

    def _send(self, request: Recorded, number: Number) -> Reply:
        try:
            body = json.loads(request.body)
        except ValueError:
            return graph_error(400, 100, "(#100) The request body is not valid JSON")
        if not isinstance(body, dict):
            return graph_error(400, 100, "(#100) The request body must be an object")
        if body.get("messaging_product") != "whatsapp":
            return graph_error(
                400,
                100,
                "(#100) The parameter messaging_product is required.",
                type_="OAuthException",
            )
        to = body.get("to") or body.get("recipient")
        if not isinstance(to, str) or not to:
            return graph_error(
                400,
                131008,
                "(#131008) Required parameter is missing",
                details="The parameter to is required.",
            )
        problem = _validate(body)
        if problem is not None:
            return problem
        if self.enforce_window:
            last = self.last_inbound.get((number.phone_number_id, to))
            if last is None or time.monotonic() - last > WINDOW:
                return outside_window()
        wamid = f"wamid.FAKE{next(self._ids):08d}{secrets.token_hex(6).upper()}"
        self._sent.append(
            Sent(
                phone_number_id=number.phone_number_id,
                to=to,
                type=str(body.get("type", "text")),
                body=body,
                wamid=wamid,
                authorization=request.headers.get("authorization", ""),
            )
        )
        contact = {"input": to, "wa_id": to} if to.isdigit() else {"input": to, "user_id": to}
        return Reply(
            200,
            {"messaging_product": "whatsapp", "contacts": [contact], "messages": [{"id": wamid}]},
        )

    # ------------------------------------------------------------------ assertions
    @property
    def sent(self) -> list[Sent]:
        return list(self._sent)

    def sent_to(self, to: str, phone_number_id: str | None = None) -> list[Sent]:
        return [
            s
            for s in self._sent
            if s.to == to and (phone_number_id is None or s.phone_number_id == phone_number_id)
        ]

    def wait_sent(self, count: int = 1, timeout: float = 10.0) -> list[Sent]:
        deadline = time.monotonic() + timeout
        while len(self._sent) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} sent messages, got {len(self._sent)}")
            time.sleep(0.02)
        return self.sent

    def close_window(self, to: str, phone_number_id: str = PHONE_NUMBER_ID) -> None:
        """Pretend the customer last wrote more than 24 hours ago."""
        self.last_inbound[(phone_number_id, to)] = time.monotonic() - WINDOW - 1

    # ------------------------------------------------------------------ webhooks
    def sign(self, raw: bytes, secret: str | None = None) -> str:
        key = (secret if secret is not None else self.app_secret).encode()
        return "sha256=" + hmac.new(key, raw, hashlib.sha256).hexdigest()

    def post_event(
        self, url: str, event: dict[str, Any] | bytes, *, signature: str | None = None
    ) -> httpx.Response:
        """Deliver an event signed as Meta signs it (or with the given ``signature``)."""
        raw = event if isinstance(event, bytes) else json.dumps(event, ensure_ascii=False).encode()
        return self.deliver(
            url,
            raw,
            {"X-Hub-Signature-256": signature if signature is not None else self.sign(raw)},
        )

    @staticmethod
    def verify(url: str, verify_token: str, challenge: str = "1158201444") -> httpx.Response:
        """Meta's GET check of a callback URL."""
        return httpx.get(
            url,
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": verify_token,
                "hub.challenge": challenge,
            },
            timeout=10,
        )

    @staticmethod
    def event(*values: dict[str, Any], waba_id: str = "102290129340398") -> dict[str, Any]:
        """An update carrying the given ``value`` objects, one entry each."""
        return {
            "object": "whatsapp_business_account",
            "entry": [
                {"id": waba_id, "changes": [{"field": "messages", "value": v}]} for v in values
            ],
        }

    def value(
        self,
        *messages: dict[str, Any],
        phone_number_id: str = PHONE_NUMBER_ID,
        wa_id: str | None = CUSTOMER,
        name: str | None = CUSTOMER_NAME,
        user_id: str | None = None,
    ) -> dict[str, Any]:
        """A ``value`` with the sender's contact, ``metadata`` and ``messages``; building it
        opens the sender's 24-hour window on that number."""
        number = self.numbers.get(phone_number_id)
        contact: dict[str, Any] = {}
        if name is not None:
            contact["profile"] = {"name": name}
        if wa_id is not None:
            contact["wa_id"] = wa_id
        if user_id is not None:
            contact["user_id"] = user_id
        sender = wa_id or user_id
        if sender is not None:
            self.last_inbound[(phone_number_id, sender)] = time.monotonic()
        return {
            "messaging_product": "whatsapp",
            "metadata": {
                "display_phone_number": re.sub(
                    r"\D", "", number.display_phone_number if number else "78000000000"
                ),
                "phone_number_id": phone_number_id,
            },
            "contacts": [contact],
            "messages": list(messages),
        }

    def message(
        self,
        type_: str,
        content: Any,
        *,
        wa_id: str | None = CUSTOMER,
        message_id: str | None = None,
        timestamp: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """One ``messages[]`` item of the given type."""
        msg: dict[str, Any] = {
            "id": message_id or f"wamid.IN{next(self._ids):08d}{secrets.token_hex(8).upper()}",
            "timestamp": str(timestamp or int(time.time())),
            "type": type_,
            type_: content,
            **extra,
        }
        if wa_id is not None:
            msg["from"] = wa_id
        return msg

    def text_event(
        self,
        text: str,
        *,
        wa_id: str = CUSTOMER,
        name: str | None = CUSTOMER_NAME,
        phone_number_id: str = PHONE_NUMBER_ID,
        message_id: str | None = None,
    ) -> dict[str, Any]:
        return self.event(
            self.value(
                self.message("text", {"body": text}, wa_id=wa_id, message_id=message_id),
                phone_number_id=phone_number_id,
                wa_id=wa_id,
                name=name,
            )
        )

    def button_reply_event(
        self,
        button_id: str,
        title: str,
        *,
        kind: str = "button_reply",
        description: str | None = None,
        wa_id: str = CUSTOMER,
        phone_number_id: str = PHONE_NUMBER_ID,
        context_id: str | None = None,
    ) -> dict[str, Any]:
        """A press of a reply button (``button_reply``) or a list row (``list_reply``)."""
        reply: dict[str, Any] = {"id": button_id, "title": title}
        if description is not None:
            reply["description"] = description
        extra: dict[str, Any] = {}
        if context_id is not None:
            extra["context"] = {"from": phone_number_id, "id": context_id}
        msg = self.message("interactive", {"type": kind, kind: reply}, wa_id=wa_id, **extra)
        return self.event(self.value(msg, phone_number_id=phone_number_id, wa_id=wa_id))

    def status_event(
        self,
        wamid: str,
        status: str = "delivered",
        *,
        recipient: str = CUSTOMER,
        phone_number_id: str = PHONE_NUMBER_ID,
        errors: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        item: dict[str, Any] = {
            "id": wamid,
            "status": status,
            "timestamp": str(int(time.time())),
            "recipient_id": recipient,
        }
        if errors is not None:
            item["errors"] = errors
        number = self.numbers.get(phone_number_id)
        return self.event(
            {
                "messaging_product": "whatsapp",
                "metadata": {
                    "display_phone_number": re.sub(
                        r"\D", "", number.display_phone_number if number else ""
                    ),
                    "phone_number_id": phone_number_id,
                },
                "statuses": [item],
            }
        )


def _validate(body: dict[str, Any]) -> Reply | None:
    """The Cloud API's checks of a message body (text and interactive)."""
    kind = body.get("type", "text")
    if kind == "text":
        text = body.get("text")
        value = text.get("body") if isinstance(text, dict) else None
        if not isinstance(value, str) or not value:
            return graph_error(
                400,
                131008,
                "(#131008) Required parameter is missing",
                details="text.body is required",
            )
        if len(value) > 4096:
            return graph_error(
                400, 100, "(#100) Param text['body'] must be at most 4096 characters long."
            )
        return None
    if kind in ("image", "document"):
        media = body.get(kind)
        if not isinstance(media, dict) or not (media.get("id") or media.get("link")):
            return graph_error(
                400,
                131008,
                "(#131008) Required parameter is missing",
                details=f"{kind}.id or {kind}.link is required",
            )
        caption = media.get("caption")
        if isinstance(caption, str) and len(caption) > 1024:
            return invalid_parameter(f"{kind}.caption must be at most 1024 characters")
        return None
    if kind != "interactive":
        return invalid_parameter(f"the fake knows only text and interactive, not {kind}")
    interactive = body.get("interactive")
    if not isinstance(interactive, dict):
        return graph_error(
            400,
            131008,
            "(#131008) Required parameter is missing",
            details="interactive is required",
        )
    text = (interactive.get("body") or {}).get("text")
    if not isinstance(text, str) or not text:
        return invalid_parameter("interactive.body.text is required")
    if len(text) > 1024:
        return invalid_parameter("Body text length invalid. Max length is 1024")
    action = interactive.get("action")
    if not isinstance(action, dict):
        return invalid_parameter("interactive.action is required")
    if interactive.get("type") == "button":
        buttons = action.get("buttons")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return invalid_parameter("Number of buttons must be between 1 and 3")
        titles = []
        for button in buttons:
            reply = button.get("reply") if isinstance(button, dict) else None
            if button.get("type") != "reply" or not isinstance(reply, dict):
                return invalid_parameter("button type must be reply")
            title, button_id = reply.get("title"), reply.get("id")
            if not isinstance(title, str) or not 1 <= len(title) <= 20:
                return invalid_parameter("Button title length invalid. Max length is 20")
            if not isinstance(button_id, str) or not 1 <= len(button_id) <= 256:
                return invalid_parameter("Button id length invalid. Max length is 256")
            titles.append(title)
        if len(set(titles)) != len(titles):
            return invalid_parameter("Button titles must be unique")
        return None
    if interactive.get("type") == "list":
        label = action.get("button")
        if not isinstance(label, str) or not 1 <= len(label) <= 20:
            return invalid_parameter("Button text length invalid. Max length is 20")
        sections = action.get("sections")
        if not isinstance(sections, list) or not 1 <= len(sections) <= 10:
            return invalid_parameter("Number of sections must be between 1 and 10")
        rows = [r for s in sections if isinstance(s, dict) for r in s.get("rows") or []]
        if not 1 <= len(rows) <= 10:
            return invalid_parameter("Total row count exceed max allowed count: 10")
        ids = []
        for row in rows:
            title, row_id = row.get("title"), row.get("id")
            if not isinstance(title, str) or not 1 <= len(title) <= 24:
                return invalid_parameter("Row title length invalid. Max length is 24")
            if not isinstance(row_id, str) or not 1 <= len(row_id) <= 200:
                return invalid_parameter("Row id length invalid. Max length is 200")
            if len(str(row.get("description") or "")) > 72:
                return invalid_parameter("Row description length invalid. Max length is 72")
            ids.append(row_id)
        if len(set(ids)) != len(ids):
            return invalid_parameter("Row ids must be unique")
        if len(sections) > 1 and not all(isinstance(s.get("title"), str) for s in sections):
            return invalid_parameter("Section title is required when there are several")
        return None
    return invalid_parameter(f"interactive type {interactive.get('type')!r} is not supported")
