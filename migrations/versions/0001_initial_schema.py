"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-29
"""
from alembic import op
import sqlalchemy as sa


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('inbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.String(length=32), nullable=False),
    sa.Column('spool_path', sa.String(length=255), nullable=False),
    sa.Column('mail_from', sa.String(length=320), nullable=False),
    sa.Column('client_ip', sa.String(length=64), nullable=False),
    sa.Column('client_helo', sa.String(length=255), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('received_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_messages')),
    sa.UniqueConstraint('queue_id', name=op.f('uq_inbound_messages_queue_id'))
    )
    op.create_table('lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('owners', sa.Text(), nullable=False),
    sa.Column('admin_passwd_hash', sa.String(length=255), nullable=False),
    sa.Column('approve_passwd_hash', sa.String(length=255), nullable=False),
    sa.Column('subscribe_policy', sa.String(length=20), nullable=False),
    sa.Column('unsubscribe_policy', sa.String(length=20), nullable=False),
    sa.Column('post_policy', sa.String(length=20), nullable=False),
    sa.Column('nonmember_action', sa.String(length=10), nullable=False),
    sa.Column('who_access', sa.String(length=10), nullable=False),
    sa.Column('which_access', sa.String(length=10), nullable=False),
    sa.Column('info_access', sa.String(length=10), nullable=False),
    sa.Column('intro_access', sa.String(length=10), nullable=False),
    sa.Column('index_access', sa.String(length=10), nullable=False),
    sa.Column('get_access', sa.String(length=10), nullable=False),
    sa.Column('advertise', sa.Text(), nullable=False),
    sa.Column('noadvertise', sa.Text(), nullable=False),
    sa.Column('announcements', sa.Boolean(), nullable=False),
    sa.Column('welcome', sa.Boolean(), nullable=False),
    sa.Column('strip', sa.Boolean(), nullable=False),
    sa.Column('administrivia', sa.Boolean(), nullable=False),
    sa.Column('subject_prefix', sa.String(length=255), nullable=False),
    sa.Column('reply_to', sa.String(length=255), nullable=False),
    sa.Column('precedence', sa.String(length=32), nullable=False),
    sa.Column('maxlength', sa.Integer(), nullable=True),
    sa.Column('message_footer', sa.Text(), nullable=False),
    sa.Column('message_fronter', sa.Text(), nullable=False),
    sa.Column('message_headers', sa.Text(), nullable=False),
    sa.Column('moderator', sa.String(length=255), nullable=False),
    sa.Column('taboo_headers', sa.Text(), nullable=False),
    sa.Column('taboo_body', sa.Text(), nullable=False),
    sa.Column('purge_received', sa.Boolean(), nullable=False),
    sa.Column('hold_expiry', sa.Integer(), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('comments', sa.Text(), nullable=False),
    sa.Column('info', sa.Text(), nullable=False),
    sa.Column('intro', sa.Text(), nullable=False),
    sa.Column('date_info', sa.Boolean(), nullable=False),
    sa.Column('date_intro', sa.Boolean(), nullable=False),
    sa.Column('post_sequence', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_lists_name'))
    )
    op.create_table('mailbox_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=64), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('autoreply_enabled', sa.Boolean(), nullable=False),
    sa.Column('autoreply_subject', sa.String(length=255), nullable=False),
    sa.Column('autoreply_body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailbox_users')),
    sa.UniqueConstraint('name', name=op.f('uq_mailbox_users_name'))
    )
    op.create_table('outbound_messages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('queue_id', sa.String(length=32), nullable=False),
    sa.Column('spool_path', sa.String(length=255), nullable=False),
    sa.Column('mail_from', sa.String(length=320), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('origin', sa.String(length=64), nullable=False),
    sa.Column('arrival_at', sa.DateTime(), nullable=False),
    sa.Column('received_from', sa.String(length=255), nullable=False),
    sa.Column('warned_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_messages')),
    sa.UniqueConstraint('queue_id', name=op.f('uq_outbound_messages_queue_id'))
    )
    op.create_table('rate_counters',
    sa.Column('key', sa.String(length=400), nullable=False),
    sa.Column('window_start', sa.DateTime(), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_rate_counters'))
    )
    op.create_table('relay_grants',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('user', sa.String(length=64), nullable=False),
    sa.Column('granted_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relay_grants'))
    )
    with op.batch_alter_table('relay_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_relay_grants_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_relay_grants_ip'), ['ip'], unique=False)

    op.create_table('site_settings',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_site_settings'))
    )
    op.create_table('tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('token_hash', sa.String(length=128), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('list_name', sa.String(length=64), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('used_at', sa.DateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_tokens_token_hash'))
    )
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tokens_expires_at'), ['expires_at'], unique=False)

    op.create_table('held_posts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('spool_path', sa.String(length=255), nullable=False),
    sa.Column('mail_from', sa.String(length=320), nullable=False),
    sa.Column('sender', sa.String(length=320), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('reasons', sa.Text(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('held_at', sa.DateTime(), nullable=False),
    sa.Column('expires_at', sa.DateTime(), nullable=False),
    sa.Column('decided_at', sa.DateTime(), nullable=True),
    sa.Column('decision_note', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_held_posts_list_id_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_held_posts'))
    )
    with op.batch_alter_table('held_posts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_held_posts_expires_at'), ['expires_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_held_posts_list_id'), ['list_id'], unique=False)

    op.create_table('inbound_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.String(length=320), nullable=False),
    sa.Column('rcpt', sa.String(length=320), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('lease_owner', sa.String(length=64), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['inbound_messages.id'], name=op.f('fk_inbound_tasks_message_id_inbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_tasks'))
    )
    with op.batch_alter_table('inbound_tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_tasks_message_id'), ['message_id'], unique=False)
        batch_op.create_index('ix_inbound_tasks_state_lease', ['state', 'lease_until'], unique=False)

    op.create_table('members',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('key', sa.String(length=320), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('delivery_enabled', sa.Boolean(), nullable=False),
    sa.Column('subscribed_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_members_list_id_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('list_id', 'key', name=op.f('uq_members_list_id_key'))
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_members_key'), ['key'], unique=False)

    op.create_table('outbound_recipients',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('rcpt', sa.String(length=320), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_attempt_at', sa.DateTime(), nullable=True),
    sa.Column('lease_owner', sa.String(length=64), nullable=False),
    sa.Column('lease_until', sa.DateTime(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('diagnostic', sa.Text(), nullable=False),
    sa.Column('remote_mta', sa.String(length=255), nullable=False),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['message_id'], ['outbound_messages.id'], name=op.f('fk_outbound_recipients_message_id_outbound_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbound_recipients'))
    )
    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbound_recipients_domain'), ['domain'], unique=False)
        batch_op.create_index('ix_outbound_recipients_due', ['state', 'next_attempt_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbound_recipients_message_id'), ['message_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('outbound_recipients', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbound_recipients_message_id'))
        batch_op.drop_index('ix_outbound_recipients_due')
        batch_op.drop_index(batch_op.f('ix_outbound_recipients_domain'))

    op.drop_table('outbound_recipients')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_key'))

    op.drop_table('members')
    with op.batch_alter_table('inbound_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_tasks_state_lease')
        batch_op.drop_index(batch_op.f('ix_inbound_tasks_message_id'))

    op.drop_table('inbound_tasks')
    with op.batch_alter_table('held_posts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_held_posts_list_id'))
        batch_op.drop_index(batch_op.f('ix_held_posts_expires_at'))

    op.drop_table('held_posts')
    with op.batch_alter_table('tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tokens_expires_at'))

    op.drop_table('tokens')
    op.drop_table('site_settings')
    with op.batch_alter_table('relay_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_relay_grants_ip'))
        batch_op.drop_index(batch_op.f('ix_relay_grants_expires_at'))

    op.drop_table('relay_grants')
    op.drop_table('rate_counters')
    op.drop_table('outbound_messages')
    op.drop_table('mailbox_users')
    op.drop_table('lists')
    op.drop_table('inbound_messages')

