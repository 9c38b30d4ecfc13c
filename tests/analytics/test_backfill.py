"""An installation whose history predates the event log: the migration carries the
operators' log and link clicks over as events, and ``abonent stats rebuild`` backfills
the rest from messages, conversations, readings, appeals and links."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

from abonent.analytics.rebuild import rebuild
from abonent.analytics.reports import Stats
from abonent.config import Settings
from abonent.db.migrate import alembic_config, upgrade
from abonent.db.models import EventRecord
from abonent.db.session import Database
from conftest import _create_pg_database, _drop_pg_database, _pg_admin_url
from support import PG_URL

T0 = datetime(2026, 10, 5, 10, 0, tzinfo=UTC)  # 13:00 in Moscow, a Monday
DAY = date(2026, 10, 5)
DT = sa.DateTime(timezone=True)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


TABLES = {
    "contacts": [("id", sa.Integer), ("name", sa.String), ("created_at", DT)],
    "channel_identities": [
        ("id", sa.Integer),
        ("contact_id", sa.Integer),
        ("channel_id", sa.String),
        ("external_id", sa.String),
        ("created_at", DT),
    ],
    "conversations": [
        ("id", sa.Integer),
        ("contact_id", sa.Integer),
        ("identity_id", sa.Integer),
        ("channel_id", sa.String),
        ("status", sa.String),
        ("assignee_id", sa.Integer),
        ("bot_state", sa.JSON),
        ("created_at", DT),
        ("updated_at", DT),
        ("queued_at", DT),
        ("first_reply_at", DT),
        ("closed_at", DT),
    ],
    "messages": [
        ("id", sa.Integer),
        ("conversation_id", sa.Integer),
        ("identity_id", sa.Integer),
        ("channel_id", sa.String),
        ("author", sa.String),
        ("author_id", sa.Integer),
        ("text", sa.Text),
        ("payload", sa.String),
        ("meta", sa.JSON),
        ("handled", sa.Boolean),
        ("delivery", sa.String),
        ("created_at", DT),
    ],
    "users": [
        ("id", sa.Integer),
        ("login", sa.String),
        ("name", sa.String),
        ("role", sa.String),
        ("password_hash", sa.String),
        ("active", sa.Boolean),
        ("groups", sa.JSON),
        ("max_chats", sa.Integer),
        ("status", sa.String),
        ("created_at", DT),
    ],
    "operator_events": [
        ("user_id", sa.Integer),
        ("type", sa.String),
        ("conversation_id", sa.Integer),
        ("data", sa.JSON),
        ("at", DT),
    ],
    "tracked_links": [
        ("token", sa.String),
        ("url", sa.Text),
        ("conversation_id", sa.Integer),
        ("intent", sa.String),
        ("channel_id", sa.String),
        ("created_at", DT),
    ],
    "link_clicks": [("token", sa.String), ("clicked_at", DT)],
    "accounts": [
        ("number", sa.String),
        ("holder", sa.String),
        ("address", sa.String),
        ("plan", sa.String),
        ("balance", sa.Numeric),
        ("updated_at", DT),
    ],
    "readings_history": [
        ("account_number", sa.String),
        ("t1", sa.Numeric),
        ("taken_on", sa.Date),
        ("source", sa.String),
        ("conversation_id", sa.Integer),
        ("created_at", DT),
    ],
    "appeals": [
        ("number", sa.String),
        ("conversation_id", sa.Integer),
        ("name", sa.String),
        ("contact", sa.String),
        ("text", sa.Text),
        ("status", sa.String),
        ("created_at", DT),
    ],
}


async def _insert(conn: AsyncConnection, name: str, rows: list[dict[str, Any]]) -> None:
    table = sa.table(name, *(sa.column(c, t) for c, t in TABLES[name]))
    await conn.execute(sa.insert(table), rows)


def _message(i: int, conv: int, author: str, seconds: float, **extra: Any) -> dict[str, Any]:
    row = {
        "id": i,
        "conversation_id": conv,
        "identity_id": conv,
        "channel_id": "webchat" if conv == 1 else "telegram",
        "author": author,
        "author_id": None,
        "text": "…",
        "payload": None,
        "meta": None,
        "handled": True,
        "delivery": None if author == "customer" else "sent",
        "created_at": at(seconds),
    }
    row.update(extra)
    return row


async def _old_history(conn: AsyncConnection) -> None:
    """A day as revision 0003 stored it: no event log yet."""
    await _insert(conn, "contacts", [{"id": i, "name": None, "created_at": T0} for i in (1, 2)])
    await _insert(
        conn,
        "channel_identities",
        [
            {
                "id": 1,
                "contact_id": 1,
                "channel_id": "webchat",
                "external_id": "w1",
                "created_at": T0,
            },
            {
                "id": 2,
                "contact_id": 2,
                "channel_id": "telegram",
                "external_id": "t1",
                "created_at": T0,
            },
        ],
    )
    base = {"bot_state": {}, "created_at": T0, "updated_at": T0, "first_reply_at": None}
    await _insert(
        conn,
        "conversations",
        [
            {
                **base,
                "id": 1,
                "contact_id": 1,
                "identity_id": 1,
                "channel_id": "webchat",
                "status": "closed",
                "assignee_id": 1,
                "queued_at": at(300),
                "closed_at": at(1200),
            },
            {
                **base,
                "id": 2,
                "contact_id": 2,
                "identity_id": 2,
                "channel_id": "telegram",
                "status": "bot",
                "assignee_id": None,
                "queued_at": None,
                "closed_at": None,
            },
        ],
    )
    free = {"confidence": 0.9, "alternatives": []}
    await _insert(
        conn,
        "messages",
        [
            _message(1, 1, "customer", 0, meta={"intent": "payment_methods", **free}),
            _message(2, 1, "bot", 1),
            _message(
                3, 1, "customer", 120, meta={"intent": "fallback", **free, "fallback": "rephrase"}
            ),
            _message(4, 1, "bot", 121),
            _message(5, 1, "customer", 300, payload="operator", meta={"button": "operator"}),
            _message(6, 1, "bot", 301),
            _message(7, 1, "operator", 450, author_id=1),
            _message(8, 1, "system", 1200),
            _message(9, 2, "customer", 600, payload="readings", meta={"button": "readings"}),
            _message(10, 2, "bot", 601, delivery="failed"),
        ],
    )
    await _insert(
        conn,
        "users",
        [
            {
                "id": 1,
                "login": "anna",
                "name": "Анна",
                "role": "operator",
                "password_hash": "x",
                "active": True,
                "groups": [],
                "max_chats": 3,
                "status": "offline",
                "created_at": T0,
            }
        ],
    )
    log = [
        (1, "login", None, None, 240),
        (1, "status", None, {"from": "offline", "to": "online", "auto": False}, 270),
        (1, "assign", 1, {"auto": True}, 360),
        (1, "reply", 1, None, 450),
        (1, "close", 1, {"resolution": "ok"}, 1200),
        (1, "status", None, {"from": "online", "to": "offline", "auto": False}, 1800),
        (1, "logout", None, None, 1800),
    ]
    await _insert(
        conn,
        "operator_events",
        [
            {"user_id": u, "type": k, "conversation_id": c, "data": d, "at": at(s)}
            for u, k, c, d, s in log
        ],
    )
    await _insert(
        conn,
        "tracked_links",
        [
            {
                "token": "tok1",
                "url": "https://pay.example/energo",
                "conversation_id": 1,
                "intent": "payment_methods",
                "channel_id": "webchat",
                "created_at": at(1),
            }
        ],
    )
    await _insert(conn, "link_clicks", [{"token": "tok1", "clicked_at": at(60)}])
    await _insert(
        conn,
        "accounts",
        [
            {
                "number": "1000000001",
                "holder": "Иванов",
                "address": "Энск",
                "plan": "single",
                "balance": 0,
                "updated_at": T0,
            }
        ],
    )
    await _insert(
        conn,
        "readings_history",
        [
            {
                "account_number": "1000000001",
                "t1": 100,
                "taken_on": DAY,
                "source": "bot",
                "conversation_id": 2,
                "created_at": at(700),
            }
        ],
    )
    await _insert(
        conn,
        "appeals",
        [
            {
                "number": "ВП-1",
                "conversation_id": 2,
                "name": "Иванов",
                "contact": "a@b.ru",
                "text": "обращение",
                "status": "new",
                "created_at": at(800),
            }
        ],
    )


@pytest.fixture
async def old_database(tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own (not the session's migrated one)."""
    if PG_URL:
        name = f"abonent_bf_{os.getpid()}_{uuid.uuid4().hex[:6]}"
        await _create_pg_database(PG_URL, name)
        yield _pg_admin_url(PG_URL, name)
        await _drop_pg_database(PG_URL, name)
    else:
        yield f"sqlite+aiosqlite:///{tmp_path / 'old.db'}"


