"""lists: DMARC mitigation and require_auth settings

Revision ID: 0006_i12_dmarc_settings
Revises: 0006_i17_relay_recipients
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i12_dmarc_settings'
down_revision = '0006_i13_majordomo_keywords'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.add_column(sa.Column('dmarc_mitigation', sa.String(length=16),
                                      nullable=False, server_default='munge_from'))
        batch_op.add_column(sa.Column('dmarc_when', sa.String(length=16), nullable=False,
                                      server_default='quarantine'))
        batch_op.add_column(sa.Column('require_auth', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        batch_op.drop_column('require_auth')
        batch_op.drop_column('dmarc_when')
        batch_op.drop_column('dmarc_mitigation')
