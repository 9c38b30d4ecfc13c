"""The event bus: in-process by default, Redis pub/sub across server processes.

Handlers are plain callables that must not block (they usually put the event on a
queue); that keeps publishing cheap on the message path. With Redis, an event is
delivered locally at once and relayed to the other processes; a process ignores its
own events coming back from Redis, so nobody sees an event twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from abonent.core.events import Event

log = logging.getLogger(__name__)

Handler = Callable[[Event], None]


def channel_for(url: str) -> str:
    """The pub/sub channel of the processes sharing ``url``'s database number.

    Redis pub/sub ignores the database number, so without it in the name two deployments
    (or two test workers) on one Redis would hear each other's events.
    """
    path = urlsplit(url).path.strip("/")
    return f"abonent:{path or '0'}:events"


class LocalBus:
    def __init__(self) -> None:
        self._handlers: dict[int, tuple[frozenset[str] | None, bool, Handler]] = {}
        self._next = 0

    def subscribe(
        self, handler: Handler, types: set[str] | None = None, *, local_only: bool = False
    ) -> Callable[[], None]:
        """Call ``handler`` for each event (of ``types``); ``local_only`` skips events relayed
        from other processes — for counters that each process keeps for itself."""
        key = self._next
        self._next += 1
        self._handlers[key] = (frozenset(types) if types else None, local_only, handler)

        def unsubscribe() -> None:
            self._handlers.pop(key, None)

        return unsubscribe

    async def publish(self, event: Event) -> None:
        self._dispatch(event.for_bus())

    async def publish_many(self, events: list[Event]) -> None:
        for event in events:
            await self.publish(event)

    def _dispatch(self, event: Event, *, remote: bool = False) -> None:
        """``event`` as subscribers see it (``Event.for_bus``)."""
        for types, local_only, handler in list(self._handlers.values()):
            if types is not None and event.type not in types:
                continue
            if remote and local_only:
                continue
            try:
                handler(event)
            except Exception:
                log.exception("bus handler failed for %s", event.type)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


class RedisBus(LocalBus):
    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.channel = channel_for(url)
        self.origin = uuid.uuid4().hex
        self._redis: Any = None
        self._listener: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        from redis import asyncio as aioredis

        self._redis = aioredis.from_url(self.url)
        await self._redis.ping()
        self._listener = asyncio.create_task(self._listen(), name="redis-bus")
        await asyncio.wait_for(self._ready.wait(), timeout=10)

    async def stop(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
        if self._redis is not None:
            await self._redis.aclose()

    async def publish(self, event: Event) -> None:
        event = event.for_bus()
        self._dispatch(event)
        body = json.dumps({"o": self.origin, "t": event.type, "d": event.data}, default=str)
        try:
            await self._redis.publish(self.channel, body)
        except Exception:
            # Other processes miss a live update; the database still has everything.
            log.exception("could not relay %s to Redis", event.type)

    async def publish_many(self, events: list[Event]) -> None:
        events = [event.for_bus() for event in events]
        for event in events:
            self._dispatch(event)
        if not events:
            return
        pipe = self._redis.pipeline(transaction=False)
        for event in events:
            body = json.dumps({"o": self.origin, "t": event.type, "d": event.data}, default=str)
            pipe.publish(self.channel, body)
        try:
            await pipe.execute()
        except Exception:
            log.exception("could not relay %d events to Redis", len(events))

    async def _listen(self) -> None:
        """Relay events from other processes; reconnect with backoff if Redis goes away."""
        delay = 0.5
        while True:
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                await pubsub.subscribe(self.channel)
                self._ready.set()
                delay = 0.5
                async for raw in pubsub.listen():
                    if raw.get("type") != "message":
                        continue
                    body = json.loads(raw["data"])
                    if body.get("o") == self.origin:
                        continue
                    self._dispatch(Event(body["t"], body["d"]), remote=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Redis bus listener failed; reconnecting in %.1fs", delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10)


def make_bus(redis_url: str) -> LocalBus:
    return RedisBus(redis_url) if redis_url else LocalBus()
