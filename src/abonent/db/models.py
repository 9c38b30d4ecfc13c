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
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
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


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # A platform's retried delivery carries the same id: this is the dedupe.
        UniqueConstraint("channel_id", "external_id", name="uq_messages_channel_external"),
        Index("ix_messages_conversation_id", "conversation_id", "id"),
        Index("ix_messages_identity_id", "identity_id", "id"),
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


class ContactAccount(Base):
    """Accounts a contact has named: links identities across channels and feeds the card."""

    __tablename__ = "contact_accounts"
    __table_args__ = (UniqueConstraint("contact_id", "account_number"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    account_number: Mapped[str] = mapped_column(String(20), index=True)
    last_used_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The customer confirmed the holder (or the billing record carries their vouched
    # phone): only confirmed links join contacts into one person.
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


class LinkClick(Base):
    __tablename__ = "link_clicks"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    token: Mapped[str] = mapped_column(
        ForeignKey("tracked_links.token", ondelete="CASCADE"), index=True
    )
    clicked_at: Mapped[datetime] = mapped_column(default=utcnow)


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


class OperatorEvent(Base):
    """The operators' log (login, logout, status, take, transfer, close …) for statistics."""

    __tablename__ = "operator_events"
    __table_args__ = (Index("ix_operator_events_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    type: Mapped[str] = mapped_column(String(32), index=True)
    conversation_id: Mapped[int | None] = mapped_column(BigId)
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    at: Mapped[datetime] = mapped_column(default=utcnow)


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
