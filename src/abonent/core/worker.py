"""The background loop shared by the outbox sender, the event consumers, the operators'
desk and the attachment fetcher.

Each of them is woken by events on the bus and also polls, because the work may come
from another process without a bus (no Redis) or while the loop was busy. They must
all stop the same way (off the bus first, so a late event wakes nothing, then cancelled
and awaited) and must outlive a failed pass: an exception is logged and the next
wake-up or poll tries again, since a dead task would stop the work silently until a
restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from abonent.core.bus import LocalBus
from abonent.core.events import Event


class Worker:
    """A subclass gives ``_step`` and its own timing: ``poll`` is the longest sleep
    without a wake-up, ``gather`` a pause after one so that a burst is taken at once."""

    def __init__(
        self,
        bus: LocalBus,
        types: set[str] | None,
        *,
        name: str,
        poll: float,
        logger: logging.Logger,
        failure: str,
        gather: float = 0.0,
        eager: bool = False,
    ) -> None:
        self.poll = poll
        self.gather = gather
        self._name = name
        self._log = logger
        self._failure = failure
        # Work may have piled up while no process ran the loop: look at once on start.
        self._eager = eager
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # An empty set of types: nothing on the bus means work, the loop only polls.
        self._unsubscribe = (
            bus.subscribe(self._on_event, types) if types is None or types else lambda: None
        )

    def _on_event(self, event: Event) -> None:
        """A subclass narrows this where only some events of its types mean work."""
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        if self._eager:
            self._wake.set()
        self._task = asyncio.create_task(self._run(), name=self._name)

    async def stop(self) -> None:
        self._unsubscribe()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _step(self) -> bool:
        """One pass; True when there may be more, so the loop goes again without waiting."""
        raise NotImplementedError

    async def _run(self) -> None:
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 a wake-up arriving with the
            # cancellation of ``stop`` could leave wait_for's inner task pending forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.poll):
                    await self._wake.wait()
            self._wake.clear()
            if self.gather > 0:
                await asyncio.sleep(self.gather)
            try:
                while await self._step():
                    pass
            except asyncio.CancelledError:
                raise
            except Exception:
                self._log.exception(self._failure)
