"""per-recipient delivery, VERP and bounce scores

Revision ID: 0006_i11_bounces
Revises: 0006_i17_relay_recipients
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i11_bounces'
down_revision = '0006_i14_archive_scrub'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('verp', sa.String(length=8), nullable=False,
                                      server_default='on'))
        batch_op.add_column(sa.Column('bounce_score_threshold', sa.Float(), nullable=False,
                                      server_default='5.0'))
        batch_op.add_column(sa.Column('bounce_warnings', sa.Integer(), nullable=False,
                                      server_default='3'))
        batch_op.add_column(sa.Column('bounce_warning_interval', sa.Integer(), nullable=False,
                                      server_default=str(7 * 86400)))
        batch_op.add_column(sa.Column('bounce_info_stale_after', sa.Integer(), nullable=False,
                                      server_default=str(7 * 86400)))
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('disabled_reason', sa.String(length=16), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('disabled_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('bounce_score', sa.Float(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('last_bounce_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_bounce_reason', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.add_column(sa.Column('warnings_sent', sa.Integer(), nullable=False,
                                      server_default='0'))
        batch_op.add_column(sa.Column('last_warning_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('personal', sa.String(length=64), nullable=False,
                                      server_default=''))


def downgrade() -> None:
    with op.batch_alter_table('outbound_messages', schema=None) as batch_op:
        batch_op.drop_column('personal')
    with op.batch_alter_table('members', schema=None) as batch_op:
        for col in ('last_warning_at', 'warnings_sent', 'last_bounce_reason', 'last_bounce_at',
                    'bounce_score', 'disabled_at', 'disabled_reason'):
            batch_op.drop_column(col)
    with op.batch_alter_table('lists', schema=None) as batch_op:
        for col in ('bounce_info_stale_after', 'bounce_warning_interval', 'bounce_warnings',
                    'bounce_score_threshold', 'verp'):
            batch_op.drop_column(col)
