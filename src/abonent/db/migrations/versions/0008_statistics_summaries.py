"""statistics summaries

The reports over long periods read summaries instead of every fact: the counters by
month (``stats_monthly``) and by hour over every channel (``stats_hourly``), each day's
response delays packed in a row per kind and operator and its queue waits in a row per
outcome and channel (``stats_response_values``, ``stats_queue_wait_values``), and the
customer days counted per channel, day and previous day (``stats_customer_counts``).
They are filled here from the rollups already kept, so no ``abonent stats rebuild`` is
needed. And an index on the conversations by id and day: a topic's conversations (found
by id) are checked and sorted from it, not from their rows.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 17:00:00.000000
"""

import sys
from array import array
from collections.abc import Iterator, Sequence
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAGE = 1000


def upgrade() -> None:
    op.create_table(
        "stats_hourly",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "day", "hour"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_monthly",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "month", "channel", "user_id", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_customer_counts",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("prev_day", sa.Date(), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("first_n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "day", "prev_day"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_queue_wait_values",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("seconds", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("day", "outcome", "channel"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_response_values",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("seconds", sa.LargeBinary(), nullable=False),
        sa.Column("work_seconds", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("day", "kind", "user_id"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_stats_conversations_id_day",
        "stats_conversations",
        ["conversation_id", "day", "started_at"],
        unique=False,
    )
    _fill()


def _pack(values: list[float]) -> bytes:
    """As ``analytics.summaries.pack`` (copied: a migration must not change with it)."""
    data = array("d", sorted(values))
    if sys.byteorder == "big":
        data.byteswap()
    return data.tobytes()


def _pages(rows: Iterator[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    page: list[dict[str, Any]] = []
    for row in rows:
        page.append(row)
        if len(page) >= _PAGE:
            yield page
            page = []
    if page:
        yield page


def _fill() -> None:
    bind = op.get_bind()
    counts = sa.table(
        "stats_counts",
        sa.column("metric", sa.String),
        sa.column("day", sa.Date),
        sa.column("hour", sa.SmallInteger),
        sa.column("n", sa.BigInteger),
    )
    hourly = sa.table(
        "stats_hourly",
        sa.column("metric", sa.String),
        sa.column("day", sa.Date),
        sa.column("hour", sa.SmallInteger),
        sa.column("n", sa.BigInteger),
    )
    h = counts.c
    bind.execute(
        hourly.insert().from_select(
            ["metric", "day", "hour", "n"],
            sa.select(h.metric, h.day, h.hour, sa.func.sum(h.n)).group_by(h.metric, h.day, h.hour),
        )
    )
    daily = sa.table(
        "stats_daily",
        sa.column("metric", sa.String),
        sa.column("day", sa.Date),
        sa.column("channel", sa.String),
        sa.column("user_id", sa.BigInteger),
        sa.column("key", sa.String),
        sa.column("n", sa.BigInteger),
        sa.column("total", sa.Float),
    )
    monthly = sa.table(
        "stats_monthly",
        sa.column("metric", sa.String),
        sa.column("month", sa.Date),
        sa.column("channel", sa.String),
        sa.column("user_id", sa.BigInteger),
        sa.column("key", sa.String),
        sa.column("n", sa.BigInteger),
        sa.column("total", sa.Float),
    )
    d = daily.c
    month: sa.ColumnElement[Any] = (
        sa.cast(sa.func.date_trunc("month", d.day), sa.Date)
        if bind.dialect.name == "postgresql"
        else sa.func.date(d.day, "start of month")
    )
    bind.execute(
        monthly.insert().from_select(
            ["metric", "month", "channel", "user_id", "key", "n", "total"],
            sa.select(
                d.metric, month, d.channel, d.user_id, d.key, sa.func.sum(d.n), sa.func.sum(d.total)
            ).group_by(d.metric, month, d.channel, d.user_id, d.key),
        )
    )

    days = sa.table(
        "stats_customer_days",
        sa.column("channel", sa.String),
        sa.column("day", sa.Date),
        sa.column("prev_day", sa.Date),
        sa.column("first_day", sa.Date),
    )
    counts = sa.table(
        "stats_customer_counts",
        sa.column("channel", sa.String),
        sa.column("day", sa.Date),
        sa.column("prev_day", sa.Date),
        sa.column("n", sa.BigInteger),
        sa.column("first_n", sa.BigInteger),
    )
    prev = sa.func.coalesce(days.c.prev_day, days.c.day)
    bind.execute(
        counts.insert().from_select(
            ["channel", "day", "prev_day", "n", "first_n"],
            sa.select(
                days.c.channel,
                days.c.day,
                prev,
                sa.func.count(),
                sa.func.count(sa.case((days.c.prev_day == days.c.first_day, 1))),
            ).group_by(days.c.channel, days.c.day, prev),
        )
    )

    responses = sa.table(
        "stats_responses",
        sa.column("day", sa.Date),
        sa.column("kind", sa.String),
        sa.column("user_id", sa.BigInteger),
        sa.column("channel", sa.String),
        sa.column("seconds", sa.Float),
        sa.column("work_seconds", sa.Float),
    )
    response_values = sa.table(
        "stats_response_values",
        sa.column("day", sa.Date),
        sa.column("kind", sa.String),
        sa.column("user_id", sa.BigInteger),
        sa.column("channels", sa.JSON),
        sa.column("seconds", sa.LargeBinary),
        sa.column("work_seconds", sa.LargeBinary),
    )
    r = responses.c
    found = bind.execute(
        sa.select(r.day, r.kind, r.user_id, r.channel, r.seconds, r.work_seconds).order_by(
            r.day, r.kind, r.user_id
        )
    )

    def response_rows() -> Iterator[dict[str, Any]]:
        """As ``analytics.summaries.response_row``: channel after channel, each sorted."""
        for (day, kind, user), group in groupby(found, key=lambda row: tuple(row[:3])):
            channels: dict[str, tuple[list[float], list[float]]] = {}
            for row in group:
                lists = channels.setdefault(row[3], ([], []))
                lists[0].append(float(row[4]))
                lists[1].append(float(row[5]))
            order = sorted(channels)
            yield {
                "day": day,
                "kind": kind,
                "user_id": user,
                "channels": [[c, len(channels[c][0])] for c in order],
                "seconds": b"".join(_pack(channels[c][0]) for c in order),
                "work_seconds": b"".join(_pack(channels[c][1]) for c in order),
            }

    for page in _pages(response_rows()):
        bind.execute(response_values.insert(), page)

    waits = sa.table(
        "stats_queue_waits",
        sa.column("day", sa.Date),
        sa.column("outcome", sa.String),
        sa.column("channel", sa.String),
        sa.column("seconds", sa.Float),
    )
    wait_values = sa.table(
        "stats_queue_wait_values",
        sa.column("day", sa.Date),
        sa.column("outcome", sa.String),
        sa.column("channel", sa.String),
        sa.column("seconds", sa.LargeBinary),
    )
    w = waits.c
    found = bind.execute(
        sa.select(w.day, w.outcome, w.channel, w.seconds).order_by(w.day, w.outcome, w.channel)
    )

    def wait_rows() -> Iterator[dict[str, Any]]:
        for (day, outcome, channel), group in groupby(found, key=lambda row: tuple(row[:3])):
            yield {
                "day": day,
                "outcome": outcome,
                "channel": channel,
                "seconds": _pack([float(row[3]) for row in group]),
            }

    for page in _pages(wait_rows()):
        bind.execute(wait_values.insert(), page)


def downgrade() -> None:
    op.drop_index("ix_stats_conversations_id_day", table_name="stats_conversations")
    op.drop_table("stats_hourly")
    op.drop_table("stats_monthly")
    op.drop_table("stats_response_values")
    op.drop_table("stats_queue_wait_values")
    op.drop_table("stats_customer_counts")
