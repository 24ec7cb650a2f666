"""Observations: one find identified from several photos (their predictions, the combined
answer, the Mushroom Observer observation and consensus name when there is one).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "observations",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("prediction_ids", sa.JSON(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("recognised", sa.Boolean(), nullable=True),
        sa.Column("mo_observation_id", sa.BigInteger(), nullable=True),
        sa.Column("mo_consensus", sa.String(200), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_observations_created_at", "observations", ["created_at"])
    op.create_index("ix_observations_user_created", "observations", ["username", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_observations_user_created", table_name="observations")
    op.drop_index("ix_observations_created_at", table_name="observations")
    op.drop_table("observations")
