"""partial unhandled messages index

The index of customer messages still to answer now holds only those (handled = false):
a turn still finds a conversation's oldest one in one step, every message written costs
one index entry less for good, and a process can look for messages another process left
unanswered when it died by reading this small index whole.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_messages_unhandled", table_name="messages")
    unhandled = sa.column("handled") == sa.false()
    op.create_index(
        "ix_messages_unhandled",
        "messages",
        ["conversation_id", "id"],
        unique=False,
        postgresql_where=unhandled,
        sqlite_where=unhandled,
    )


def downgrade() -> None:
    op.drop_index("ix_messages_unhandled", table_name="messages")
    op.create_index(
        "ix_messages_unhandled", "messages", ["conversation_id", "handled", "id"], unique=False
    )
