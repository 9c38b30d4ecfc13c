"""reminders

Payment and readings reminders (automation/reminders): the campaigns admins define,
one send per contact and period (unique, so a doubled scheduler never writes twice),
the contacts' own opt-outs, and the identities a platform refused for good.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 20:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "reminder_campaigns",
        sa.Column("id", _ID, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("min_balance", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("due_within_days", sa.Integer(), nullable=True),
        sa.Column("channel", sa.String(length=64), nullable=True),
        sa.Column("schedule", sa.String(length=16), nullable=False),
        sa.Column("start_at", _AT, nullable=False),
        sa.Column("quiet_hours", sa.String(length=16), nullable=False),
        sa.Column("whatsapp_template", sa.String(length=512), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("expanded_period", sa.String(length=16), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "reminder_sends",
        sa.Column("id", _ID, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("period_key", sa.String(length=16), nullable=False),
        sa.Column("identity_id", _ID, nullable=True),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.Column("account_number", sa.String(length=20), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=True),
        sa.Column("mode", sa.String(length=16), nullable=True),
        sa.Column("placeholders", sa.JSON(), nullable=True),
        sa.Column("due_at", _AT, nullable=False),
        sa.Column("locked_until", _AT, nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("message_id", _ID, nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("sent_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["reminder_campaigns.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["identity_id"], ["channel_identities.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "campaign_id", "contact_id", "period_key", name="uq_reminder_sends_contact"
        ),
    )
    with op.batch_alter_table("reminder_sends", schema=None) as batch_op:
        batch_op.create_index("ix_reminder_sends_due", ["status", "due_at"], unique=False)
        batch_op.create_index("ix_reminder_sends_campaign", ["campaign_id", "status"], unique=False)
    op.create_table(
        "reminder_consent",
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("state", sa.String(length=8), nullable=False),
        sa.Column("changed_at", _AT, nullable=False),
        sa.Column("how", sa.String(length=32), nullable=False),
        sa.Column("channel_id", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_table(
        "reminder_unreachable",
        sa.Column("identity_id", _ID, nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["identity_id"], ["channel_identities.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("identity_id"),
    )


def downgrade() -> None:
    op.drop_table("reminder_unreachable")
    op.drop_table("reminder_consent")
    with op.batch_alter_table("reminder_sends", schema=None) as batch_op:
        batch_op.drop_index("ix_reminder_sends_campaign")
        batch_op.drop_index("ix_reminder_sends_due")
    op.drop_table("reminder_sends")
    op.drop_table("reminder_campaigns")
