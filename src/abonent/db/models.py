"""The schema. Alembic migrations in ``migrations/`` are written from these models.

Money and readings are ``Numeric`` and travel as ``Decimal``: a customer is told
consumption and cost to the kopeck, so binary floats never touch them.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    Numeric,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    column,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from abonent.clock import utcnow

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a real bigint.
BigId = BigInteger().with_variant(Integer(), "sqlite")
Kwh = Numeric(14, 3)
Rubles = Numeric(14, 2)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every backend: SQLite would hand back naive datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


class Contact(Base):
    """One person, however many channels they write from."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    identities: Mapped[list[ChannelIdentity]] = relationship(back_populates="contact")


class ChannelIdentity(Base):
    """A contact as one channel knows them (Chatwoot's ``contact_inbox``)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel_id", "external_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel_id: Mapped[str] = mapped_column(String(64))
    external_id: Mapped[str] = mapped_column(String(128))
    # Web chat: SHA-256 of the bearer token, so a database leak gives no sessions away.
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    display_name: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="identities")


class Conversation(Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_status_waiting", "status", "waiting_since"),
        Index("ix_conversations_identity_status", "identity_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("channel_identities.id", ondelete="CASCADE")
    )
    channel_id: Mapped[str] = mapped_column(String(64))
    # bot | queued | assigned | closed
    status: Mapped[str] = mapped_column(String(16), default="bot")
    assignee_id: Mapped[int | None] = mapped_column(BigId)
    bot_state: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_message_at: Mapped[datetime | None]
    # Set when the customer starts waiting for a human; cleared when one answers.
    waiting_since: Mapped[datetime | None]
    queued_at: Mapped[datetime | None]
    first_reply_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    resolution: Mapped[str | None] = mapped_column(String(200))
    # Operators' group the conversation waits for (a transfer to a group); None = anyone.
    group: Mapped[str | None] = mapped_column(String(64))
    # A closed conversation still takes the customer's answer to the satisfaction
    # question until then (a rating pressed after the close lands here, not in a new one).
    survey_until: Mapped[datetime | None]


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A platform's retried delivery carries the same id: this is the dedupe.
        UniqueConstraint("channel_id", "external_id", name="uq_messages_channel_external"),
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        Index("ix_messages_identity_id", "identity_id", "id"),
        # The oldest customer message still to answer (core.pipeline) in one step,
        # however long the conversation has grown; partial, so that it holds only the
        # few messages being answered and the sweep for stranded ones reads it whole.
        Index(
            "ix_messages_unhandled",
            "conversation_id",
            "id",
            postgresql_where=column("handled") == false(),
            sqlite_where=column("handled") == false(),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("channel_identities.id", ondelete="CASCADE")
    )
    channel_id: Mapped[str] = mapped_column(String(64))
    # customer | bot | operator | system
    author: Mapped[str] = mapped_column(String(16))
    author_id: Mapped[int | None] = mapped_column(BigId)
    text: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[str | None] = mapped_column(String(256))
    buttons: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    external_id: Mapped[str | None] = mapped_column(String(128))
    # What the bot made of a customer message: intent, confidence, flow step.
    meta: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Customer messages: has the bot or the queue taken it? Lets a restart finish the work.
    handled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Outgoing messages: pending | sent | failed (permanent errors are shown to operators).
    delivery: Mapped[str | None] = mapped_column(String(16))
    delivery_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    """A file a customer or an operator sent: a photo of a meter, a receipt, a PDF.

    The bytes live in the attachments directory under ``storage_key`` (random, never the
    sender's file name); ``filename`` is only shown. A messenger's file is recorded as
    ``pending`` with the platform's reference in ``remote`` and fetched into storage
    later, with retries; an operator's upload waits (``message_id`` NULL) until it is sent.
    """

    __tablename__ = "attachments"
    __table_args__ = (
        Index("ix_attachments_message_id", "message_id"),
        Index("ix_attachments_identity_id", "identity_id", "id"),
        Index("ix_attachments_status", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    # The customer's channel identity the file belongs to: their widget session may fetch it.
    identity_id: Mapped[int] = mapped_column(
        ForeignKey("channel_identities.id", ondelete="CASCADE")
    )
    # customer | operator
    author: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # image | document
    kind: Mapped[str] = mapped_column(String(16))
    mime: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    filename: Mapped[str] = mapped_column(String(200))
    storage_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    sha256: Mapped[str | None] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    # pending (a messenger's file not fetched yet) | stored | failed
    status: Mapped[str] = mapped_column(String(16), default="stored")
    # The platform's reference to fetch it by (a Telegram file_id, a media URL, …).
    remote: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    # A messenger that takes files only by URL (Viber), or none at all, gets a link
    # ``/files/<link_token>`` that works without signing in until ``link_expires_at``.
    link_token: Mapped[str | None] = mapped_column(String(43), unique=True)
    link_expires_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class OutboxItem(Base):
    """A message waiting to be sent by its channel; survives crashes and is shared by processes."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_conversation", "conversation_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    # Messages of one conversation leave in order: a later one waits for an earlier one.
    conversation_id: Mapped[int] = mapped_column(BigId)
    channel_id: Mapped[str] = mapped_column(String(64))
    # pending | sending | sent | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # A long text goes out in parts; those already delivered are not sent again on retry.
    parts_sent: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class Account(Base):
    """A personal account (лицевой счёт) in the local billing backend."""

    __tablename__ = "accounts"

    number: Mapped[str] = mapped_column(String(20), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(400))
    # single | two_zone | three_zone
    plan: Mapped[str] = mapped_column(String(16))
    t1: Mapped[Decimal | None] = mapped_column(Kwh)
    t2: Mapped[Decimal | None] = mapped_column(Kwh)
    t3: Mapped[Decimal | None] = mapped_column(Kwh)
    readings_date: Mapped[date | None] = mapped_column(Date)
    balance: Mapped[Decimal] = mapped_column(Rubles, default=Decimal("0"))
    phone: Mapped[str | None] = mapped_column(String(32), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ReadingsRecord(Base):
    """Every accepted set of readings, imported or submitted, oldest first."""

    __tablename__ = "readings_history"
    __table_args__ = (Index("ix_readings_history_account", "account_number", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    account_number: Mapped[str] = mapped_column(ForeignKey("accounts.number", ondelete="CASCADE"))
    t1: Mapped[Decimal | None] = mapped_column(Kwh)
    t2: Mapped[Decimal | None] = mapped_column(Kwh)
    t3: Mapped[Decimal | None] = mapped_column(Kwh)
    taken_on: Mapped[date] = mapped_column(Date)
    # import | bot | operator | api
    source: Mapped[str] = mapped_column(String(16))
    consumption: Mapped[dict[str, str] | None] = mapped_column(JSON)
    cost: Mapped[Decimal | None] = mapped_column(Rubles)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When ``abonent billing export-readings`` wrote the row out (billings fed by files).
    exported_at: Mapped[datetime | None]


class ContactAccount(Base):
    """Accounts a contact has named, or whose billing phone is theirs: this contact's own
    list, offered by the bot and shown on the card; never a link to other contacts."""

    __tablename__ = "contact_accounts"
    __table_args__ = (UniqueConstraint("contact_id", "account_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    account_number: Mapped[str] = mapped_column(String(20), index=True)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Proven: the billing record carries a phone the platform vouched for as this
    # contact's. A number typed (or its holder "confirmed" with «да») proves nothing
    # and joins no contacts (core.identity).
    confirmed: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class TrackedLink(Base):
    """A link the bot sent, as ``/r/<token>``: one per reply, so a click tells which
    conversation, topic and channel it came from."""

    __tablename__ = "tracked_links"

    token: Mapped[str] = mapped_column(String(24), primary_key=True)
    url: Mapped[str] = mapped_column(Text)
    title: Mapped[str | None] = mapped_column(String(200))
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL"), index=True
    )
    intent: Mapped[str | None] = mapped_column(String(64), index=True)
    channel_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Appeal(Base):
    """A written appeal to the virtual reception; the customer is given its number."""

    __tablename__ = "appeals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    number: Mapped[str | None] = mapped_column(String(32), unique=True)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    name: Mapped[str] = mapped_column(String(200))
    contact: Mapped[str] = mapped_column(String(200))
    account_number: Mapped[str | None] = mapped_column(String(20))
    text: Mapped[str] = mapped_column(Text)
    # new | in_progress | answered
    status: Mapped[str] = mapped_column(String(16), default="new")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- operators
class User(Base):
    """Somebody who signs in to the workspace: operator, supervisor or admin."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    # operator | supervisor | admin
    role: Mapped[str] = mapped_column(String(16), default="operator")
    password_hash: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Groups this operator serves (a transfer to a group reaches them): ["billing", …].
    groups: Mapped[list[str]] = mapped_column(JSON, default=list)
    # How many conversations automatic assignment gives this operator at once.
    max_chats: Mapped[int] = mapped_column(Integer, default=3)
    # online | break | offline
    status: Mapped[str] = mapped_column(String(16), default="offline")
    status_changed_at: Mapped[datetime | None]
    # The workspace page pings while open; long silence means the page is closed.
    last_seen_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserSession(Base):
    """A signed-in browser. The cookie holds a random token; only its hash is stored."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    ip: Mapped[str | None] = mapped_column(String(64))


class LoginFailure(Base):
    """Failed sign-ins, counted per login and per address to throttle guessing."""

    __tablename__ = "login_failures"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    login: Mapped[str] = mapped_column(String(64), index=True)
    ip: Mapped[str | None] = mapped_column(String(64), index=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class Template(Base):
    """A canned answer: shared (owner NULL) or an operator's own, found by ``/code`` or words."""

    __tablename__ = "templates"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), index=True)
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class AuditRecord(Base):
    """Who looked at whose personal data, and when (customer cards)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(BigId, index=True)
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- event log
class EventRecord(Base):
    """The durable event log (core.events): every fact, written with the fact itself."""

    __tablename__ = "events"
    __table_args__ = (
        # A reader's cursor range on PostgreSQL (core.eventlog.after). On SQLite tx is
        # always 0 and the primary key already gives that order: there the index would
        # only cost every event write another page.
        Index("ix_events_tx_id", "tx", "id").ddl_if(dialect="postgresql"),
        Index("ix_events_occurred_at", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # PostgreSQL: the writing transaction's id (a server default), so that a reader by
    # cursor never passes an event whose transaction commits after a later one's
    # (core.eventlog). SQLite writes one transaction at a time: always 0.
    tx: Mapped[int] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    occurred_at: Mapped[datetime]
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class EventCursor(Base):
    """How far each durable consumer of the log has got: (tx, id) of its last event."""

    __tablename__ = "event_cursors"

    consumer: Mapped[str] = mapped_column(String(64), primary_key=True)
    tx: Mapped[int] = mapped_column(BigInteger, default=0)
    last_id: Mapped[int] = mapped_column(BigInteger, default=0)
    processed: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set while ``abonent stats rebuild`` recomputes what this consumer feeds: the
    # servers leave it alone until the rebuild hands the position back.
    paused_at: Mapped[datetime | None]


# --------------------------------------------------------------------------- statistics
# SQLite keeps such a table's rows in primary-key order ("WITHOUT ROWID"): a report
# reads a range of keys, not an index and then every row it points to.
CLUSTERED: dict[str, Any] = {"sqlite_with_rowid": False}


# Written only by the statistics consumer (analytics/rollup.py) and read by the reports;
# days and hours are the company's local ones. None of them is ever pruned.
class StatsCount(Base):
    """Hourly counters: ``n`` facts of ``metric`` (and the sum ``total`` of a value).
    The metric leads the key: a report reads a few metrics over a range of days."""

    __tablename__ = "stats_counts"
    __table_args__ = CLUSTERED

    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    # Channel id, operator and a metric's own key (an intent, a link); "" / 0 for none.
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class StatsHourly(Base):
    """The hourly counters summed over channels, operators and keys: an unfiltered
    hourly series over a quarter reads a narrow row per metric and hour, not one per
    channel, operator and link."""

    __tablename__ = "stats_hourly"
    __table_args__ = CLUSTERED

    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    hour: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)


class StatsDaily(Base):
    """The same counters by day: a report over months reads a day's row, not 24."""

    __tablename__ = "stats_daily"
    __table_args__ = CLUSTERED

    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class StatsMonthly(Base):
    """The same counters by calendar month (``month`` is its first day): a quarter's
    report reads its months here and only a few days by day (``Period.spans``)."""

    __tablename__ = "stats_monthly"
    __table_args__ = CLUSTERED

    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[float] = mapped_column(Float, default=0.0)


class StatsConversation(Base):
    """One row per conversation: what the log has told of it (exports, drill-down)."""

    __tablename__ = "stats_conversations"
    # Newest first within a period, page by page, straight from the index; and a
    # topic's conversations (found by id) checked and sorted from an index too.
    __table_args__ = (
        Index("ix_stats_conversations_day", "day", "started_at", "conversation_id"),
        Index("ix_stats_conversations_id_day", "conversation_id", "day", "started_at"),
    )

    conversation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channel: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime | None]
    # The customer's first message: a conversation counts from then, on that day.
    started_at: Mapped[datetime | None]
    day: Mapped[date | None] = mapped_column(Date)
    hour: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), default="bot")
    customer_messages: Mapped[int] = mapped_column(Integer, default=0)
    bot_messages: Mapped[int] = mapped_column(Integer, default=0)
    operator_messages: Mapped[int] = mapped_column(Integer, default=0)
    handed_over: Mapped[bool] = mapped_column(Boolean, default=False)
    # The current hand-off: in the queue since; waiting for the first human answer since.
    queued_at: Mapped[datetime | None]
    awaiting_first_since: Mapped[datetime | None]
    # A customer message an operator has not answered yet, since.
    waiting_since: Mapped[datetime | None]
    first_assigned_at: Mapped[datetime | None]
    first_operator_id: Mapped[int | None] = mapped_column(BigInteger)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    first_response_s: Mapped[float | None] = mapped_column(Float)
    transfers: Mapped[int] = mapped_column(Integer, default=0)
    abandoned: Mapped[int] = mapped_column(Integer, default=0)
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[int | None] = mapped_column(BigInteger)
    handle_s: Mapped[float | None] = mapped_column(Float)
    # ",intent,intent," of the recognised free-text messages, for drill-down by topic.
    topics: Mapped[str] = mapped_column(String(600), default="")
    fallbacks: Mapped[int] = mapped_column(Integer, default=0)
    readings: Mapped[int] = mapped_column(Integer, default=0)
    profanity: Mapped[int] = mapped_column(Integer, default=0)
    links_sent: Mapped[int] = mapped_column(Integer, default=0)
    csat_asked_at: Mapped[datetime | None]
    csat_user_id: Mapped[int | None] = mapped_column(BigInteger)
    csat_rating: Mapped[int | None] = mapped_column(SmallInteger)


class StatsResponse(Base):
    """One operator answer to a waiting customer: the first after a hand-off, or a later one."""

    __tablename__ = "stats_responses"
    # Covering what the reports read, so a quarter's delays come from the index alone.
    __table_args__ = (
        Index(
            "ix_stats_responses_day", "day", "user_id", "kind", "seconds", "work_seconds", "channel"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(64))
    # first | next
    kind: Mapped[str] = mapped_column(String(8))
    asked_at: Mapped[datetime]
    answered_at: Mapped[datetime]
    seconds: Mapped[float] = mapped_column(Float)
    # The part of the wait that fell inside the operators' working hours.
    work_seconds: Mapped[float] = mapped_column(Float)
    # The day and hour of the answer.
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(SmallInteger)


class StatsQueueWait(Base):
    """One hand-off's time in the queue, until an operator got it or the customer left."""

    __tablename__ = "stats_queue_waits"
    __table_args__ = (Index("ix_stats_queue_waits_day", "day", "outcome", "seconds", "channel"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger)
    channel: Mapped[str] = mapped_column(String(64))
    queued_at: Mapped[datetime]
    ended_at: Mapped[datetime]
    # assigned | left
    outcome: Mapped[str] = mapped_column(String(16))
    seconds: Mapped[float] = mapped_column(Float)
    # The day and hour the customer was queued.
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(SmallInteger)


class StatsStatusInterval(Base):
    """An operator's time online or on break; offline is the time between intervals."""

    __tablename__ = "stats_status_intervals"
    __table_args__ = (Index("ix_stats_status_intervals_user", "user_id", "started_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    # online | break
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]


class StatsOperatorEvent(Base):
    """The operators' events log as supervisors filter it (kept when raw events are pruned)."""

    __tablename__ = "stats_operator_events"
    __table_args__ = (
        Index("ix_stats_operator_events_at", "occurred_at"),
        Index("ix_stats_operator_events_user", "user_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    occurred_at: Mapped[datetime]
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(40))
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class StatsCustomerDay(Base):
    """A customer wrote on this day through this channel (``*``: through any).

    Each row knows the customer's previous day and first day on that channel, so that
    the unique and returning customers of a period are plain counts over its rows
    instead of a count of distinct customers (see ``analytics.reports``)."""

    __tablename__ = "stats_customer_days"
    __table_args__ = (
        Index("ix_stats_customer_days_contact", "contact_id", "channel", "day"),
        CLUSTERED,
    )

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    prev_day: Mapped[date | None] = mapped_column(Date)
    first_day: Mapped[date] = mapped_column(Date)


class StatsResponseValues(Base):
    """Every response delay of one day, kind and operator: the exact values of
    ``stats_responses`` packed as little-endian float64s, channel after channel and
    each channel's in order; ``channels`` lists ``[channel, how many]`` in that order.
    A quarter's percentiles read a few thousand of these rows instead of every
    response. Rewritten from those rows whenever one is added (``analytics.summaries``)."""

    __tablename__ = "stats_response_values"
    __table_args__ = CLUSTERED

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    channels: Mapped[list[Any]] = mapped_column(JSON)
    seconds: Mapped[bytes] = mapped_column(LargeBinary)
    # In order on their own: the n-th of these is not the n-th response's.
    work_seconds: Mapped[bytes] = mapped_column(LargeBinary)


class StatsQueueWaitValues(Base):
    """Every queue wait of one day, outcome and channel, sorted and packed like
    ``stats_response_values`` (from ``stats_queue_waits``)."""

    __tablename__ = "stats_queue_wait_values"
    __table_args__ = CLUSTERED

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    seconds: Mapped[bytes] = mapped_column(LargeBinary)


class StatsCustomerCount(Base):
    """``stats_customer_days`` counted by channel, day and previous day: the unique and
    returning customers of a period are sums over a few rows a day. A customer with no
    earlier day on the channel is counted under ``prev_day = day`` (a day is never its
    own previous one); ``first_n`` are those whose previous day was their first."""

    __tablename__ = "stats_customer_counts"
    __table_args__ = CLUSTERED

    channel: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    prev_day: Mapped[date] = mapped_column(Date, primary_key=True)
    n: Mapped[int] = mapped_column(BigInteger, default=0)
    first_n: Mapped[int] = mapped_column(BigInteger, default=0)


class StatsTopic(Base):
    """A topic recognised in a conversation, on the conversation's day (drill-down)."""

    __tablename__ = "stats_topics"
    __table_args__ = CLUSTERED

    topic: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    conversation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)


class StatsLink(Base):
    """A tracked link the bot sent, and when it was first followed."""

    __tablename__ = "stats_links"

    token: Mapped[str] = mapped_column(String(24), primary_key=True)
    day: Mapped[date] = mapped_column(Date)
    hour: Mapped[int] = mapped_column(SmallInteger)
    channel: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(200))
    first_clicked_at: Mapped[datetime | None]


# --------------------------------------------------------------------------- outgoing webhooks
# Written by automation/webhooks.py only: the queue of deliveries to the company's own
# endpoints (``[[webhooks]]``) and what the server has learnt about each endpoint.
class WebhookDelivery(Base):
    """One event for one endpoint: queued in the transaction that reads the event, kept
    after delivery (or final failure) as the endpoint's delivery log until pruned."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # An event is queued once per endpoint, however often the log is read again.
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_event"),
        Index("ix_webhook_deliveries_due", "endpoint_id", "status", "next_attempt_at"),
        Index("ix_webhook_deliveries_log", "endpoint_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # What the receiver dedupes on: derived from (endpoint, event), the same on every try.
    delivery_id: Mapped[str] = mapped_column(String(36), unique=True)
    endpoint_id: Mapped[str] = mapped_column(String(64))
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    # The exact JSON sent (and signed), so every retry carries the same bytes.
    body: Mapped[str] = mapped_column(Text)
    # pending | delivering | delivered | failed
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The start of the retry window (reset when an admin re-enables the endpoint).
    first_attempt_at: Mapped[datetime | None]
    last_attempt_at: Mapped[datetime | None]
    locked_until: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # The last answer (HTTP status) and the last failure, kept after a later success.
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(300))
    last_failure_at: Mapped[datetime | None]


class WebhookEndpointState(Base):
    """An endpoint's health (the configuration is static, this is not): the failure
    streak that disables it, and the admin's re-enabling."""

    __tablename__ = "webhook_endpoints"

    endpoint_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Events from this moment on are delivered (not the history before it was configured).
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(300))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    last_failure_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- python hooks
# Written by automation/hook_runtime.py and the hooks' API (automation/hooks.py) only.
class HookRun(Base):
    """One event for one hook handler: queued by the hooks' event consumer in the
    transaction that reads the event, run off the message path by a leased worker."""

    __tablename__ = "hook_runs"
    __table_args__ = (
        # A handler runs once per event, however often the log is read again.
        UniqueConstraint("event_id", "hook", name="uq_hook_runs_event"),
        Index("ix_hook_runs_due", "status", "next_attempt_at"),
        Index("ix_hook_runs_hook", "hook", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    event_id: Mapped[int] = mapped_column(BigInteger)
    event_type: Mapped[str] = mapped_column(String(40))
    # "<hook set>.<handler>", as the status page and the metrics name it.
    hook: Mapped[str] = mapped_column(String(200))
    conversation_id: Mapped[int | None] = mapped_column(BigInteger)
    # pending | running | done | failed (given up after its attempts)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    # The pass that holds the lease: its outcome counts only while it still holds it.
    claim: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class HookStat(Base):
    """Runs and errors per hook since it was first seen (kept when runs are pruned)."""

    __tablename__ = "hook_stats"

    hook: Mapped[str] = mapped_column(String(200), primary_key=True)
    handled: Mapped[int] = mapped_column(BigInteger, default=0)
    errors: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class HookError(Base):
    """A hook's failure as admins see it: which hook, on what, the exception's class and
    message (the traceback goes to the log)."""

    __tablename__ = "hook_errors"
    __table_args__ = (Index("ix_hook_errors_hook", "hook", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    hook: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(40))
    event_id: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class ConversationTag(Base):
    """A label a hook put on a conversation («нет света», «должник»), shown on the card."""

    __tablename__ = "conversation_tags"

    conversation_id: Mapped[int] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True
    )
    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    # The hook that set it.
    source: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ContactCardDetail(Base):
    """What an integration told about a contact for the operator's card (a phone from the
    CRM). Never proof of identity: ``contacts.phone`` (a phone the platform vouched for)
    joins contacts; this only shows."""

    __tablename__ = "contact_card_details"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    phone: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- Billing: readings on their way to an HTTP billing (billing/queue.py) -----------------


class BillingSubmission(Base):
    """Readings a customer submitted, on their way to the utility's billing.

    Written in the bot's turn (with the reply that told the customer), so readings accepted
    while billing was down are never lost; delivered by ``billing.queue.ReadingsDelivery``
    with our ``submission_id`` as the idempotency key, so billing stores them once however
    often a delivery is repeated. A submission billing confirmed at once is kept too
    (``delivered``): the record of what was sent when.
    """

    __tablename__ = "billing_readings_queue"
    __table_args__ = (
        Index("ix_billing_readings_queue_due", "state", "next_attempt_at"),
        Index("ix_billing_readings_queue_account", "account_number", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    submission_id: Mapped[str] = mapped_column(String(36), unique=True)
    account_number: Mapped[str] = mapped_column(String(20))
    plan: Mapped[str] = mapped_column(String(16))
    # Zone → kWh as text ("12500.5"), in the plan's zone order.
    readings: Mapped[dict[str, Any]] = mapped_column(JSON)
    taken_on: Mapped[date] = mapped_column(Date)
    source: Mapped[str] = mapped_column(String(16))
    replace: Mapped[bool] = mapped_column(Boolean, default=False)
    conversation_id: Mapped[int | None] = mapped_column(
        ForeignKey("conversations.id", ondelete="SET NULL")
    )
    # pending | delivering | delivered | rejected
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The claim of one delivery pass: renewed while it runs, taken over once it runs out.
    locked_until: Mapped[datetime | None]
    lease_token: Mapped[str | None] = mapped_column(String(32))
    last_error: Mapped[str | None] = mapped_column(Text)
    # Billing's answer (accepted) or refusal (rejected), as it gave it.
    outcome: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]


# ---- reminders
# Written by automation/reminders/ only (the opt-out flow writes ReminderConsent).
class ReminderCampaign(Base):
    """An outbound campaign an admin defined: who, what, when (automation/reminders)."""

    __tablename__ = "reminder_campaigns"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    # payment_due | readings_window | custom
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    # The audience: a debt above this (rubles; None: any balance), due within N days
    # (where billing knows the date), only this channel id or type (None: any).
    min_balance: Mapped[Decimal | None] = mapped_column(Rubles)
    due_within_days: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str | None] = mapped_column(String(64))
    # once | monthly (the same day and time each month) | cron, in the company timezone.
    schedule: Mapped[str] = mapped_column(String(16), default="once")
    # The cron expression of a ``cron`` schedule («0 10 1,15 * *»); migration 0014.
    cron: Mapped[str | None] = mapped_column(String(100))
    start_at: Mapped[datetime]
    # "21:00-09:00": local hours without sends; "" for none.
    quiet_hours: Mapped[str] = mapped_column(String(16), default="21:00-09:00")
    # WhatsApp outside the 24-hour window: this approved template (None: the settings').
    whatsapp_template: Mapped[str | None] = mapped_column(String(512))
    # draft | running | paused | done
    state: Mapped[str] = mapped_column(String(16), default="draft")
    # The period whose sends are all written (expansion finished), e.g. "once", "2026-12".
    expanded_period: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ReminderSend(Base):
    """One reminder to one contact in one period: the unique key makes expansion
    idempotent across processes and restarts, so nobody is written to twice."""

    __tablename__ = "reminder_sends"
    __table_args__ = (
        UniqueConstraint(
            "campaign_id", "contact_id", "period_key", name="uq_reminder_sends_contact"
        ),
        Index("ix_reminder_sends_due", "status", "due_at"),
        Index("ix_reminder_sends_campaign", "campaign_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("reminder_campaigns.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    period_key: Mapped[str] = mapped_column(String(16))
    identity_id: Mapped[int | None] = mapped_column(
        ForeignKey("channel_identities.id", ondelete="SET NULL")
    )
    channel_id: Mapped[str | None] = mapped_column(String(64))
    account_number: Mapped[str | None] = mapped_column(String(20))
    # queued | claimed | sending | sent | failed | skipped | interrupted
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # Why skipped or failed: opted_out, no_identity, whatsapp_window, blocked, …
    reason: Mapped[str | None] = mapped_column(String(300))
    # text | template
    mode: Mapped[str | None] = mapped_column(String(16))
    # The placeholder values the text is rendered from (no text is stored twice).
    placeholders: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    locked_until: Mapped[datetime | None]
    # The claim of one sender pass: only the pass holding it sends the row.
    lease_token: Mapped[str | None] = mapped_column(String(32))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    message_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]


class ReminderConsent(Base):
    """A contact's own word on reminders: «стоп» (out) or «подписаться» (in), when and how."""

    __tablename__ = "reminder_consent"

    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), primary_key=True
    )
    # in | out
    state: Mapped[str] = mapped_column(String(8))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)
    # message | button | admin, and the channel it came from.
    how: Mapped[str] = mapped_column(String(32))
    channel_id: Mapped[str | None] = mapped_column(String(64))


class ReminderOutcome(Base):
    """What followed one reminder the platform took or refused: written only by the
    reminders' statistics listener (analytics/campaigns.py) from the event log
    (migration 0014)."""

    __tablename__ = "reminder_outcomes"
    __table_args__ = (
        Index("ix_reminder_outcomes_campaign", "campaign_id", "status"),
        Index("ix_reminder_outcomes_contact", "contact_id", "at"),
        Index("ix_reminder_outcomes_account", "account_number", "at"),
        Index("ix_reminder_outcomes_conversation", "conversation_id", "at"),
    )

    send_id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("reminder_campaigns.id", ondelete="CASCADE")
    )
    contact_id: Mapped[int] = mapped_column(BigId)
    account_number: Mapped[str | None] = mapped_column(String(20))
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    # delivered (the platform accepted it) | failed
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    clicked_at: Mapped[datetime | None]
    opted_out_at: Mapped[datetime | None]
    # Readings submitted for the reminded account within the follow-up window.
    followed_at: Mapped[datetime | None]


class ReminderUnreachable(Base):
    """A channel identity the platform refused for good (blocked the bot, unsubscribed):
    skipped by every campaign until the customer writes on it again."""

    __tablename__ = "reminder_unreachable"

    identity_id: Mapped[int] = mapped_column(
        ForeignKey("channel_identities.id", ondelete="CASCADE"), primary_key=True
    )
    reason: Mapped[str] = mapped_column(String(300))
    at: Mapped[datetime] = mapped_column(default=utcnow)


# ---- knowledge-base edits and retraining (nlu/edits.py, nlu/retrain.py; issue 14)
# Written by nlu/ only: the editors' page and ``abonent nlu train``.
class KbEdit(Base):
    """One editor's change to the knowledge base, applied on top of the YAML files when
    the consultant builds (nlu/edits.py): who and when, kept for the diff and the export."""

    __tablename__ = "kb_edits"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # examples | out_of_scope | new_topic | answer
    kind: Mapped[str] = mapped_column(String(16))
    intent: Mapped[str | None] = mapped_column(String(64))
    texts: Mapped[list[str]] = mapped_column(JSON, default=list)
    title: Mapped[str | None] = mapped_column(String(100))
    answer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The login as it was: the history still names a user deleted since.
    author_login: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NluTraining(Base):
    """A retraining run (nlu/retrain.py): its progress while it runs, then its verdict.
    The newest ``accepted`` row is the model every server process follows."""

    __tablename__ = "nlu_trainings"
    __table_args__ = (Index("ix_nlu_trainings_status", "status", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # running | accepted | rejected | failed
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The edits it learned from: every ``kb_edits`` row up to this id.
    edits_upto: Mapped[int] = mapped_column(BigId, default=0)
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    stage: Mapped[str] = mapped_column(String(200), default="")
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]


class NluLease(Base):
    """A named lease between processes (``train``): the holder renews it while it works,
    and a crashed holder's lease simply runs out."""

    __tablename__ = "nlu_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str | None] = mapped_column(String(64))
    expires_at: Mapped[datetime | None]
