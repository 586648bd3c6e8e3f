"""outbound recipients: index (message_id, state) replaces (message_id), no index on
domain (faster fan-out inserts), transcript column

Revision ID: 0004_outbound_delivery
Revises: 0003_members_list_id_id
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0004_outbound_delivery'
down_revision = '0003_members_list_id_id'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_recipients_message_id')
        batch_op.drop_index('ix_outbound_recipients_domain')
        batch_op.create_index('ix_outbound_recipients_message_state', ['message_id', 'state'],
                              unique=False)
        batch_op.add_column(sa.Column('transcript', sa.Text(), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_column('transcript')
        batch_op.drop_index('ix_outbound_recipients_message_state')
        batch_op.create_index('ix_outbound_recipients_message_id', ['message_id'], unique=False)
        batch_op.create_index('ix_outbound_recipients_domain', ['domain'], unique=False)
