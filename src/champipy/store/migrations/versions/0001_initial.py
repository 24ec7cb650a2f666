"""Initial schema: users, API tokens, images, predictions, parameters, events, jobs.

Revision ID: 0001
Revises:
Create Date: 2026-01-01
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def utc_datetime(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("username", sa.String(150), primary_key=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("roles", sa.JSON(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        utc_datetime("created_at"),
    )

    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        utc_datetime("created_at"),
        sa.Column("revoked", sa.Boolean(), nullable=False),
    )
    op.create_index("ix_api_tokens_username", "api_tokens", ["username"])

    op.create_table(
        "images",
        sa.Column("sha256", sa.String(64), primary_key=True),
        sa.Column("label", sa.String(200), nullable=False),
        sa.Column("label_source", sa.String(16), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("username", sa.String(150), nullable=True),
        sa.Column("license", sa.String(255), nullable=True),
        sa.Column("copyright", sa.Text(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        utc_datetime("created_at"),
    )
    op.create_index("ix_images_created_at", "images", ["created_at"])

    op.create_table(
        "image_blobs",
        sa.Column(
            "sha256",
            sa.String(64),
            sa.ForeignKey("images.sha256", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )

    op.create_table(
        "predictions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("username", sa.String(150), nullable=False),
        sa.Column("image_sha256", sa.String(64), nullable=False),
        sa.Column("model_name", sa.String(200), nullable=False),
        sa.Column("model_version", sa.String(100), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("source_url", sa.Text(), nullable=True),
        sa.Column("filename", sa.String(255), nullable=True),
        sa.Column("cached", sa.Boolean(), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        utc_datetime("created_at"),
        sa.Column("feedback_species", sa.String(200), nullable=True),
        sa.Column("feedback_username", sa.String(150), nullable=True),
        utc_datetime("feedback_at", nullable=True),
    )
    op.create_index("ix_predictions_created_at", "predictions", ["created_at"])
    op.create_index("ix_predictions_image_version", "predictions", ["image_sha256", "model_version"])
    op.create_index("ix_predictions_url_created", "predictions", ["source_url", "created_at"])
    op.create_index("ix_predictions_user_created", "predictions", ["username", "created_at"])

    op.create_table(
        "parameters",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text(), nullable=False),
    )

    op.create_table(
        "events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        utc_datetime("created_at"),
    )
    op.create_index("ix_events_kind_created", "events", ["kind", "created_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(100), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("username", sa.String(150), nullable=True),
        utc_datetime("created_at"),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        utc_datetime("started_at", nullable=True),
        utc_datetime("finished_at", nullable=True),
        utc_datetime("heartbeat_at", nullable=True),
    )
    op.create_index("ix_jobs_created_at", "jobs", ["created_at"])
    op.create_index("ix_jobs_state_created", "jobs", ["state", "created_at"])


def downgrade() -> None:
    for table in (
        "jobs",
        "events",
        "parameters",
        "predictions",
        "image_blobs",
        "images",
        "api_tokens",
        "users",
    ):
        op.drop_table(table)
