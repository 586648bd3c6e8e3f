"""batched fan-out (fanouts: per-post cursor) and outbound priority classes

Revision ID: 0006_i16_fanout_priority
Revises: 0006_i17_relay_recipients
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i16_fanout_priority'
down_revision = '0006_i12_dmarc_settings'
branch_labels = None
depends_on = None

QUEUED = "state = 'queued'"


def _where(clause: str) -> dict:
    return {"sqlite_where": sa.text(clause), "postgresql_where": sa.text(clause)}


def upgrade() -> None:
    op.create_table(
        'fanouts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('message_id', sa.Integer(), nullable=False),
        sa.Column('list_id', sa.Integer(), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('queued', sa.Integer(), nullable=False),
        sa.Column('lease_owner', sa.String(length=64), nullable=False),
        sa.Column('lease_until', sa.DateTime(), nullable=True),
        sa.Column('started_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['list_id'], ['lists.id'],
                                name=op.f('fk_fanouts_list_id_lists'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['message_id'], ['outbound_messages.id'],
                                name=op.f('fk_fanouts_message_id_outbound_messages'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_fanouts')),
        sa.UniqueConstraint('message_id', name=op.f('uq_fanouts_message_id')),
    )
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.add_column(sa.Column('priority', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.drop_index('ix_outbound_recipients_due')
        batch_op.create_index('ix_outbound_recipients_due', ['priority', 'next_attempt_at'],
                              unique=False, **_where(QUEUED))
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.alter_column('priority', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_index('ix_outbound_recipients_due')
        batch_op.create_index('ix_outbound_recipients_due', ['next_attempt_at'],
                              unique=False, **_where(QUEUED))
        batch_op.drop_column('priority')
    op.drop_table('fanouts')
