"""lists: the Majordomo 1.94.5 keywords not held before (restrict_post, sender, digest_*...);
members: digest mode; digest_entries: posts waiting for a list's next digest

Revision ID: 0006_i13_majordomo_keywords
Revises: 0006_i17_relay_recipients
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i13_majordomo_keywords'
down_revision = '0006_i10_autoreply_schedule'
branch_labels = None
depends_on = None

COLUMNS = [
    ('maxlength_counts', sa.String(10), 'message'),
    ('restrict_post', sa.Text(), ''),
    ('restrict_post_reply_to', sa.Boolean(), sa.false()),
    ('sender', sa.String(320), ''),
    ('resend_host', sa.String(255), ''),
    ('mungedomain', sa.Boolean(), sa.false()),
    ('debug', sa.Boolean(), sa.false()),
    ('archive_dir', sa.Text(), ''),
    ('digest_archive', sa.Text(), ''),
    ('digest_work_dir', sa.Text(), ''),
    ('digest_name', sa.String(255), ''),
    ('digest_volume', sa.Integer(), '1'),
    ('digest_issue', sa.Integer(), '1'),
    ('digest_rm_footer', sa.String(64), ''),
    ('digest_rm_fronter', sa.String(64), ''),
    ('digest_format', sa.String(10), 'mime'),
]
NULLABLE = [('digest_maxlines', sa.Integer()), ('digest_maxdays', sa.Integer()),
            ('info_updated_at', sa.DateTime()), ('intro_updated_at', sa.DateTime())]


def upgrade() -> None:
    with op.batch_alter_table('lists', schema=None) as batch_op:
        for name, type_, default in COLUMNS:
            batch_op.add_column(sa.Column(name, type_, nullable=False, server_default=default))
        for name, type_ in NULLABLE:
            batch_op.add_column(sa.Column(name, type_, nullable=True))
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('digest', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        'digest_entries',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('list_id', sa.Integer(), nullable=False),
        sa.Column('data', sa.LargeBinary(), nullable=False),
        sa.Column('lines', sa.Integer(), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('queued_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['list_id'], ['lists.id'],
                                name=op.f('fk_digest_entries_list_id_lists'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_entries')),
    )
    with op.batch_alter_table('digest_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_digest_entries_list_id'), ['list_id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('digest_entries', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_digest_entries_list_id'))
    op.drop_table('digest_entries')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_column('digest')
    with op.batch_alter_table('lists', schema=None) as batch_op:
        for name, _type, _default in reversed(COLUMNS):
            batch_op.drop_column(name)
        for name, _type in NULLABLE:
            batch_op.drop_column(name)
