"""One long word must not freeze the chat centre: while web-chat customers post
4,096-character words (the public limit, no sign-in needed), ``/healthz`` keeps
answering within 100 ms. The consultant reads at most a word's first 40 letters, and
parses on a worker thread (bot/engine.py). The one latency assert the issue asks for:
the worst of many probes, against a generous bound, to stay robust on a busy CI box."""

from __future__ import annotations

import asyncio
import time

import httpx

from channels.conftest import settle
from fuzz.hub import Hub

WORD = ("абвгдежзиклмнопрстуфхцчшщэюя" * 200)[:4096]
CUSTOMERS = 6
MESSAGES = 4


async def _customer(http: httpx.AsyncClient, api: str) -> int:
    r = await http.post(f"{api}/conversations", json={})
    auth = {"Authorization": f"Bearer {r.json()['token']}"}
    for n in range(MESSAGES):
        r = await http.post(f"{api}/messages", json={"text": WORD[n:] + WORD[:n]}, headers=auth)
        assert r.status_code == 202, r.text
        await asyncio.sleep(0.01)
    return 1


async def _probe(http: httpx.AsyncClient, url: str, until: asyncio.Event) -> list[float]:
    took: list[float] = []
    while not until.is_set():
        started = time.perf_counter()
        r = await http.get(f"{url}/healthz")
        took.append(time.perf_counter() - started)
        assert r.status_code == 200
        await asyncio.sleep(0.01)
    return took


async def test_healthz_answers_while_long_words_are_parsed(hub: Hub) -> None:
    api = f"{hub.url}/api/client/v1"
    done = asyncio.Event()
    async with httpx.AsyncClient(timeout=30) as http, httpx.AsyncClient(timeout=30) as probe:
        probes = asyncio.create_task(_probe(probe, hub.url, done))
        await asyncio.gather(*(_customer(http, api) for _ in range(CUSTOMERS)))
        # Keep probing while the turns behind those posts are parsed.
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and hub.server.runtime.pipeline._queues:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        done.set()
        took = await probes
    await asyncio.to_thread(settle, hub.server)
    assert len(took) >= 10
    # The 100 ms figure is bench/fuzz_stall.py's to measure on an idle machine; here, with
    # the suite's other workers on the same cores, the bound only has to catch the stall
    # itself (parsing in the loop held every request for seconds).
    assert max(took) < 1.0, f"/healthz took up to {max(took) * 1000:.0f} ms"
    assert hub.problems_after() == []
