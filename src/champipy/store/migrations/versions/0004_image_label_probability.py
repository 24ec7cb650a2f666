"""A predicted label keeps its probability: images.label_probability (NULL: a label a person
gave, or one stored before this revision). Retraining admits predicted labels by it.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("images") as batch:  # batch: SQLite cannot ALTER much in place
        batch.add_column(sa.Column("label_probability", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("images") as batch:
        batch.drop_column("label_probability")
