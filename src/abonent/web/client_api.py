"""The client API (docs/client-api.md): web chat and the company's own apps.

A bearer token names one channel identity (one browser, one app install). Messages
are read from the store; live delivery (WebSocket, long poll) is driven by
``message.received`` / ``message.sent`` events on the bus, so a message written by
another server process reaches this one's clients through Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import OrderedDict, defaultdict
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, Field
from sqlalchemy import select

from abonent.app import Runtime
from abonent.channels.webchat import WEBCHAT_ID
from abonent.core import events, inbox
from abonent.core.events import Event
from abonent.core.serialize import message_dict
from abonent.core.types import InboundMessage
from abonent.db.models import ChannelIdentity, Message
from abonent.web.deps import MAX_ID, BearerDep, RuntimeDep
from abonent.web.errors import ApiError
from abonent.web.fields import ApiModel
from abonent.web.ratelimit import limit

log = logging.getLogger(__name__)

MAX_TEXT = 4096
MAX_PAYLOAD = 256
MAX_WAIT = 30.0
PAGE = 200
PUBLIC_FIELDS = ("id", "author", "text", "buttons", "created_at")

router = APIRouter(prefix="/api/client/v1", tags=["client"])


class Listeners:
    """Live subscribers per identity (WebSockets and long polls of this process).

    A queue receives each message as the JSON text of its WebSocket frame, encoded once
    however many listeners the identity has (``None``: the socket's client has gone)."""

    def __init__(self, remembered: int = 50_000) -> None:
        self._queues: dict[int, set[asyncio.Queue[str | None]]] = defaultdict(set)
        # The buttons each identity was last shown, so a press is stored with its title
        # without a query.
        self._buttons: OrderedDict[int, dict[str, str]] = OrderedDict()
        self._remembered = remembered

    def on_event(self, event: Event) -> None:
        identity = event.data.get("identity_id")
        if not isinstance(identity, int) or event.data.get("author") == "note":
            return  # operators' internal notes never reach the customer
        buttons = event.data.get("buttons")
        if buttons and event.data.get("author") != "customer":
            self._buttons[identity] = {b["payload"]: b["title"] for b in buttons}
            self._buttons.move_to_end(identity)
            if len(self._buttons) > self._remembered:
                self._buttons.popitem(last=False)
        queues = self._queues.get(identity)
        if not queues:
            return
        message = {k: event.data[k] for k in PUBLIC_FIELDS}
        message["attachments"] = list(event.data.get("attachments") or [])
        # As Starlette's ``send_json`` encodes it.
        frame = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
        for queue in queues:
            queue.put_nowait(frame)

    def button_title(self, identity_id: int, payload: str) -> str | None:
        return self._buttons.get(identity_id, {}).get(payload)

    @contextlib.contextmanager
    def listen(self, identity_id: int) -> Any:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._queues[identity_id].add(queue)
        try:
            yield queue
        finally:
            self._queues[identity_id].discard(queue)
            if not self._queues[identity_id]:
                del self._queues[identity_id]


class TokenCache:
    """Token hash → identity id; identities never change owner, so caching is safe."""

    def __init__(self, size: int = 50_000) -> None:
        self._items: OrderedDict[str, int] = OrderedDict()
        self._size = size

    def get(self, key: str) -> int | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: str, value: int) -> None:
        self._items[key] = value
        if len(self._items) > self._size:
            self._items.popitem(last=False)


