"""One error shape for every API: ``{"error": {"code", "message", "details"?}}``.

Clients (the widget, a company's app) branch on ``code``; ``message`` is for people.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote_to_bytes

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        headers: dict[str, str] | None = None,
        **details: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        # Sent with the answer (``Retry-After`` of a 429).
        self.headers = headers or {}


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    if details:
        body["details"] = details
    return {"error": body}


class StorableAddress:
    """Refuses a path or query string with a NUL character (``%00``) before any route
    runs: the same 422 on both databases for every parameter of every route, where
    PostgreSQL would fail on it in the middle of a query."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            where = _nul_in(scope)
            if where is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 4400, "reason": "nul"})
                    return
                body = error_body(
                    "invalid_request",
                    "The request does not match the API.",
                    [{"field": where, "problem": "must not contain the NUL character (%00)"}],
                )
                await JSONResponse(body, 422)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _nul_in(scope: Scope) -> str | None:
    path = scope.get("raw_path") or scope.get("path", "").encode("utf-8", "replace")
    if b"\x00" in unquote_to_bytes(path):
        return "path"
    if b"\x00" in unquote_to_bytes(scope.get("query_string", b"").replace(b"+", b" ")):
        return "query"
    return None


def install(app: FastAPI) -> None:
    from abonent.web.bounds import Guard

    # Inside the CORS middleware (added after this), so a widget on another site can
    # read a 429 and say «слишком часто»; NUL in the address is judged first.
    app.add_middleware(Guard)
    app.add_middleware(StorableAddress)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
        headers.update(exc.headers)
        return JSONResponse(
            error_body(exc.code, exc.message, exc.details or None), exc.status, headers=headers
        )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if any(e.get("type") == "json_invalid" for e in errors):
            log.info("malformed JSON on %s", request.url.path)
            return JSONResponse(
                error_body("malformed_json", "The request body is not valid JSON."), 400
            )
        details = [
            {
                "field": ".".join(str(p) for p in e.get("loc", ()) if p != "body"),
                "problem": e.get("msg"),
            }
            for e in errors
        ]
        return JSONResponse(
            error_body("invalid_request", "The request does not match the API.", details), 422
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Still logged with its traceback by the server; the client gets the API's shape.
        return JSONResponse(
            error_body("internal_error", "The server failed to handle the request."), 500
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code)
