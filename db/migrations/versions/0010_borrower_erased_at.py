"""when the retention job erased a borrower's contact details (PIPL art. 47; workflows/jobs.py Retention)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("borrowers", sa.Column("erased_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("borrowers", "erased_at")
