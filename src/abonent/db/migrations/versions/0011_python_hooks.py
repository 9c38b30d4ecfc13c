"""python hooks

A company's own Python hooks (automation/hooks.py): the queue of runs (one per event
and handler, leased by the worker that runs it), the runs and errors counted per hook
for the admin status, the recent errors themselves, the tags hooks put on
conversations, and the details an integration adds to a customer's card (a phone from
the CRM, never used to join contacts).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "hook_runs",
        sa.Column("id", _ID, nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("hook", sa.String(length=200), nullable=False),
        sa.Column("conversation_id", sa.BigInteger(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _AT, nullable=False),
        sa.Column("locked_until", _AT, nullable=True),
        sa.Column("claim", sa.String(length=32), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.Column("finished_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id", "hook", name="uq_hook_runs_event"),
    )
    op.create_index("ix_hook_runs_due", "hook_runs", ["status", "next_attempt_at"])
    op.create_index("ix_hook_runs_hook", "hook_runs", ["hook", "id"])
    op.create_table(
        "hook_stats",
        sa.Column("hook", sa.String(length=200), nullable=False),
        sa.Column("handled", sa.BigInteger(), nullable=False),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("hook"),
    )
    op.create_table(
        "hook_errors",
        sa.Column("id", _ID, nullable=False),
        sa.Column("hook", sa.String(length=200), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("at", _AT, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_hook_errors_hook", "hook_errors", ["hook", "id"])
    op.create_index("ix_hook_errors_at", "hook_errors", ["at"])
    op.create_table(
        "conversation_tags",
        sa.Column("conversation_id", _ID, nullable=False),
        sa.Column("tag", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["conversation_id"], ["conversations.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("conversation_id", "tag"),
    )
    op.create_table(
        "contact_card_details",
        sa.Column("contact_id", _ID, nullable=False),
        sa.Column("phone", sa.String(length=32), nullable=True),
        sa.Column("source", sa.String(length=200), nullable=True),
        sa.Column("updated_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("contact_id"),
    )


def downgrade() -> None:
    op.drop_table("contact_card_details")
    op.drop_table("conversation_tags")
    op.drop_index("ix_hook_errors_at", table_name="hook_errors")
    op.drop_index("ix_hook_errors_hook", table_name="hook_errors")
    op.drop_table("hook_errors")
    op.drop_table("hook_stats")
    op.drop_index("ix_hook_runs_hook", table_name="hook_runs")
    op.drop_index("ix_hook_runs_due", table_name="hook_runs")
    op.drop_table("hook_runs")
