"""Rate limits on the public endpoints: fixed windows per client address and per
conversation, over the limit a 429 with ``Retry-After`` in the API's error format.

Counted in Redis when ``redis_url`` is set (one ``INCR`` + ``EXPIRE`` per check, in one
round trip: several server processes share the windows), in this process's memory
otherwise. A Redis that does not answer lets the request through (logged): the limits
protect the service, they must not become its single point of failure.

The client's address is the TCP peer, or, when the peer is one of ``trusted_proxies``,
the right-most address of ``X-Forwarded-For`` that is not itself a trusted proxy (the
left-most entries are whatever the client chose to write).
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request

from abonent.config import RateLimitSettings, parse_rate
from abonent.web.errors import ApiError

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Rule name → the ``[rate_limits]`` field that sets it.
RULES = {
    "conversations": "conversations",
    "messages:address": "messages_per_address",
    "messages:conversation": "messages_per_conversation",
    "links": "links",
    "sign_in": "sign_in",
}


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    retry_after: int = 0  # seconds until the window ends


class MemoryWindows:
    """Fixed windows in a dict; a window's counters are dropped once it has passed."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._counts: dict[tuple[str, int], int] = {}
        self._clock = clock
        self._swept = 0.0

    async def hit(self, key: str, limit: int, seconds: int) -> Verdict:
        now = self._clock()
        window = int(now // seconds)
        if now - self._swept > 60:
            self._sweep(now)
        count = self._counts.get((f"{seconds}:{key}", window), 0) + 1
        self._counts[(f"{seconds}:{key}", window)] = count
        return _verdict(count, limit, seconds, now)

    def _sweep(self, now: float) -> None:
        self._swept = now
        for name, window in list(self._counts):
            seconds = int(name.split(":", 1)[0])
            if (window + 1) * seconds < now:
                del self._counts[(name, window)]


class RedisWindows:
    """The same windows in Redis, shared by every process of the deployment."""

    def __init__(self, url: str, clock: Callable[[], float] = time.time) -> None:
        from redis import asyncio as aioredis

        self._redis: Any = aioredis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
        self._clock = clock
        self._warned = 0.0

    async def hit(self, key: str, limit: int, seconds: int) -> Verdict:
        now = self._clock()
        window = int(now // seconds)
        name = f"abonent:rl:{seconds}:{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.incr(name)
                pipe.expire(name, seconds + 1)
                count, _ = await pipe.execute()
        except Exception as exc:  # Redis down or slow: never the reason for a refusal
            if now - self._warned > 60:
                self._warned = now
                log.warning("rate limits: Redis unavailable (%s); not limiting", type(exc).__name__)
            return Verdict(True)
        return _verdict(int(count), limit, seconds, now)

    async def close(self) -> None:
        await self._redis.aclose()


def _verdict(count: int, limit: int, seconds: int, now: float) -> Verdict:
    if count <= limit:
        return Verdict(True)
    end = (int(now // seconds) + 1) * seconds
    return Verdict(False, max(1, math.ceil(end - now)))


class RateLimiter:
    def __init__(self, settings: RateLimitSettings, redis_url: str = "") -> None:
        self.settings = settings
        self.rules = {name: parse_rate(getattr(settings, field)) for name, field in RULES.items()}
        self.trusted = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self.exempt = [ipaddress.ip_network(n, strict=False) for n in settings.exempt]
        self.windows: MemoryWindows | RedisWindows = (
            RedisWindows(redis_url) if redis_url else MemoryWindows()
        )
        # Set by the app: counts each refusal (endpoint, scope) for Prometheus.
        self.on_limited: Callable[[str, str], None] = lambda endpoint, scope: None

    def client_address(self, request: Request) -> str:
        peer = request.client.host if request.client else ""
        if not self.trusted or not _within(peer, self.trusted):
            return peer
        forwarded = request.headers.get("x-forwarded-for", "")
        for hop in reversed([h.strip() for h in forwarded.split(",") if h.strip()]):
            if not _within(hop, self.trusted):
                return hop if _parses(hop) else peer
        return peer

    async def check(self, request: Request, rule: str, *, conversation: int | None = None) -> None:
        """Count this request against ``rule`` (per address, or per ``conversation``);
        over the limit, raise the 429."""
        if not self.settings.enabled:
            return
        address = self.client_address(request)
        if _within(address, self.exempt):
            return
        limit, seconds = self.rules[rule]
        if limit <= 0:
            return
        scope = "conversation" if conversation is not None else "address"
        key = f"{rule}:{conversation if conversation is not None else address}"
        verdict = await self.windows.hit(key, limit, seconds)
        if verdict.allowed:
            return
        endpoint = rule.split(":", 1)[0]
        self.on_limited(endpoint, scope)
        log.info("rate limit %s hit (%s), retry after %ds", rule, scope, verdict.retry_after)
        raise ApiError(
            429,
            "rate_limited",
            "Too many requests; try again in a little while.",
            headers={"Retry-After": str(verdict.retry_after)},
            retry_after=verdict.retry_after,
        )

    async def close(self) -> None:
        if isinstance(self.windows, RedisWindows):
            await self.windows.close()


def _parses(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def _within(address: str, networks: list[Network]) -> bool:
    if not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


def limiter(app: Any) -> RateLimiter:
    """The app's limiter, made on first use from its settings."""
    state = app.state
    found: RateLimiter | None = getattr(state, "rate_limiter", None)
    if found is None:
        runtime = state.runtime
        found = RateLimiter(runtime.settings.rate_limits, runtime.settings.redis_url)
        metrics = runtime.metrics
        found.on_limited = lambda e, s: metrics.rate_limited.labels(e, s).inc()
        state.rate_limiter = found
    return found


# The public endpoints limited per client address (before any route runs; the
# per-conversation limit of a message is counted in its route, which knows the token).
BY_ADDRESS: dict[tuple[str, str], str] = {
    ("POST", "/api/client/v1/conversations"): "conversations",
    ("POST", "/api/client/v1/messages"): "messages:address",
    ("POST", "/api/workspace/v1/login"): "sign_in",
}


def rule_for(method: str, path: str) -> str | None:
    if method == "GET" and path.startswith("/r/"):
        return "links"
    return BY_ADDRESS.get((method, path.rstrip("/") or "/"))


async def limit(request: Request, rule: str, *, conversation: int | None = None) -> None:
    """``await limit(request, "messages:conversation", conversation=id)`` in a route."""
    await limiter(request.app).check(request, rule, conversation=conversation)
