"""The background loop under the outbox, the event consumers, the desk and the fetcher:
woken by the bus, repeating while there is work, outliving a failed pass, stopping clean."""

from __future__ import annotations

import asyncio
import logging

import pytest

from abonent.core.bus import LocalBus
from abonent.core.events import Event
from abonent.core.worker import Worker

log = logging.getLogger("test.worker")


class Counting(Worker):
    """Passes are counted; ``busy`` passes say there is more; ``fail`` passes raise."""

    def __init__(self, bus: LocalBus, *, eager: bool = False, poll: float = 60.0) -> None:
        super().__init__(
            bus,
            {"work"},
            name="counting",
            poll=poll,
            logger=log,
            failure="pass failed",
            eager=eager,
        )
        self.passes = 0
        self.busy = 0
        self.fail = 0
        self.done = asyncio.Event()

    async def _step(self) -> bool:
        self.passes += 1
        self.done.set()
        if self.fail:
            self.fail -= 1
            raise RuntimeError("boom")
        if self.busy:
            self.busy -= 1
            return True
        return False


async def _passes_after(worker: Counting) -> int:
    """Passes once one has run and any that follow at once have too."""
    await asyncio.wait_for(worker.done.wait(), 2)
    await asyncio.sleep(0.05)
    return worker.passes


async def test_an_event_wakes_it_and_it_goes_on_while_there_is_work() -> None:
    bus = LocalBus()
    worker = Counting(bus)
    worker.busy = 2
    await worker.start()
    await asyncio.sleep(0.05)
    assert worker.passes == 0  # not eager: it waits for work
    await bus.publish(Event("other", {}))
    await asyncio.sleep(0.05)
    assert worker.passes == 0  # not one of its types
    await bus.publish(Event("work", {}))
    assert await _passes_after(worker) == 3  # two busy passes, then the one that found none
    await worker.stop()


async def test_an_eager_worker_looks_at_once_and_the_poll_wakes_it() -> None:
    worker = Counting(LocalBus(), eager=True, poll=0.2)
    await worker.start()
    await asyncio.wait_for(worker.done.wait(), 2)
    assert worker.passes == 1  # before any poll could have come
    deadline = asyncio.get_running_loop().time() + 5
    while worker.passes < 3:  # nothing on the bus: the poll alone brings these
        assert asyncio.get_running_loop().time() < deadline
        await asyncio.sleep(0.05)
    await worker.stop()


async def test_a_failed_pass_is_logged_and_the_loop_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bus = LocalBus()
    worker = Counting(bus, eager=True)
    worker.fail = 1
    worker.busy = 5  # a failure ends the run of passes: the next waits for a wake-up
    with caplog.at_level(logging.ERROR, logger="test.worker"):
        await worker.start()
        assert await _passes_after(worker) == 1
    [record] = [r for r in caplog.records if r.name == "test.worker"]
    assert record.getMessage() == "pass failed" and record.exc_info is not None
    worker.done.clear()
    worker.wake()
    assert await _passes_after(worker) == 7
    await worker.stop()


async def test_stopping_cancels_the_loop_and_leaves_the_bus() -> None:
    bus = LocalBus()
    worker = Counting(bus)
    await worker.start()
    await worker.stop()
    assert worker._task is not None and worker._task.done()
    await bus.publish(Event("work", {}))
    await asyncio.sleep(0.05)
    assert worker.passes == 0
    await Counting(bus).stop()  # never started: nothing to cancel
