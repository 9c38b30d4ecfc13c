"""``POST /webhooks/{id}``: where every messenger platform delivers (``[[channels]]`` id).

The route is the same for all platforms; the channel plugin verifies and parses.
The order matters: authenticity on the raw bytes first (a forged request stores
nothing), then the messages are stored (dedupe on the platform's own ids), and only
then is the platform acknowledged — an acknowledged event is never lost, and an
event we failed to store is answered 5xx so the platform delivers it again.
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, Request, Response

from abonent.channels.base import FollowUp, MessengerChannel, WebhookRejected, WebhookRequest
from abonent.core import events
from abonent.core.events import Event
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


async def _handle(request: Request, runtime: RuntimeDep, channel_id: str) -> Response:
    channel = _channel(runtime, channel_id)
    webhook = WebhookRequest(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        query=dict(request.query_params),
        body=await request.body(),
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
            request.client.host if request.client else "?",
        )
        await runtime.bus.publish(
            Event(events.WEBHOOK_REJECTED, {"channel_id": channel_id, "status": exc.status})
        )
        return Response(exc.reason, status_code=exc.status, media_type="text/plain")
    for message in result.messages:
        await runtime.pipeline.accept(message)
    for follow_up in result.follow_ups:
        task = asyncio.create_task(_run_follow_up(channel_id, follow_up))
        _pending.add(task)
        task.add_done_callback(_pending.discard)
    return Response(result.body, status_code=result.status, media_type=result.media_type)


async def _run_follow_up(channel_id: str, follow_up: FollowUp) -> None:
    try:
        await follow_up()
    except Exception:
        log.exception("follow-up call on %s failed", channel_id)


@router.post("/webhooks/{channel_id}", summary="A messenger platform delivers events here")
async def webhook_post(request: Request, runtime: RuntimeDep, channel_id: str) -> Response:
    return await _handle(request, runtime, channel_id)


@router.get(
    "/webhooks/{channel_id}",
    summary="Verification handshakes that use GET (WhatsApp's hub.challenge)",
)
async def webhook_get(request: Request, runtime: RuntimeDep, channel_id: str) -> Response:
    return await _handle(request, runtime, channel_id)
