"""unhandled messages index

Every turn looks for the conversation's oldest customer message still to answer
(whichever process received it): an index on (conversation_id, handled, id) finds it
in one step, however long the conversation has grown.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_messages_unhandled", "messages", ["conversation_id", "handled", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_messages_unhandled", table_name="messages")
