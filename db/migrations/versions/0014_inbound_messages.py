"""borrowers' SMS replies, matched to their case, acted on by keyword or left for a person

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07 13:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inbound_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("in_reply_to", sa.String(length=100), nullable=True),
        sa.Column("loan_id", sa.String(length=64), nullable=True),
        sa.Column("workflow_id", sa.String(length=80), nullable=True),
        sa.Column("sender_tail", sa.String(length=4), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("keyword", sa.String(length=8), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("result", sa.Text(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_index("ix_inbound_messages_loan_id", "inbound_messages", ["loan_id"])
    op.create_index("ix_inbound_messages_received_at", "inbound_messages", ["received_at"])


def downgrade() -> None:
    op.drop_table("inbound_messages")
