"""contact attempts keep the request as first rendered, so a re-run after a crash sends the same body

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("frozen", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("contact_attempts", schema=None) as batch_op:
        batch_op.drop_column("frozen")
