"""signalled inputs a case refused or could not read, for the console's "inputs rejected" worklist

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 23:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rejected_inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=220), nullable=False),
        sa.Column("workflow_id", sa.String(length=80), nullable=False),
        sa.Column("loan_id", sa.String(length=64), nullable=False),
        sa.Column("signal", sa.String(length=80), nullable=False),
        sa.Column("input_id", sa.String(length=64), nullable=True),
        sa.Column("field", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("sender", sa.String(length=200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("dedupe_key"),
    )
    op.create_index("ix_rejected_inputs_workflow_id", "rejected_inputs", ["workflow_id"])
    op.create_index("ix_rejected_inputs_loan_id", "rejected_inputs", ["loan_id"])
    op.create_index("ix_rejected_inputs_received_at", "rejected_inputs", ["received_at"])


def downgrade() -> None:
    op.drop_table("rejected_inputs")
