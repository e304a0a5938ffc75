"""the borrower's own contact preferences (hours, channels not to use, not at the workplace), read by the gate;
case events' actor long enough for `borrower:<loan id>:self_service`; the links' secret's fingerprint

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 07:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contact_preferences",
        sa.Column("borrower_id", sa.String(length=64), sa.ForeignKey("borrowers.id"), nullable=False),
        sa.Column("hours_start", sa.String(length=5), nullable=True),
        sa.Column("hours_end", sa.String(length=5), nullable=True),
        sa.Column("quiet", sa.String(length=64), nullable=False, server_default=""),
        sa.Column("not_at_work", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_by", sa.String(length=80), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("borrower_id"),
    )
    # a borrower's own input is stamped `borrower:<loan id>:self_service`: longer than an operator's id and role
    with op.batch_alter_table("case_events") as t:
        t.alter_column("actor", existing_type=sa.String(length=40), type_=sa.String(length=120), existing_nullable=True)
    with op.batch_alter_table("holds") as t:
        t.alter_column("placed_by", existing_type=sa.String(length=40), type_=sa.String(length=120), existing_nullable=True)
    # the links' secret's fingerprint: the API can tell that the worker signs with another secret
    op.add_column("borrower_links", sa.Column("secret_fp", sa.String(length=12), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("borrower_links") as t:
        t.drop_column("secret_fp")
    with op.batch_alter_table("holds") as t:
        t.alter_column("placed_by", existing_type=sa.String(length=120), type_=sa.String(length=40), existing_nullable=True)
    with op.batch_alter_table("case_events") as t:
        t.alter_column("actor", existing_type=sa.String(length=120), type_=sa.String(length=40), existing_nullable=True)
    op.drop_table("contact_preferences")