async def test_history_from_before_the_log_is_backfilled(old_database: str) -> None:
    engine = create_async_engine(old_database)
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(alembic_config(c), "0003"))
    async with engine.begin() as conn:
        await _old_history(conn)
    await upgrade(engine)  # 0004: the log begins; the old logs become events
    await engine.dispose()

    db = Database(old_database)
    try:
        async with db.read() as conn:
            carried = [
                r[0]
                for r in await conn.execute(sa.select(EventRecord.type).order_by(EventRecord.id))
            ]
        assert carried == [
            "link.clicked",
            "operator.signed_in",
            "operator.status",
            "conversation.assigned",
            "conversation.closed",
            "operator.status",
            "operator.signed_out",
            "log.started",
        ]
        settings = Settings(database_url=old_database)
        done = await rebuild(db, settings)
        assert done.backfilled > 0
        stats = Stats(db, settings.company.tz, {})
        summary = await stats.summary(stats.period(DAY, DAY))
    finally:
        await db.dispose()

    assert summary["messages"] == {
        "telegram": {"customer": 1, "bot": 1, "operator": 0},
        "webchat": {"customer": 3, "bot": 3, "operator": 1},
    }
    assert summary["conversations"] == {
        "total": 2,
        "bot_only": 1,
        "to_operator": 1,
        "by_channel": {"telegram": 1, "webchat": 1},
    }
    assert summary["bot"] == {
        "free_text": 2,
        "recognised": 1,
        "fallback": 1,
        "topics": {"payment_methods": 1},
    }
    assert summary["links"] == {"sent": 1, "clicked": 1}
    assert summary["readings"] == {"submitted": 1, "by_channel": {"telegram": 1}}
    assert summary["queue"] == {
        "queued": 1,
        "abandoned": 0,
        "wait_s": {"median": 60.0, "p90": 60.0},
    }
    assert summary["operators"] == {
        "anna": {
            "conversations": 1,
            "replies": 1,
            "transfers": 0,
            "first_response_s": {"median": 150.0, "p90": 150.0, "max": 150.0},
            "online_s": 1530,
            "break_s": 0,
        }
    }
    assert summary["customers"] == {"unique": 2, "returning": 0}
