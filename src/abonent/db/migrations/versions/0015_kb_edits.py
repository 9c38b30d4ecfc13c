"""kb edits

The editors' changes to the knowledge base (applied on top of the YAML files when the
consultant builds), the retraining runs with their progress and verdict (the newest
accepted one is the model every process follows), and a named lease so two processes
never train at once.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_AT = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kb_edits",
        sa.Column("id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=64), nullable=True),
        sa.Column("texts", sa.JSON(), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("author_id", _ID, nullable=True),
        sa.Column("author_login", sa.String(length=64), nullable=False),
        sa.Column("created_at", _AT, nullable=False),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "nlu_trainings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_by", _ID, nullable=True),
        sa.Column("edits_upto", _ID, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(length=200), nullable=False),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", _AT, nullable=False),
        sa.Column("finished_at", _AT, nullable=True),
        sa.ForeignKeyConstraint(["requested_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_nlu_trainings_status", "nlu_trainings", ["status", "id"])
    op.create_table(
        "nlu_leases",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=True),
        sa.Column("expires_at", _AT, nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )


def downgrade() -> None:
    op.drop_table("nlu_leases")
    op.drop_index("ix_nlu_trainings_status", table_name="nlu_trainings")
    op.drop_table("nlu_trainings")
    op.drop_table("kb_edits")
