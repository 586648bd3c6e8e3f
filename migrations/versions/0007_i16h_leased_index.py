"""outbound recipients: a partial index on the claimed rows, for the lease heartbeat

Revision ID: 0007_i16h_leased_index
Revises: 0006_i16_fanout_priority
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa


revision = '0007_i16h_leased_index'
down_revision = '0006_i16_fanout_priority'
branch_labels = None
depends_on = None

LEASED = "lease_owner <> ''"


def upgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.create_index('ix_outbound_recipients_leased', ['lease_owner'], unique=False,
                              sqlite_where=sa.text(LEASED), postgresql_where=sa.text(LEASED))


def downgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_recipients_leased')
