"""mailbox users: auto-responder start and end dates, and how often one sender gets a reply

Revision ID: 0006_i10_autoreply_schedule
Revises: 0006_i17_relay_recipients
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i10_autoreply_schedule'
down_revision = '0006_i11_bounces'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('mailbox_users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('autoreply_start', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('autoreply_end', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('autoreply_interval_days', sa.Integer(), nullable=False,
                                      server_default='1'))


def downgrade() -> None:
    with op.batch_alter_table('mailbox_users', schema=None) as batch_op:
        batch_op.drop_column('autoreply_interval_days')
        batch_op.drop_column('autoreply_end')
        batch_op.drop_column('autoreply_start')
