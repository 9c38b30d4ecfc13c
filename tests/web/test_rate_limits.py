"""Rate limits of the public endpoints (``[rate_limits]``): per client address and per
conversation, a 429 in the API's error format with ``Retry-After``, counted for
Prometheus, and shared between processes through Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.requests import Request

from abonent.config import RateLimitSettings
from abonent.web.errors import ApiError
from abonent.web.ratelimit import RateLimiter
from conftest import require_redis
from support import PASSWORD, LiveServer, make_settings, seed_users

STRICT = {
    "exempt": [],
    "conversations": "3/minute",
    "messages_per_address": "100/minute",
    "messages_per_conversation": "20/minute",
    "links": "2/minute",
    "sign_in": "2/minute",
}


@pytest.fixture
def limited(fresh_database_url: str) -> Iterator[LiveServer]:
    seed_users(fresh_database_url, {"anna": {"name": "Анна"}})
    server = LiveServer(make_settings(fresh_database_url, rate_limits=STRICT)).start()
    try:
        yield server
    finally:
        server.stop()


def assert_limited(r: httpx.Response) -> None:
    assert r.status_code == 429, r.text
    assert r.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(r.headers["retry-after"]) <= 60


async def test_forty_parallel_posts_meet_a_429(limited: LiveServer) -> None:
    api = f"{limited.url}/api/client/v1"
    async with httpx.AsyncClient(timeout=30) as http:
        r = await http.post(f"{api}/conversations", json={})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        answers = await asyncio.gather(
            *(
                http.post(f"{api}/messages", json={"text": f"вопрос {n}"}, headers=auth)
                for n in range(40)
            )
        )
        codes = sorted(a.status_code for a in answers)
        assert codes.count(202) == 20 and codes.count(429) == 20, codes
        for answer in answers:
            if answer.status_code == 429:
                assert_limited(answer)
                # The widget on another site can read it: CORS headers are on the 429 too.
        r = await http.post(
            f"{api}/messages",
            json={"text": "ещё"},
            headers={**auth, "Origin": "https://energo.example"},
        )
        assert_limited(r)
        assert r.headers["access-control-allow-origin"] == "*"
        metrics = (await http.get(f"{limited.url}/metrics")).text
    assert 'abonent_rate_limited_total{endpoint="messages",scope="conversation"} 21.0' in metrics


async def test_new_conversations_sign_in_and_links_per_address(limited: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=limited.url, timeout=30) as http:
        made = [await http.post("/api/client/v1/conversations", json={}) for _ in range(4)]
        assert [r.status_code for r in made[:3]] == [201, 201, 201]
        assert_limited(made[3])
        logins = [
            await http.post("/api/workspace/v1/login", json={"login": "anna", "password": "wrong"})
            for _ in range(3)
        ]
        assert [r.status_code for r in logins[:2]] != [429, 429]
        assert_limited(logins[2])
        # Even the right password waits: a guesser learns nothing from the 429.
        r = await http.post("/api/workspace/v1/login", json={"login": "anna", "password": PASSWORD})
        assert_limited(r)
        links = [await http.get("/r/nosuchtoken", follow_redirects=False) for _ in range(3)]
        assert [r.status_code for r in links] == [404, 404, 429]


async def test_trusted_proxy_forwards_the_client_address(fresh_database_url: str) -> None:
    rules: dict[str, Any] = {
        **STRICT,
        "trusted_proxies": ["127.0.0.1"],
        "conversations": "1/minute",
    }
    server = LiveServer(make_settings(fresh_database_url, rate_limits=rules)).start()
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:

            async def start(forwarded: str) -> int:
                headers = {"X-Forwarded-For": forwarded}
                r = await http.post("/api/client/v1/conversations", json={}, headers=headers)
                return r.status_code

            # Each customer behind the proxy has their own window …
            assert await start("203.0.113.7") == 201
            assert await start("203.0.113.8") == 201
            assert await start("203.0.113.7") == 429
            # … and what a client writes in front of the proxy's own entry is ignored.
            assert await start("198.51.100.1, 203.0.113.8") == 429
    finally:
        server.stop()


def _request(address: str) -> Request:
    return Request({"type": "http", "client": (address, 1234), "headers": [], "path": "/"})


@pytest.mark.services
async def test_redis_shares_the_windows_between_processes() -> None:
    url = require_redis()
    rules = RateLimitSettings(exempt=[], conversations="5/minute")
    one, two = RateLimiter(rules, url), RateLimiter(rules, url)
    address = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1"
    try:
        for limiter in (one, two, one, two, one):
            await limiter.check(_request(address), "conversations")
        with pytest.raises(ApiError) as refused:
            await two.check(_request(address), "conversations")
        assert refused.value.status == 429 and "Retry-After" in refused.value.headers
    finally:
        await one.close()
        await two.close()