def install(app: FastAPI) -> None:
    """CORS for the widget on the company's own site; state shared by the endpoints."""
    app.add_middleware(
        CORSMiddleware,
        allow_origins=["*"],
        allow_methods=["GET", "POST", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
        allow_credentials=False,
    )
    app.state.client_listeners = Listeners()
    app.state.client_tokens = TokenCache()
    app.state.client_subscribed = False


def _listeners(request: Request | WebSocket) -> Listeners:
    app = request.app
    if not app.state.client_subscribed:
        app.state.runtime.bus.subscribe(
            app.state.client_listeners.on_event, {events.MESSAGE_RECEIVED, events.MESSAGE_SENT}
        )
        app.state.client_subscribed = True
    listeners: Listeners = app.state.client_listeners
    return listeners


async def _identity_for(request: Request | WebSocket, token: str | None) -> int:
    if not token:
        raise ApiError(
            401, "missing_token", "Send 'Authorization: Bearer <token>' from POST /conversations."
        )
    cache: TokenCache = request.app.state.client_tokens
    key = inbox.hash_token(token)
    identity_id = cache.get(key)
    if identity_id is not None:
        return identity_id
    runtime = request.app.state.runtime
    async with runtime.db.session() as session:
        found = await session.scalar(
            select(ChannelIdentity.id).where(ChannelIdentity.token_hash == key)
        )
    if found is None:
        raise ApiError(401, "invalid_token", "The token is not valid; start a new conversation.")
    cache.put(key, found)
    return int(found)


async def bearer_identity(
    request: Request, credentials: HTTPAuthorizationCredentials | None
) -> int:
    """The identity an HTTP endpoint's bearer token names; called in the endpoint, not as
    a dependency, so a malformed body is still reported before a missing token."""
    return await _identity_for(request, credentials.credentials if credentials else None)


class NewConversation(ApiModel):
    name: str | None = Field(default=None, max_length=200)


class ConversationCreated(BaseModel):
    conversation_id: int
    token: str


class NewMessage(ApiModel):
    text: str | None = None
    payload: str | None = None
    client_message_id: str | None = Field(default=None, max_length=64)


class Accepted(BaseModel):
    id: int


class ButtonOut(BaseModel):
    title: str
    payload: str


class FileOut(BaseModel):
    """A photo or document on a message: fetch it with GET /attachments/{id}."""

    id: int
    kind: str  # image | document
    mime: str
    size: int
    name: str
    width: int | None = None
    height: int | None = None


class MessageOut(BaseModel):
    id: int
    author: str
    text: str
    buttons: list[ButtonOut]
    created_at: str
    attachments: list[FileOut] = []


class MessageList(BaseModel):
    messages: list[MessageOut]


class WidgetConfig(BaseModel):
    title: str
    chat_title: str
    company: dict[str, str]
    messengers: list[dict[str, str]]
    # What POST /attachments accepts, so the widget can refuse a file before uploading.
    attachments: dict[str, Any] = {}


@router.get("/widget", response_model=WidgetConfig)
async def widget_config(runtime: RuntimeDep) -> dict[str, Any]:
    """What the site widget shows before any chat starts."""
    company = runtime.settings.company
    return {
        "title": "Помощь",
        "chat_title": "Онлайн-чат",
        "company": {"name": company.name},
        "messengers": messenger_links(runtime),
        "attachments": {
            "max_bytes": runtime.settings.attachments.max_bytes,
            "types": ["image/jpeg", "image/png", "image/webp", "image/heic", "application/pdf"],
        },
    }


MESSENGER_TITLES = {
    "telegram": "Telegram",
    "whatsapp": "WhatsApp",
    "viber": "Viber",
    "vk": "ВКонтакте",
    "max": "MAX",
}


def messenger_links(runtime: Runtime) -> list[dict[str, str]]:
    """The messengers the widget lists: those written in ``[company]`` (their wording wins
    for their type), then every configured channel of another type that knows its deep link."""
    links = [m.model_dump() for m in runtime.settings.company.messengers]
    written = {link["type"] for link in links}
    listed = {link["url"] for link in links}
    for channel in runtime.channels.values():
        url = channel.deep_link()
        if url and url not in listed and channel.type not in written:
            links.append(
                {
                    "type": channel.type,
                    "title": MESSENGER_TITLES.get(channel.type, channel.id),
                    "url": url,
                }
            )
            listed.add(url)
    return links


@router.post("/conversations", status_code=201, response_model=ConversationCreated)
async def create_conversation(
    runtime: RuntimeDep, body: NewConversation | None = None
) -> dict[str, Any]:
    name = (body.name or "").strip() or None if body else None
    conv_id, token = await runtime.pipeline.open_webchat(WEBCHAT_ID, name)
    return {"conversation_id": conv_id, "token": token}


@router.post("/messages", status_code=202, response_model=Accepted)
async def post_message(
    request: Request,
    runtime: RuntimeDep,
    credentials: BearerDep,
    body: NewMessage,
    idempotency_key: Annotated[str | None, Header(max_length=64)] = None,
) -> JSONResponse:
    identity_id = await bearer_identity(request, credentials)
    # Per address before any route runs (web/bounds.py); per conversation here, where the
    # token names it: one chat cannot flood the bot from many addresses either.
    await limit(request, "messages:conversation", conversation=identity_id)
    text = (body.text or "").strip()
    payload = (body.payload or "").strip() or None
    if not text and not payload:
        raise ApiError(422, "empty_message", "Send a non-empty 'text' or a button's 'payload'.")
    if len(text) > MAX_TEXT:
        raise ApiError(
            422,
            "message_too_long",
            f"A message may have at most {MAX_TEXT} characters.",
            length=len(text),
            limit=MAX_TEXT,
        )
    if payload is not None and len(payload) > MAX_PAYLOAD:
        raise ApiError(
            422, "payload_too_long", f"A payload may have at most {MAX_PAYLOAD} characters."
        )
    if payload is not None and not text:
        text = _listeners(request).button_title(identity_id, payload) or await _button_title(
            runtime, identity_id, payload
        )
    key = body.client_message_id or idempotency_key
    received = await runtime.pipeline.accept(
        InboundMessage(
            channel_id=WEBCHAT_ID,
            external_user_id="",
            identity_id=identity_id,
            text=text,
            payload=payload,
            external_id=f"{identity_id}:{key}" if key else None,
        )
    )
    # A Response skips FastAPI's re-validation of the return value (the model documents it).
    return JSONResponse({"id": received.message_id}, status_code=202)


async def _button_title(runtime: Any, identity_id: int, payload: str) -> str:
    """The title of the pressed button, as the customer saw it, for the history."""
    async with runtime.db.session() as session:
        recent = await session.scalars(
            select(Message.buttons)
            .where(
                Message.identity_id == identity_id,
                Message.author != "customer",
                Message.buttons.is_not(None),
            )
            .order_by(Message.id.desc())
            .limit(5)
        )
        for buttons in recent:
            for button in buttons or []:
                if button.get("payload") == payload:
                    return str(button.get("title") or payload)
    return payload


async def _messages_after(runtime: Any, identity_id: int, after: int) -> list[dict[str, Any]]:
    async with runtime.db.session() as session:
        rows = await session.scalars(
            select(Message)
            .where(Message.identity_id == identity_id, Message.id > after, Message.author != "note")
            .order_by(Message.id)
            .limit(PAGE)
        )
        return [message_dict(m) for m in rows]


@router.get("/messages", response_model=MessageList)
async def get_messages(
    request: Request,
    runtime: RuntimeDep,
    credentials: BearerDep,
    after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    wait: Annotated[float, Query(ge=0, le=MAX_WAIT)] = 0,
) -> dict[str, Any]:
    identity_id = await bearer_identity(request, credentials)
    if wait <= 0:
        return {"messages": await _messages_after(runtime, identity_id, after)}
    with _listeners(request).listen(identity_id) as queue:
        messages = await _messages_after(runtime, identity_id, after)
        if messages:
            return {"messages": messages}
        getter = asyncio.create_task(queue.get())
        gone = asyncio.create_task(_until_disconnected(request))
        try:
            await asyncio.wait({getter, gone}, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (getter, gone):
                task.cancel()
            await asyncio.gather(getter, gone, return_exceptions=True)
    return {"messages": await _messages_after(runtime, identity_id, after)}


async def _until_disconnected(request: Request) -> None:
    """A long poll whose client left (page closed, server shutting down) ends early."""
    while not await request.is_disconnected():  # noqa: ASYNC110 (polling is Starlette's API)
        await asyncio.sleep(1)


@router.websocket("/ws")
async def websocket(ws: WebSocket, token: str | None = None) -> None:
    try:
        identity_id = await _identity_for(ws, token)
    except ApiError as exc:
        await ws.close(code=4401, reason=exc.code)
        return
    await ws.accept()
    with _listeners(ws).listen(identity_id) as queue:
        reader = asyncio.create_task(_drain_client(ws))
        # The client gone wakes the sender with None: no task and wait() per message.
        reader.add_done_callback(lambda _: queue.put_nowait(None))
        try:
            while (frame := await queue.get()) is not None:
                await ws.send_text(frame)
        except (WebSocketDisconnect, RuntimeError, OSError):
            return
        finally:
            reader.cancel()


async def _drain_client(ws: WebSocket) -> None:
    """Read (and ignore) client frames so a closed socket is noticed at once."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            await ws.receive_text()
