"""Does one long word stall the chat centre, and do the rate limits hold (issue 15)?

Starts the real server in-process on a fresh SQLite file (or ``--database-url``), then:

1. web-chat customers post messages of one long word (4,096 characters, the public
   limit, by default) while a probe measures ``/healthz`` every 10 ms: latency
   percentiles of the probe, and how long the posts took;
2. with ``[rate_limits]`` as configured by default (loopback not exempt here), 40
   parallel posts from one client to one conversation: how many were answered 429.

    .venv/bin/python bench/fuzz_stall.py
    .venv/bin/python bench/fuzz_stall.py --customers 10 --messages 8 --word 20000
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from abonent.app import create_app, load_understanding
from abonent.config import Settings
from abonent.db.migrate import upgrade


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def long_words(url: str, customers: int, messages: int, size: int) -> None:
    word = ("абвгдежзиклмнопрстуфхцчшщэюя" * (size // 28 + 1))[:size]
    api = f"{url}/api/client/v1"
    took: list[float] = []
    done = asyncio.Event()

    async def probe(http: httpx.AsyncClient) -> None:
        while not done.is_set():
            started = time.perf_counter()
            await http.get(f"{url}/healthz")
            took.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)

    async def customer(http: httpx.AsyncClient) -> int:
        r = await http.post(f"{api}/conversations", json={})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        refused = 0
        for n in range(messages):
            text = word[n:] + word[:n]
            r = await http.post(f"{api}/messages", json={"text": text[:size]}, headers=auth)
            refused += r.status_code != 202
        return refused

    async with httpx.AsyncClient(timeout=60) as http, httpx.AsyncClient(timeout=60) as ping:
        prober = asyncio.create_task(probe(ping))
        started = time.perf_counter()
        refused = await asyncio.gather(*(customer(http) for _ in range(customers)))
        posting = time.perf_counter() - started
        await asyncio.sleep(2.0)  # the turns behind the last posts are parsed meanwhile
        done.set()
        await prober
    ms = [t * 1000 for t in took]
    print(
        f"long words: {customers} customers x {messages} messages of a {size}-character "
        f"word in {posting:.2f} s ({sum(refused)} not accepted)"
    )
    print(
        f"  /healthz over {len(ms)} probes: p50 {statistics.median(ms):.1f} ms, "
        f"p90 {percentile(ms, 90):.1f} ms, p99 {percentile(ms, 99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )


async def burst(url: str, count: int) -> None:
    api = f"{url}/api/client/v1"
    async with httpx.AsyncClient(timeout=60) as http:
        r = await http.post(f"{api}/conversations", json={})
        auth = {"Authorization": f"Bearer {r.json()['token']}"}
        started = time.perf_counter()
        answers = await asyncio.gather(
            *(
                http.post(f"{api}/messages", json={"text": f"вопрос {n}"}, headers=auth)
                for n in range(count)
            )
        )
        took = time.perf_counter() - started
    codes = [a.status_code for a in answers]
    retry = sorted({a.headers.get("retry-after") for a in answers if a.status_code == 429})
    print(
        f"burst: {count} parallel posts from one client in {took:.2f} s: "
        f"{codes.count(202)} accepted, {codes.count(429)} answered 429 (Retry-After {retry})"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=6)
    p.add_argument("--messages", type=int, default=5)
    p.add_argument("--word", type=int, default=4096, help="characters of the one word")
    p.add_argument("--burst", type=int, default=40)
    p.add_argument("--rounds", type=int, default=1, help="repeat the long-word run")
    p.add_argument("--database-url", default="")
    p.add_argument("--port", type=int, default=8765)
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="abonent-stall-"))
    url = args.database_url or f"sqlite+aiosqlite:///{folder / 'abonent.db'}"
    settings = Settings(
        database_url=url,
        rate_limits={
            "exempt": [],
            "conversations": "1000/minute",
            "messages_per_address": "1000/minute",
        },
    )

    async def migrate() -> None:
        from sqlalchemy.ext.asyncio import create_async_engine

        engine = create_async_engine(url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(migrate())
    understanding = load_understanding()
    understanding[0].parse("как оплатить счёт за электроэнергию")  # loads the encoder
    app = create_app(settings, understanding=understanding)
    server = uvicorn.Server(uvicorn.Config(app, port=args.port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{args.port}"
    try:
        print("warm-up (short words, not a figure):")
        asyncio.run(long_words(base, 2, 2, 12))
        for _ in range(args.rounds):
            asyncio.run(long_words(base, args.customers, args.messages, args.word))
        asyncio.run(burst(base, args.burst))
    finally:
        server.should_exit = True
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
