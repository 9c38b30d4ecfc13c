"""A bare echo of the client API, the reference ``bench/load.py --echo`` measures against.

It answers the routes the load bench calls with the product's JSON shapes
(src/abonent/web/client_api.py) on the product's stack (FastAPI, uvicorn with the options
of ``abonent serve``, uvloop and httptools when installed), but keeps everything in
memory and "answers" every customer message with a bot message echoing it. The ratio of
the product's throughput to this one's says how much of the machine the pipeline itself
(database, dialog, events) costs, on top of what the framework and the load generator
cost anyway.

    .venv/bin/python bench/echo_server.py --host 127.0.0.1 --port 8001
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import logging
import secrets
from collections import defaultdict
from datetime import UTC, datetime
from typing import Annotated, Any

import uvicorn
from fastapi import Depends, FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

API = "/api/client/v1"
GREETING = "Здравствуйте! Я виртуальный помощник. Чем могу помочь?"
MENU = [
    {"title": "Баланс", "payload": "balance"},
    {"title": "Передать показания", "payload": "readings"},
    {"title": "Оператор", "payload": "operator"},
]


class NewConversation(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, max_length=200)


class ConversationCreated(BaseModel):
    conversation_id: int
    token: str


class NewMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = None
    payload: str | None = None
    client_message_id: str | None = Field(default=None, max_length=64)


class Accepted(BaseModel):
    id: int


class Store:
    """Conversations, messages and live listeners, in memory (one process)."""

    def __init__(self) -> None:
        self.next_id = 0
        self.tokens: dict[str, int] = {}  # token hash → identity (= conversation) id
        self.messages: dict[int, list[dict[str, Any]]] = defaultdict(list)
        # A frame's JSON text, encoded once per message (None: the client has gone).
        self.listeners: dict[int, set[asyncio.Queue[str | None]]] = defaultdict(set)

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def add(self, identity: int, author: str, text: str, buttons: list[dict[str, str]]) -> int:
        """Store a message and push it to the identity's listeners; returns its id."""
        message = {
            "id": self.new_id(),
            "author": author,
            "text": text,
            "buttons": buttons,
            "created_at": datetime.now(UTC).isoformat(),
            "attachments": [],
        }
        self.messages[identity].append(message)
        queues = self.listeners.get(identity)
        if queues:
            frame = json.dumps(message, separators=(",", ":"), ensure_ascii=False)
            for queue in queues:
                queue.put_nowait(frame)
        return int(message["id"])


store = Store()
bearer = HTTPBearer(auto_error=False)
app = FastAPI(title="Abonent echo", docs_url=None, redoc_url=None)
app.add_middleware(
    CORSMiddleware,
    allow_origins=["*"],
    allow_methods=["GET", "POST", "OPTIONS"],
    allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
    allow_credentials=False,
)


def _identity(token: str | None) -> int | None:
    if not token:
        return None
    return store.tokens.get(hashlib.sha256(token.encode()).hexdigest())


def _unauthorized() -> JSONResponse:
    body = {"error": {"code": "invalid_token", "message": "The token is not valid."}}
    return JSONResponse(body, status_code=401)


@app.get("/readyz")
async def readyz() -> JSONResponse:
    return JSONResponse({"status": "ready", "database": "ok", "consultant": "model"})


@app.post(f"{API}/conversations", status_code=201, response_model=ConversationCreated)
async def create_conversation(body: NewConversation | None = None) -> dict[str, Any]:
    token = secrets.token_urlsafe(32)
    identity = store.new_id()
    store.tokens[hashlib.sha256(token.encode()).hexdigest()] = identity
    # The product greets from a turn of its own, after the response.
    asyncio.get_running_loop().call_soon(store.add, identity, "bot", GREETING, MENU)
    return {"conversation_id": identity, "token": token}


@app.post(f"{API}/messages", status_code=202, response_model=Accepted)
async def post_message(
    body: NewMessage,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> JSONResponse:
    identity = _identity(credentials.credentials if credentials else None)
    if identity is None:
        return _unauthorized()
    text = (body.text or "").strip() or (body.payload or "").strip()
    message_id = store.add(identity, "customer", text, [])
    # The product answers in a task of its own, after the message is stored.
    asyncio.get_running_loop().call_soon(store.add, identity, "bot", f"Вы написали: {text}", MENU)
    return JSONResponse({"id": message_id}, status_code=202)


@app.get(f"{API}/messages")
async def get_messages(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    after: Annotated[int, Query(ge=0)] = 0,
    wait: Annotated[float, Query(ge=0, le=30)] = 0,
) -> JSONResponse:
    identity = _identity(credentials.credentials if credentials else None)
    if identity is None:
        return _unauthorized()

    def newer() -> list[dict[str, Any]]:
        return [m for m in store.messages.get(identity, []) if m["id"] > after]

    found = newer()
    if not found and wait > 0:
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        store.listeners[identity].add(queue)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(queue.get(), wait)
        finally:
            store.listeners[identity].discard(queue)
        found = newer()
    return JSONResponse({"messages": found})


@app.websocket(f"{API}/ws")
async def websocket(ws: WebSocket, token: str | None = None) -> None:
    identity = _identity(token)
    if identity is None:
        await ws.close(code=4401, reason="invalid_token")
        return
    await ws.accept()
    queue: asyncio.Queue[str | None] = asyncio.Queue()
    store.listeners[identity].add(queue)

    async def drain() -> None:
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):
            while True:
                await ws.receive_text()

    # The product's sending loop (src/abonent/web/client_api.py ``websocket``).
    reader = asyncio.create_task(drain())
    reader.add_done_callback(lambda _: queue.put_nowait(None))
    try:
        while (frame := await queue.get()) is not None:
            await ws.send_text(frame)
    except (WebSocketDisconnect, RuntimeError):
        return
    finally:
        reader.cancel()
        store.listeners[identity].discard(queue)


def main() -> None:
    p = argparse.ArgumentParser(description="In-memory echo of Abonent's client API.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8001)
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    # The options of ``abonent serve`` (src/abonent/cli.py ``_run_server``).
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        log_config=None,
        access_log=False,
        ws_ping_interval=20,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
