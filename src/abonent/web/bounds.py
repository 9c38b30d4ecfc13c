"""The gate every HTTP request passes before a route: rate limits per client address
(``web/ratelimit.py``), then the size and nesting depth of a JSON body, measured on the
raw bytes (``core/bounds.py``) before FastAPI's parser recurses into it.

Answers are in the API's error format: 429 ``rate_limited`` with ``Retry-After``, 413
``body_too_large``, 400 ``too_deep``. Webhooks are not judged here: a platform must be
acknowledged, not refused, so ``web/webhooks.py`` bounds its own bodies; neither are
uploads (multipart), which ``attachments_api`` streams with its own limit.
"""

from __future__ import annotations

import logging

from fastapi.responses import JSONResponse
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from abonent.core.bounds import MAX_API_BYTES, MAX_DEPTH, too_deep
from abonent.web.errors import ApiError, error_body
from abonent.web.ratelimit import limiter, rule_for

log = logging.getLogger(__name__)

# Signed-in staff edit knowledge-base articles and templates: room for those.
MAX_STAFF_BYTES = 1024 * 1024


class Guard:
    def __init__(self, app: ASGIApp, max_bytes: int = MAX_API_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        method: str = scope.get("method", "GET")
        rule = rule_for(method, path)
        if rule is not None and hasattr(scope["app"].state, "runtime"):
            try:
                await limiter(scope["app"]).check(Request(scope), rule)
            except ApiError as exc:
                await self._answer(scope, receive, send, exc)
                return
        if method in ("GET", "HEAD", "OPTIONS", "DELETE") or path.startswith("/webhooks/"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        kind = headers.get(b"content-type", b"").decode("latin-1").lower()
        if kind and "json" not in kind:
            await self.app(scope, receive, send)  # only JSON is parsed by the routes
            return
        limit = self.max_bytes if path.startswith("/api/client/") else MAX_STAFF_BYTES
        body = await self._read(receive, headers.get(b"content-length", b""), limit)
        refused = self._judge(body, limit)
        if refused is not None:
            log.info("refused %s %s: %s", method, path, refused.code)
            self._count(scope, path, refused.code)
            await self._answer(scope, receive, send, refused)
            return
        await self.app(scope, _replay(body or b"", receive), send)

    async def _read(self, receive: Receive, declared: bytes, limit: int) -> bytes | None:
        """The whole body, or None past ``limit`` bytes (the rest left unread)."""
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    @staticmethod
    def _judge(body: bytes | None, limit: int) -> ApiError | None:
        if body is None:
            return ApiError(
                413,
                "body_too_large",
                f"The request body may have at most {limit} bytes.",
                limit=limit,
            )
        if too_deep(body):
            return ApiError(
                400,
                "too_deep",
                f"The JSON body may nest at most {MAX_DEPTH} levels.",
                limit=MAX_DEPTH,
            )
        return None

    @staticmethod
    def _count(scope: Scope, path: str, reason: str) -> None:
        runtime = getattr(scope["app"].state, "runtime", None)
        if runtime is not None:
            area = "/".join(path.split("/")[:3]) or "/"  # /api/client, /api/workspace …
            runtime.metrics.inputs_refused.labels(area, reason).inc()

    @staticmethod
    async def _answer(scope: Scope, receive: Receive, send: Send, exc: ApiError) -> None:
        response = JSONResponse(
            error_body(exc.code, exc.message, exc.details or None), exc.status, headers=exc.headers
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the route the body already read, then waits as the
    original would (for the client's disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
