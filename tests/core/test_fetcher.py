"""The attachment fetcher shared by several processes: a file whose process died is
fetched by another once its lease is over, and a file two processes fetched at once is
stored once, with no stray copy left on disk."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from abonent import clock
from abonent.core.attachments import FETCH_LEASE, Fetched, Fetcher, Store
from abonent.core.bus import LocalBus
from abonent.core.pipeline import Pipeline, Turn, TurnOutcome
from abonent.core.types import InboundMessage, RemoteFile
from abonent.db.models import Attachment
from abonent.db.session import Database
from support import Clock, picture

PHOTO = picture((40, 30), (10, 120, 30))


class Platform:
    """A messenger's file download: ``gate`` holds the download until it is set."""

    id = "tg"

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.gate = gate
        self.downloads = 0

    async def fetch_file(self, remote: dict[str, Any], max_bytes: int) -> Fetched:
        self.downloads += 1
        if self.gate is not None:
            await self.gate.wait()
        return Fetched(PHOTO, "photo.jpg")


class Silent:
    async def handle(self, turn: Turn) -> TurnOutcome:
        return TurnOutcome()


async def _photo_received(db: Database) -> int:
    photo = RemoteFile("image", {"file_id": "f-1"}, "photo.jpg", "image/jpeg", len(PHOTO))
    pipeline = Pipeline(db, LocalBus(), Silent())
    await pipeline.accept(
        InboundMessage(channel_id="tg", external_user_id="u1", text="", files=(photo,))
    )
    await pipeline.drain_all()
    async with db.session() as session:
        return int(await session.scalar(select(Attachment.id)) or 0)


def _fetcher(db: Database, root: Path, platform: Platform) -> Fetcher:
    store = Store(root / "files", 10_000_000)
    return Fetcher(db, LocalBus(), store, {"tg": platform})  # type: ignore[dict-item]


def _files(root: Path) -> list[Path]:
    return [p for p in (root / "files").rglob("*") if p.is_file()]


async def test_a_file_a_dead_process_was_fetching_is_fetched_by_another(
    db: Database, tmp_path: Path
) -> None:
    now = Clock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    clock.set_clock(now)
    att_id = await _photo_received(db)
    dying = _fetcher(db, tmp_path, Platform(gate=asyncio.Event()))
    pass_ = asyncio.create_task(dying.run_once())
    await asyncio.sleep(0.2)
    pass_.cancel()  # the process dies in the middle of the download
    await asyncio.gather(pass_, return_exceptions=True)

    survivor = Platform()
    other = _fetcher(db, tmp_path, survivor)
    now.advance(seconds=FETCH_LEASE.total_seconds() - 5)
    assert not await other.run_once()  # still the other process's
    now.advance(seconds=10)
    assert await other.run_once()
    async with db.session() as session:
        row = await session.get(Attachment, att_id)
    assert row is not None and row.status == "stored" and survivor.downloads == 1
    assert [p.read_bytes() for p in _files(tmp_path)] == [PHOTO]


async def test_two_processes_fetching_one_file_keep_one_copy(db: Database, tmp_path: Path) -> None:
    att_id = await _photo_received(db)
    gate = asyncio.Event()
    slow = _fetcher(db, tmp_path, Platform(gate=gate))
    first = asyncio.create_task(slow.fetch(att_id))  # an operator opened the file here
    await asyncio.sleep(0.1)
    quick = _fetcher(db, tmp_path, Platform())
    stored = await quick.fetch(att_id)  # ... and another operator there
    gate.set()
    again = await first
    assert stored is not None and again is not None
    assert stored.status == again.status == "stored"
    assert again.storage_key == stored.storage_key
    assert [p.name for p in _files(tmp_path)] == [stored.storage_key]


class Queue(Platform):
    """Each download waits for its own gate, in order."""

    def __init__(self, gates: list[asyncio.Event]) -> None:
        super().__init__()
        self.gates = gates

    async def fetch_file(self, remote: dict[str, Any], max_bytes: int) -> Fetched:
        gate = self.gates[self.downloads]
        self.downloads += 1
        await gate.wait()
        return Fetched(PHOTO, "photo.jpg")


async def test_each_file_is_leased_from_when_its_own_download_starts(
    db: Database, tmp_path: Path
) -> None:
    """One pass takes several files and fetches them one after another: a slow first
    download must not let the lease of the next run out while this process lives."""
    now = Clock(datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
    clock.set_clock(now)
    photos = tuple(
        RemoteFile("image", {"file_id": f"f-{i}"}, "photo.jpg", "image/jpeg", len(PHOTO))
        for i in (1, 2)
    )
    pipeline = Pipeline(db, LocalBus(), Silent())
    await pipeline.accept(
        InboundMessage(channel_id="tg", external_user_id="u1", text="", files=photos)
    )
    await pipeline.drain_all()
    gates = [asyncio.Event(), asyncio.Event()]
    busy = _fetcher(db, tmp_path, Queue(gates))
    pass_ = asyncio.create_task(busy.run_once())
    await asyncio.sleep(0.1)
    now.advance(seconds=FETCH_LEASE.total_seconds() - 10)  # the first download is slow
    gates[0].set()
    await asyncio.sleep(0.1)  # ... the second one has started
    now.advance(seconds=20)  # past the lease the pass took both files with
    other = Platform()
    assert not await _fetcher(db, tmp_path, other).run_once()
    gates[1].set()
    assert await pass_
    assert other.downloads == 0
    async with db.session() as session:
        rows = list(await session.scalars(select(Attachment)))
    assert [r.status for r in rows] == ["stored", "stored"]
