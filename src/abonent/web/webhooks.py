"""``POST /webhooks/{id}``: where every messenger platform delivers (``[[channels]]`` id).

The route is the same for all platforms; the channel plugin verifies and parses.
The order matters: authenticity on the raw bytes first (a forged request stores
nothing), then the messages are stored (dedupe on the platform's own ids), and only
then is the platform acknowledged — an acknowledged event is never lost, and an
event we failed to store is answered 5xx so the platform delivers it again.

A platform redelivers whatever it did not get a 2xx for, and holds the channel's later
updates behind it: so a 5xx is kept for our own storage failing. A body bigger than any
update is refused unread (413); an authentic body we cannot use — nested too deep, an
id of the wrong type, a value the database cannot take — is acknowledged as received,
logged with the reason (no traceback, no content) and counted
(``abonent_inputs_refused_total{path="webhook:<id>"}``); a platform message stored
after cleaning (``core/text.py``) is counted in ``abonent_inputs_cleaned_total``.
"""

from __future__ import annotations

import asyncio
import logging
import traceback

import httpx
from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import DataError

from abonent.channels.base import (
    FollowUp,
    MessengerChannel,
    WebhookRejected,
    WebhookRequest,
    WebhookUnusable,
)
from abonent.core import events
from abonent.core.bounds import MAX_WEBHOOK_BYTES
from abonent.core.events import Event
from abonent.core.text import cleaning_reasons
from abonent.web.deps import RuntimeDep
from abonent.web.errors import ApiError

log = logging.getLogger(__name__)

router = APIRouter(tags=["webhooks"])

# Background follow-ups (callback answers) must not be garbage-collected mid-flight.
_pending: set[asyncio.Task[None]] = set()


def _channel(runtime: RuntimeDep, channel_id: str) -> MessengerChannel:
    channel = runtime.channels.get(channel_id)
    if not isinstance(channel, MessengerChannel):
        raise ApiError(
            404, "unknown_channel", f"No messenger channel {channel_id!r} is configured."
        )
    return channel


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds ``limit`` bytes (read no further)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _where(exc: BaseException) -> str:
    """``TypeError at telegram.py:171``: enough to find the line, and no values (they
    may be a customer's text)."""
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    place = f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno}" if last else ""
    return f"{type(exc).__name__}{place}"


async def _handle(request: Request, runtime: RuntimeDep, channel_id: str) -> Response:
    channel = _channel(runtime, channel_id)
    path = f"webhook:{channel_id}"
    refused = runtime.metrics.inputs_refused
    address = request.client.host if request.client else "?"
    body = await read_bounded(request, MAX_WEBHOOK_BYTES)
    if body is None:
        log.warning(
            "webhook %s refused with 413: body over %d bytes", channel_id, MAX_WEBHOOK_BYTES
        )
        refused.labels(path, "too_large").inc()
        return Response("body too large", status_code=413, media_type="text/plain")
    webhook = WebhookRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=body,
    )
    try:
        result = await channel.handle_webhook(webhook)
    except WebhookRejected as exc:
        log.warning(
            "webhook %s refused with %d: %s (%d bytes from %s)",
            channel_id,
            exc.status,
            exc.reason,
            len(webhook.body),
            address,
        )
        await runtime.bus.publish(
            Event(events.WEBHOOK_REJECTED, {"channel_id": channel_id, "status": exc.status})
        )
        return Response(exc.reason, status_code=exc.status, media_type="text/plain")
    except WebhookUnusable as exc:
        return _unusable(channel, path, exc.reason, str(exc), len(body), runtime)
    except Exception as exc:
        # A shape the plugin did not expect (a list where an object belongs …): the
        # platform's bug or an attack, never worth a redelivery.
        return _unusable(channel, path, "unreadable", _where(exc), len(body), runtime)
    cleaned = runtime.metrics.inputs_cleaned
    try:
        for message in result.messages:
            for reason in cleaning_reasons(message):
                cleaned.labels(path, reason).inc()
            await runtime.pipeline.accept(message)
    except (DataError, UnicodeError, OverflowError) as exc:
        # The database refused a value (one transaction per message: nothing half-written).
        # Only a storage failure of our own (unreachable, full) is worth a redelivery.
        cause = exc.orig if isinstance(exc, DataError) and exc.orig is not None else exc
        return _unusable(channel, path, "unstorable", _where(cause), len(body), runtime)
    for follow_up in result.follow_ups:
        task = asyncio.create_task(_run_follow_up(channel_id, follow_up))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    return Response(result.body, status_code=result.status, media_type=result.media_type)


def _unusable(
    channel: MessengerChannel, path: str, reason: str, detail: str, size: int, runtime: RuntimeDep
) -> Response:
    log.warning(
        "webhook %s: an authentic update could not be used (%s; %d bytes); acknowledged",
        channel.id,
        detail,
        size,
    )
    runtime.metrics.inputs_refused.labels(path, reason).inc()
    ack = channel.acknowledge()
    return Response(ack.body, status_code=ack.status, media_type=ack.media_type)


async def _run_follow_up(channel_id: str, follow_up: FollowUp) -> None:
    try:
        await follow_up()
    except (httpx.HTTPError, UnicodeError, ValueError) as exc:
        log.warning("follow-up call on %s failed: %s", channel_id, _where(exc))
    except Exception:
        log.exception("follow-up call on %s failed", channel_id)


async def follow_ups_done() -> None:
    """Wait for the follow-up calls in flight (tests, and a graceful stop)."""
    while _pending:
        await asyncio.gather(*list(_pending), return_exceptions=True)


@router.post("/webhooks/{channel_id}", summary="A messenger platform delivers events here")
async def webhook_post(request: Request, runtime: RuntimeDep, channel_id: str) -> Response:
    return await _handle(request, runtime, channel_id)


@router.get(
    "/webhooks/{channel_id}",
    summary="Verification handshakes that use GET (WhatsApp's hub.challenge)",
)
async def webhook_get(request: Request, runtime: RuntimeDep, channel_id: str) -> Response:
    return await _handle(request, runtime, channel_id)
