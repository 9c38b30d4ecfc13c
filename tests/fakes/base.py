"""The harness every fake messenger platform shares.

A fake is a real HTTP server on 127.0.0.1 (uvicorn in a thread) that records every
request the product makes and answers as the platform would. Subclasses implement
``api()`` with the platform's checks (auth, body shapes, limits) and replies; faults
queued with ``fail_next`` are answered first, exactly as the platform words them.
It can also play the platform's side of a webhook: ``deliver`` posts an event to
the product the way the platform signs it.
"""

from __future__ import annotations

import asyncio
import email.policy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from support import free_port


@dataclass
class Recorded:
    """One request the product made to the platform."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case keys
    body: bytes
    at: float = field(default_factory=time.monotonic)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class Reply:
    """What the fake answers: status, JSON (or text) body, headers."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None
    # Raw bytes (a file download) with their type.
    content: bytes | None = None
    media_type: str = "application/octet-stream"

    def response(self) -> Response:
        if self.content is not None:
            return Response(self.content, self.status, self.headers, media_type=self.media_type)
        if self.text is not None:
            return Response(self.text, self.status, self.headers, media_type="text/plain")
        return Response(
            json.dumps(self.body, ensure_ascii=False),
            self.status,
            self.headers,
            media_type="application/json",
        )


@dataclass
class _Fault:
    match: Callable[[Recorded], bool]
    reply: Reply
    times: int


class FakePlatform:
    """Subclass and implement ``api``; use as a context manager or start()/stop()."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.requests: list[Recorded] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()
        app = Starlette(
            routes=[Route("/{path:path}", self._endpoint, methods=["GET", "POST", "PUT", "DELETE"])]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self._thread = threading.Thread(target=self._run, daemon=True)

    # ------------------------------------------------------------------ subclass API
    def api(self, request: Recorded) -> Reply:
        raise NotImplementedError

    # ------------------------------------------------------------------ life cycle
    def _run(self) -> None:
        asyncio.run(self._server.serve())

    def start(self) -> FakePlatform:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("fake platform did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=5)

    def __enter__(self) -> FakePlatform:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _endpoint(self, request: Request) -> Response:
        recorded = Recorded(
            method=request.method,
            path=request.url.path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        with self._lock:
            self.requests.append(recorded)
            fault = next((f for f in self._faults if f.match(recorded)), None)
            if fault is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
        if fault is not None:
            return fault.reply.response()
        return self.api(recorded).response()

    # ------------------------------------------------------------------ test helpers
    def fail_next(self, path_suffix: str, reply: Reply, times: int = 1) -> None:
        """Answer the next ``times`` requests whose path ends with ``path_suffix`` so."""
        self.fail_next_matching(lambda r: r.path.endswith(path_suffix), reply, times)

    def fail_next_matching(
        self, match: Callable[[Recorded], bool], reply: Reply, times: int = 1
    ) -> None:
        """Answer the next ``times`` requests that ``match`` accepts so (a given part of a
        split text, say)."""
        with self._lock:
            self._faults.append(_Fault(match, reply, times))

    def calls(self, path_suffix: str) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(path_suffix)]

    def wait_for(self, path_suffix: str, count: int = 1, timeout: float = 10.0) -> list[Recorded]:
        """The first ``count`` calls to the path, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.calls(path_suffix)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"expected {count} calls to …{path_suffix}, got {len(found)}: "
                    f"{[r.path for r in self.requests]}"
                )
            time.sleep(0.02)

    def assert_no_more(self, path_suffix: str, count: int, wait: float = 1.5) -> None:
        """After ``wait`` seconds there are still exactly ``count`` calls (no duplicates)."""
        time.sleep(wait)
        found = self.calls(path_suffix)
        assert len(found) == count, f"expected {count} calls to …{path_suffix}, got {len(found)}"

    @staticmethod
    def deliver(
        url: str, body: bytes | dict[str, Any], headers: dict[str, str] | None = None
    ) -> httpx.Response:
        """POST an event to the product's webhook as the platform would (raw bytes kept)."""
        raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        return httpx.post(
            url,
            content=raw,
            headers={"Content-Type": "application/json", **(headers or {})},
            timeout=10,
        )


@dataclass(frozen=True)
class FormFile:
    """One file part of a multipart upload, as the platform received it."""

    filename: str | None
    content_type: str | None
    data: bytes


def parse_multipart(
    headers: dict[str, str], body: bytes
) -> tuple[dict[str, str], dict[str, FormFile]]:
    """The fields and files of a ``multipart/form-data`` body (what a platform's upload
    endpoint reads); ValueError when it is not one."""
    content_type = headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ValueError("not multipart/form-data")
    raw = f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + body
    message = BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    if not message.is_multipart():
        raise ValueError("no parts")
    fields: dict[str, str] = {}
    files: dict[str, FormFile] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            continue
        data = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[name] = FormFile(filename, part.get_content_type(), data)
        else:
            fields[name] = data.decode()
    return fields, files
