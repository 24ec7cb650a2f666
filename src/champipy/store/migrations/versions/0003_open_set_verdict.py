"""Predictions keep their open-set verdict: predictions.open_set_score and open_set_threshold
(NULL: the model version had no open-set score).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("predictions") as batch:  # batch: SQLite cannot ALTER much in place
        batch.add_column(sa.Column("open_set_score", sa.Float(), nullable=True))
        batch.add_column(sa.Column("open_set_threshold", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("open_set_threshold")
        batch.drop_column("open_set_score")
