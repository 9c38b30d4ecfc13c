"""Compact summaries kept beside the per-fact rollups, so long periods stay fast.

A quarter of a large utility holds ~100 k response delays and ~45 k queue waits; the
reports used to read every one of them to find medians, and that alone took most of
a 90-day report. So each (day, kind, operator) keeps its delays in one packed row,
channel after channel, each channel's sorted (``stats_response_values``), and each
(day, outcome, channel) its queue waits (``stats_queue_wait_values``). They are exact
copies, not buckets: a report merges a period's rows and computes its percentiles
from every delay, as the README promises.

A summary row is rewritten from its source rows (``stats_responses``,
``stats_queue_waits``) in the transaction that added one of them, so it is by
construction what those rows say, whatever a batch re-applied or a rebuild replayed.
On the message path that is one small indexed read and one upsert, only in a batch
that holds an operator's reply or the end of a queue wait.

Customer days are counted per (channel, day, previous day) as they are inserted
(``stats_customer_counts``): only the rows an insert really added are counted (its
RETURNING), so an event applied twice counts once.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import date
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from abonent.db.models import (
    StatsCustomerCount,
    StatsQueueWait,
    StatsQueueWaitValues,
    StatsResponse,
    StatsResponseValues,
)

ResponseKey = tuple[date, str, int]  # day, kind, user_id
WaitKey = tuple[date, str, str]  # day, outcome, channel
_K = TypeVar("_K", ResponseKey, WaitKey)
VALUE = np.dtype("<f8")  # little-endian float64, whatever the machine
VALUE_SIZE = VALUE.itemsize
Values = npt.NDArray[np.float64]


def pack(values: Iterable[float]) -> bytes:
    """Sorted little-endian float64s: the same bytes on any machine and database."""
    return np.sort(np.fromiter(values, dtype=VALUE)).tobytes()


def unpack(blob: bytes) -> Values:
    """The values of a packed row (read-only: they are the blob's own bytes)."""
    return np.frombuffer(blob, dtype=VALUE)


def _by_day(keys: Iterable[_K]) -> list[tuple[date, list[_K]]]:
    """The keys by their day (the first item): a batch touches a day or two."""
    days: dict[date, list[_K]] = defaultdict(list)
    for key in keys:
        days[key[0]].append(key)
    return sorted(days.items())


@functools.cache
def _upsert(
    dialect: str, table: Any, key: tuple[str, ...], values: tuple[str, ...], add: bool
) -> Any:
    """An upsert that replaces ``values`` (or, with ``add``, adds to them), made once:
    building one costs more than running it with a few rows."""
    stmt = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    return stmt.on_conflict_do_update(
        index_elements=list(key),
        set_={
            c: getattr(table, c) + getattr(stmt.excluded, c) if add else getattr(stmt.excluded, c)
            for c in values
        },
    )


async def refresh_responses(conn: AsyncConnection, keys: Iterable[ResponseKey]) -> None:
    """Rewrite the summary rows of ``keys`` from their ``stats_responses``."""
    found: dict[ResponseKey, dict[str, tuple[list[float], list[float]]]] = {k: {} for k in keys}
    r = StatsResponse
    for day, part in _by_day(found):
        # A list per column (SQLite seeks an index with those; given a list of row
        # values it would scan it); the other combinations they make are left out.
        rows = await conn.execute(
            select(r.kind, r.user_id, r.channel, r.seconds, r.work_seconds).where(
                r.day == day,
                r.user_id.in_(sorted({k[2] for k in part})),
                r.kind.in_(sorted({k[1] for k in part})),
            )
        )
        for kind, user, channel, seconds, work in rows:
            channels = found.get((day, kind, int(user)))
            if channels is not None:
                lists = channels.setdefault(channel, ([], []))
                lists[0].append(float(seconds))
                lists[1].append(float(work))
    if found:
        await conn.execute(
            _upsert(
                conn.dialect.name,
                StatsResponseValues,
                ("day", "kind", "user_id"),
                ("channels", "seconds", "work_seconds"),
                False,
            ),
            [
                {"day": day, "kind": kind, "user_id": user, **response_row(channels)}
                for (day, kind, user), channels in found.items()
            ],
        )


def response_row(channels: dict[str, tuple[list[float], list[float]]]) -> dict[str, Any]:
    """A summary row's columns from each channel's (delays, delays in working hours)."""
    order = sorted(channels)
    return {
        "channels": [[c, len(channels[c][0])] for c in order],
        "seconds": b"".join(pack(channels[c][0]) for c in order),
        "work_seconds": b"".join(pack(channels[c][1]) for c in order),
    }


async def refresh_waits(conn: AsyncConnection, keys: Iterable[WaitKey]) -> None:
    """Rewrite the summary rows of ``keys`` from their ``stats_queue_waits``."""
    found: dict[WaitKey, list[float]] = {k: [] for k in keys}
    w = StatsQueueWait
    for day, part in _by_day(found):
        rows = await conn.execute(
            select(w.outcome, w.channel, w.seconds).where(
                w.day == day,
                w.outcome.in_(sorted({k[1] for k in part})),
                w.channel.in_(sorted({k[2] for k in part})),
            )
        )
        for outcome, channel, seconds in rows:
            values = found.get((day, outcome, channel))
            if values is not None:
                values.append(float(seconds))
    if found:
        await conn.execute(
            _upsert(
                conn.dialect.name,
                StatsQueueWaitValues,
                ("day", "outcome", "channel"),
                ("seconds",),
                False,
            ),
            [
                {"day": day, "outcome": outcome, "channel": channel, "seconds": pack(seconds)}
                for (day, outcome, channel), seconds in found.items()
            ],
        )


async def count_customer_days(conn: AsyncConnection, inserted: Iterable[Sequence[Any]]) -> None:
    """Add the customer days an insert returned (channel, day, prev_day, first_day)."""
    counts: dict[tuple[str, date, date], list[int]] = defaultdict(lambda: [0, 0])
    for channel, day, prev, first in inserted:
        cell = counts[(channel, day, prev if prev is not None else day)]
        cell[0] += 1
        cell[1] += prev is not None and prev == first
    if not counts:
        return
    await conn.execute(
        _upsert(
            conn.dialect.name,
            StatsCustomerCount,
            ("channel", "day", "prev_day"),
            ("n", "first_n"),
            True,
        ),
        [
            {"channel": c, "day": d, "prev_day": p, "n": n, "first_n": f}
            for (c, d, p), (n, f) in counts.items()
        ],
    )
