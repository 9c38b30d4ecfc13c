"""reminder schedules and statistics

Cron schedules for reminder campaigns (``reminder_campaigns.cron``), and what followed
each reminder (``reminder_outcomes``: accepted or refused, clicks, opt-out, readings),
written by the reminders' statistics listener from the event log.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("reminder_campaigns", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cron", sa.String(length=100), nullable=True))
    op.create_table(
        "reminder_outcomes",
        sa.Column("send_id", _ID, autoincrement=False, nullable=False),
        sa.Column("campaign_id", _ID, nullable=False),
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("account_number", sa.String(length=20), nullable=True),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("clicked_at", _AT, nullable=True),
        sa.Column("opted_out_at", _AT, nullable=True),
        sa.Column("followed_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["reminder_campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("send_id"),
    )
    with op.batch_alter_table("reminder_outcomes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_reminder_outcomes_campaign", ["campaign_id", "status"], unique=False
        )
        batch_op.create_index("ix_reminder_outcomes_contact", ["contact_id", "at"], unique=False)
        batch_op.create_index(
            "ix_reminder_outcomes_account", ["account_number", "at"], unique=False
        )
        batch_op.create_index(
            "ix_reminder_outcomes_conversation", ["conversation_id", "at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("reminder_outcomes", schema=None) as batch_op:
        batch_op.drop_index("ix_reminder_outcomes_conversation")
        batch_op.drop_index("ix_reminder_outcomes_account")
        batch_op.drop_index("ix_reminder_outcomes_contact")
        batch_op.drop_index("ix_reminder_outcomes_campaign")
    op.drop_table("reminder_outcomes")
    with op.batch_alter_table("reminder_campaigns", schema=None) as batch_op:
        batch_op.drop_column("cron")
