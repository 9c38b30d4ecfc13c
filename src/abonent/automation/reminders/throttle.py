"""The reminders' pace per platform: a rate per channel type and one message a second
per chat, in this process or — with Redis — across every server process together.

Alone, a process keeps a token bucket per channel type (``Bucket``). With
``redis_url`` set (and ``[reminders] shared_throttle``), the processes share one
fixed one-second window per channel type in Redis, counted by a Lua script that also
keeps the per-chat interval and a 429's pause, so three servers together stay under
Telegram's ~30 messages a second instead of three times it. The window starts at its
first send (the key's expiry), so no process's clock matters. Should Redis fail, the
process falls back to its own bucket until it answers again: slower or faster than
the platform wants for a while, never stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

log = logging.getLogger(__name__)

PREFIX = "abonent:reminders:throttle:"
# Waits longer than this are taken in steps, so a pause or a stop is noticed.
_MAX_WAIT = 1.0
_LOCAL_CHATS = 20_000

# KEYS: the type's window, its pause, the chat's key. ARGV: the rate per second, the
# chat interval in ms. 0: go; otherwise the milliseconds to wait before asking again.
_SCRIPT = """
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused end
local interval = tonumber(ARGV[2])
if interval > 0 then
  local chat = redis.call('PTTL', KEYS[3])
  if chat > 0 then return chat end
end
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], 1000) end
if n > tonumber(ARGV[1]) then
  local left = redis.call('PTTL', KEYS[1])
  if left < 1 then left = 1 end
  return left
end
if interval > 0 then redis.call('SET', KEYS[3], '1', 'PX', interval) end
return 0
"""


class Throttle(Protocol):
    async def take(self, channel_type: str, chat: str) -> None: ...

    async def pause(self, channel_type: str, seconds: float) -> None: ...

    async def close(self) -> None: ...


class Bucket:
    """A token bucket of one channel type in this process: ``rate`` sends a second."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def take(self) -> None:
        async with self._lock:
            now = time.monotonic()
            wait = self._next - now
            self._next = max(now, self._next) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)

    def pause(self, seconds: float) -> None:
        """The platform said «too many requests»: nobody of this type for a while."""
        self._next = max(self._next, time.monotonic() + seconds)


class LocalThrottle:
    def __init__(self, rates: dict[str, float], per_chat: float, default: float = 10.0) -> None:
        self.rates = rates
        self.default = default
        self.per_chat = per_chat
        self.buckets: dict[str, Bucket] = {}
        self._chats: dict[tuple[str, str], float] = {}

    def bucket(self, channel_type: str) -> Bucket:
        if channel_type not in self.buckets:
            self.buckets[channel_type] = Bucket(self.rates.get(channel_type, self.default))
        return self.buckets[channel_type]

    async def take(self, channel_type: str, chat: str) -> None:
        if self.per_chat > 0:
            key = (channel_type, chat)
            now = time.monotonic()
            last = self._chats.get(key)
            if last is not None and now - last < self.per_chat:
                await asyncio.sleep(self.per_chat - (now - last))
            self._chats[key] = time.monotonic()
            if len(self._chats) > _LOCAL_CHATS:
                cutoff = time.monotonic() - self.per_chat
                self._chats = {k: v for k, v in self._chats.items() if v >= cutoff}
        await self.bucket(channel_type).take()

    async def pause(self, channel_type: str, seconds: float) -> None:
        self.bucket(channel_type).pause(seconds)

    async def close(self) -> None:
        return None


class RedisThrottle:
    """The window shared through Redis; ``fallback`` while Redis does not answer."""

    def __init__(
        self,
        url: str,
        rates: dict[str, float],
        per_chat: float,
        *,
        default: float = 10.0,
        prefix: str = PREFIX,
        client: Any = None,
    ) -> None:
        from redis import asyncio as aioredis

        self.redis: Any = client or aioredis.from_url(url)
        self._own = client is None
        self.rates = rates
        self.default = default
        self.per_chat_ms = int(per_chat * 1000)
        self.prefix = prefix
        self.fallback = LocalThrottle(rates, per_chat, default)
        self._script = self.redis.register_script(_SCRIPT)
        self._warned = False

    def _rate(self, channel_type: str) -> int:
        # A fractional rate below one a second still lets one through each window.
        return max(1, int(self.rates.get(channel_type, self.default)))

    async def attempt(self, channel_type: str, chat: str) -> int:
        """One question to Redis: 0 when this send may go now (and it is counted),
        else the milliseconds to wait before asking again."""
        keys = [
            f"{self.prefix}{channel_type}:window",
            f"{self.prefix}{channel_type}:pause",
            f"{self.prefix}{channel_type}:chat:{chat}",
        ]
        return int(await self._script(keys=keys, args=[self._rate(channel_type), self.per_chat_ms]))

    async def take(self, channel_type: str, chat: str) -> None:
        while True:
            try:
                wait_ms = await self.attempt(channel_type, chat)
            except Exception as exc:
                if not self._warned:
                    log.warning("reminders: Redis throttle unavailable, pacing locally: %s", exc)
                    self._warned = True
                await self.fallback.take(channel_type, chat)
                return
            self._warned = False
            if wait_ms <= 0:
                return
            await asyncio.sleep(min(wait_ms / 1000, _MAX_WAIT))

    async def pause(self, channel_type: str, seconds: float) -> None:
        await self.fallback.pause(channel_type, seconds)
        try:
            await self.redis.set(
                f"{self.prefix}{channel_type}:pause", "1", px=max(1, int(seconds * 1000))
            )
        except Exception as exc:
            log.warning("reminders: could not share a platform's pause through Redis: %s", exc)

    async def close(self) -> None:
        if self._own:
            await self.redis.aclose()


def build_throttle(
    redis_url: str, rates: dict[str, float], per_chat: float, shared: bool = True
) -> Throttle:
    if redis_url and shared:
        return RedisThrottle(redis_url, rates, per_chat)
    return LocalThrottle(rates, per_chat)
