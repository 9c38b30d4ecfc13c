"""A company's webhook receiver: a real HTTP server on 127.0.0.1 recording every POST.

It answers 200 unless scripted otherwise: ``answer_next`` queues replies (500s, a 429
with Retry-After, a 410) for the next requests in order, ``always`` sets the reply for
every request after those, ``delay`` makes it slow (asleep without blocking its loop,
so the product's timeout is what ends the request).
"""

from __future__ import annotations

import asyncio
import threading
import time

from starlette.requests import Request
from starlette.responses import Response

from fakes.base import FakePlatform, Recorded, Reply

PATH = "/hooks/abonent"


class FakeWebhookReceiver(FakePlatform):
    def __init__(self) -> None:
        super().__init__()
        self.endpoint = f"{self.url}{PATH}"
        self.delay = 0.0
        self.default = Reply(200, {"ok": True})
        self._script: list[Reply] = []
        self._script_lock = threading.Lock()

    def start(self) -> FakeWebhookReceiver:
        super().start()
        return self

    def answer_next(self, *replies: Reply) -> None:
        with self._script_lock:
            self._script.extend(replies)

    def always(self, reply: Reply) -> None:
        self.default = reply

    async def _endpoint(self, request: Request) -> Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        return await super()._endpoint(request)

    def api(self, request: Recorded) -> Reply:
        if request.method != "POST" or request.path != PATH:
            return Reply(404, {"error": "not found"})
        with self._script_lock:
            if self._script:
                return self._script.pop(0)
        return self.default

    @property
    def posts(self) -> list[Recorded]:
        return self.calls(PATH)

    def wait_posts(self, count: int, timeout: float = 15.0) -> list[Recorded]:
        return self.wait_for(PATH, count, timeout)

    def quiet_for(self, seconds: float) -> int:
        """Wait ``seconds``; how many requests arrived meanwhile."""
        before = len(self.posts)
        time.sleep(seconds)
        return len(self.posts) - before
