"""event log and statistics

The durable event log (``events``), its consumers' cursors and the statistics rollups.
The operators' log and link clicks, which had tables of their own, move into the log:
their rows are copied over as events, so their history stays. A ``log.started`` event
marks when the log began; ``abonent stats rebuild`` backfills what happened before it
from messages and conversations.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 09:30:28.308240
"""

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import sqlite

from abonent.clock import utcnow

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_cursors",
        sa.Column("consumer", sa.String(length=64), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.Column("processed", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paused_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("consumer"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tx", sa.BigInteger(), nullable=False, server_default=_tx_default()),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "conversation_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.create_index("ix_events_occurred_at", ["occurred_at"], unique=False)
        batch_op.create_index("ix_events_tx_id", ["tx", "id"], unique=False)

    op.create_table(
        "stats_conversations",
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("day", sa.Date(), nullable=True),
        sa.Column("hour", sa.SmallInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("customer_messages", sa.Integer(), nullable=False),
        sa.Column("bot_messages", sa.Integer(), nullable=False),
        sa.Column("operator_messages", sa.Integer(), nullable=False),
        sa.Column("handed_over", sa.Boolean(), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("awaiting_first_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("waiting_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_assigned_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_operator_id", sa.BigInteger(), nullable=True),
        sa.Column("assignee_id", sa.BigInteger(), nullable=True),
        sa.Column("first_response_s", sa.Float(), nullable=True),
        sa.Column("transfers", sa.Integer(), nullable=False),
        sa.Column("abandoned", sa.Integer(), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("closed_by", sa.BigInteger(), nullable=True),
        sa.Column("handle_s", sa.Float(), nullable=True),
        sa.Column("topics", sa.String(length=600), nullable=False),
        sa.Column("fallbacks", sa.Integer(), nullable=False),
        sa.Column("readings", sa.Integer(), nullable=False),
        sa.Column("profanity", sa.Integer(), nullable=False),
        sa.Column("links_sent", sa.Integer(), nullable=False),
        sa.Column("csat_asked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("csat_user_id", sa.BigInteger(), nullable=True),
        sa.Column("csat_rating", sa.SmallInteger(), nullable=True),
        sa.PrimaryKeyConstraint("conversation_id"),
    )
    with op.batch_alter_table("stats_conversations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stats_conversations_day", ["day", "started_at", "conversation_id"], unique=False
        )

    op.create_table(
        "stats_counts",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "day", "hour", "channel", "user_id", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_daily",
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("metric", "day", "channel", "user_id", "key"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_customer_days",
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("contact_id", sa.BigInteger(), nullable=False),
        sa.Column("prev_day", sa.Date(), nullable=True),
        sa.Column("first_day", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("channel", "day", "contact_id"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("stats_customer_days", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stats_customer_days_contact", ["contact_id", "channel", "day"], unique=False
        )
    op.create_table(
        "stats_topics",
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "day", "conversation_id"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "stats_links",
        sa.Column("token", sa.String(length=24), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("url", sa.String(length=200), nullable=False),
        sa.Column("first_clicked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("token"),
    )
    op.create_table(
        "stats_operator_events",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=True),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stats_operator_events", schema=None) as batch_op:
        batch_op.create_index("ix_stats_operator_events_at", ["occurred_at"], unique=False)
        batch_op.create_index(
            "ix_stats_operator_events_user", ["user_id", "occurred_at"], unique=False
        )

    op.create_table(
        "stats_queue_waits",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("queued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stats_queue_waits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stats_queue_waits_day", ["day", "outcome", "seconds", "channel"], unique=False
        )

    op.create_table(
        "stats_responses",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("channel", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("asked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("work_seconds", sa.Float(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.SmallInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stats_responses", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stats_responses_day",
            ["day", "user_id", "kind", "seconds", "work_seconds", "channel"],
            unique=False,
        )

    op.create_table(
        "stats_status_intervals",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("stats_status_intervals", schema=None) as batch_op:
        batch_op.create_index(
            "ix_stats_status_intervals_user", ["user_id", "started_at"], unique=False
        )

    _copy_old_logs()

    with op.batch_alter_table("operator_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_operator_events_type"))
        batch_op.drop_index(batch_op.f("ix_operator_events_user_at"))

    op.drop_table("operator_events")
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_link_clicks_token"))

    op.drop_table("link_clicks")
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("survey_until", sa.DateTime(timezone=True), nullable=True))


def _tx_default() -> sa.TextClause:
    """PostgreSQL: the writing transaction's id (core.eventlog reads by it); SQLite: 0."""
    if op.get_bind().dialect.name == "postgresql":
        return sa.text("(pg_current_xact_id()::text::bigint)")
    return sa.text("0")


_OPERATOR_TYPES = {
    "login": "operator.signed_in",
    "logout": "operator.signed_out",
    "status": "operator.status",
    "take": "conversation.assigned",
    "assign": "conversation.assigned",
    "transfer": "conversation.transferred",
    "return": "conversation.returned_to_bot",
    "close": "conversation.closed",
}


def _copy_old_logs() -> None:
    """The operators' log and the link clicks become events with their original times."""
    bind = op.get_bind()
    events = sa.table(
        "events",
        sa.column("type", sa.String),
        sa.column("occurred_at", sa.DateTime(timezone=True)),
        sa.column("conversation_id", sa.BigInteger),
        sa.column("data", sa.JSON),
    )
    rows: list[dict[str, object]] = []
    old = bind.execute(
        sa.text("SELECT user_id, type, conversation_id, data, at FROM operator_events ORDER BY id")
    )
    for user_id, kind, conversation_id, data, at in old:
        new_type = _OPERATOR_TYPES.get(kind)
        if new_type is None:
            continue  # replies are messages: the backfill finds them there
        if isinstance(data, str):
            data = json.loads(data)
        data = dict(data or {})
        values: dict[str, object] = {"user_id": user_id, "migrated": True}
        if kind == "status":
            values.update(previous=data.get("from"), status=data.get("to"), auto=data.get("auto"))
        elif kind in ("take", "assign"):
            auto = bool(data.get("auto"))
            values.update(
                assignee_id=data.get("to", user_id),
                by=None if auto else user_id,
                how="auto" if auto else kind,
            )
        elif kind == "transfer":
            values.update(
                {"from": user_id, "assignee_id": data.get("to"), "group": data.get("group")}
            )
        elif kind == "close":
            values.update(by=user_id, assignee_id=user_id, resolution=data.get("resolution"))
        elif kind == "return":
            values.update(by=user_id)
        if conversation_id is not None:
            values["conversation_id"] = conversation_id
        rows.append(
            {
                "type": new_type,
                "occurred_at": _aware(at),
                "conversation_id": conversation_id,
                "data": values,
            }
        )
    clicks = bind.execute(
        sa.text(
            "SELECT c.token, c.clicked_at, l.conversation_id, l.intent, l.channel_id, l.url "
            "FROM link_clicks c JOIN tracked_links l ON l.token = c.token ORDER BY c.id"
        )
    )
    for token, at, conversation_id, intent, channel_id, url in clicks:
        rows.append(
            {
                "type": "link.clicked",
                "occurred_at": _aware(at),
                "conversation_id": conversation_id,
                "data": {
                    "token": token,
                    "conversation_id": conversation_id,
                    "intent": intent,
                    "channel_id": channel_id,
                    "url": url,
                    "migrated": True,
                },
            }
        )
    rows.sort(key=lambda r: r["occurred_at"])  # type: ignore[arg-type,return-value]
    rows.append(
        {
            "type": "log.started",
            "occurred_at": utcnow(),
            "conversation_id": None,
            "data": _history_bounds(bind),
        }
    )
    op.bulk_insert(events, rows)


def _history_bounds(bind: sa.Connection) -> dict[str, object]:
    """Where the history before the log ends, table by table: what the backfill of
    ``abonent stats rebuild`` may read (anything newer has its events)."""

    def last(query: str) -> object:
        return bind.execute(sa.text(query)).scalar()

    links_until = last("SELECT max(created_at) FROM tracked_links")
    return {
        "messages": last("SELECT max(id) FROM messages") or 0,
        "conversations": last("SELECT max(id) FROM conversations") or 0,
        "readings": last("SELECT max(id) FROM readings_history") or 0,
        "appeals": last("SELECT max(id) FROM appeals") or 0,
        "links_until": _aware(links_until).isoformat() if links_until is not None else None,
    }


def _aware(value: object) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def downgrade() -> None:
    with op.batch_alter_table("conversations", schema=None) as batch_op:
        batch_op.drop_column("survey_until")

    op.create_table(
        "link_clicks",
        sa.Column("id", sa.INTEGER(), nullable=False),
        sa.Column("token", sa.VARCHAR(length=24), nullable=False),
        sa.Column("clicked_at", sa.DATETIME(), nullable=False),
        sa.ForeignKeyConstraint(["token"], ["tracked_links.token"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("link_clicks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_link_clicks_token"), ["token"], unique=False)

    op.create_table(
        "operator_events",
        sa.Column("id", sa.INTEGER(), nullable=False),
        sa.Column("user_id", sa.INTEGER(), nullable=True),
        sa.Column("type", sa.VARCHAR(length=32), nullable=False),
        sa.Column("conversation_id", sa.INTEGER(), nullable=True),
        sa.Column("data", sqlite.JSON(), nullable=True),
        sa.Column("at", sa.DATETIME(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("operator_events", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_operator_events_user_at"), ["user_id", "at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_operator_events_type"), ["type"], unique=False)

    with op.batch_alter_table("stats_status_intervals", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_status_intervals_user")

    op.drop_table("stats_status_intervals")
    with op.batch_alter_table("stats_responses", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_responses_day")

    op.drop_table("stats_responses")
    with op.batch_alter_table("stats_queue_waits", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_queue_waits_day")

    op.drop_table("stats_queue_waits")
    with op.batch_alter_table("stats_operator_events", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_operator_events_user")
        batch_op.drop_index("ix_stats_operator_events_at")

    op.drop_table("stats_operator_events")
    op.drop_table("stats_links")
    op.drop_table("stats_topics")
    with op.batch_alter_table("stats_customer_days", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_customer_days_contact")
    op.drop_table("stats_customer_days")
    op.drop_table("stats_daily")
    op.drop_table("stats_counts")
    with op.batch_alter_table("stats_conversations", schema=None) as batch_op:
        batch_op.drop_index("ix_stats_conversations_day")

    op.drop_table("stats_conversations")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_index("ix_events_tx_id")
        batch_op.drop_index("ix_events_occurred_at")

    op.drop_table("events")
    op.drop_table("event_cursors")
