"""SQLite: no (tx, id) index on the events

On SQLite ``events.tx`` is always 0, so the index on (tx, id) held the primary key's
order a second time, and every event written paid for another b-tree page. Readers
there go by id (``core.eventlog.after``). PostgreSQL keeps it: its readers' cursor is
the (transaction id, id) pair.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 19:30:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_events_tx_id", table_name="events")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_events_tx_id", "events", ["tx", "id"], unique=False)
