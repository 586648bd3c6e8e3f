"""outbound recipients: partial indexes on the rows still in play

Revision ID: 0005_outbound_partial_indexes
Revises: 0004_outbound_delivery
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0005_outbound_partial_indexes'
down_revision = '0004_outbound_delivery'
branch_labels = None
depends_on = None

QUEUED = "state = 'queued'"
PENDING = "state IN ('queued', 'bounce')"
BOUNCE = "state = 'bounce'"


def _where(clause: str) -> dict:
    return {"sqlite_where": sa.text(clause), "postgresql_where": sa.text(clause)}


def upgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_recipients_due')
        batch_op.drop_index('ix_outbound_recipients_message_state')
        batch_op.create_index('ix_outbound_recipients_due', ['next_attempt_at'], unique=False,
                              **_where(QUEUED))
        batch_op.create_index('ix_outbound_recipients_pending', ['message_id', 'state'],
                              unique=False, **_where(PENDING))
        batch_op.create_index('ix_outbound_recipients_bounce', ['message_id'], unique=False,
                              **_where(BOUNCE))
        batch_op.create_index('ix_outbound_recipients_message_id', ['message_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_recipients_message_id')
        batch_op.drop_index('ix_outbound_recipients_bounce')
        batch_op.drop_index('ix_outbound_recipients_pending')
        batch_op.drop_index('ix_outbound_recipients_due')
        batch_op.create_index('ix_outbound_recipients_message_state', ['message_id', 'state'],
                              unique=False)
        batch_op.create_index('ix_outbound_recipients_due', ['state', 'next_attempt_at'],
                              unique=False)
