"""readings waiting for the billing

``billing_readings_queue``: customers' readings on their way to an HTTP billing, written
with the bot's reply and delivered (idempotently, by our submission id) when billing
answers; and ``readings_history.exported_at``, what ``abonent billing export-readings``
has already written out for a billing fed by files.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "billing_readings_queue",
        sa.Column("id", _ID, nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("account_number", sa.String(length=20), nullable=False),
        sa.Column("plan", sa.String(length=16), nullable=False),
        sa.Column("readings", sa.JSON(), nullable=False),
        sa.Column("taken_on", sa.Date(), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("replace", sa.Boolean(), nullable=False),
        sa.Column("conversation_id", _ID, nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("submission_id"),
    )
    with op.batch_alter_table("billing_readings_queue", schema=None) as batch_op:
        batch_op.create_index(
            "ix_billing_readings_queue_due", ["state", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            "ix_billing_readings_queue_account", ["account_number", "id"], unique=False
        )
    with op.batch_alter_table("readings_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("exported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("readings_history", schema=None) as batch_op:
        batch_op.drop_column("exported_at")
    with op.batch_alter_table("billing_readings_queue", schema=None) as batch_op:
        batch_op.drop_index("ix_billing_readings_queue_account")
        batch_op.drop_index("ix_billing_readings_queue_due")
    op.drop_table("billing_readings_queue")
