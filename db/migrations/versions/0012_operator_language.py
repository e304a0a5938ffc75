"""the console language an operator chose (zh_CN or en), kept on their record so that it follows them to any browser

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 12:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("operators", sa.Column("language", sa.String(length=8), nullable=True))


def downgrade() -> None:
    op.drop_column("operators", "language")
