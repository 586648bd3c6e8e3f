"""members: index (list_id, id) to stream a roster in id order

Revision ID: 0003_members_list_id_id
Revises: 0001
Create Date: 2026-11-29
"""
from alembic import op


revision = '0003_members_list_id_id'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_list_id_id', ['list_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_list_id_id')
