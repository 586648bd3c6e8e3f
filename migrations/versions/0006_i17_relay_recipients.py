"""inbound tasks: one relay task per message (its recipients listed), claims by kind

Revision ID: 0006_i17_relay_recipients
Revises: 0005_outbound_partial_indexes
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i17_relay_recipients'
down_revision = '0005_outbound_partial_indexes'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('inbound_tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('recipients', sa.Text(), nullable=False,
                                      server_default=''))
        batch_op.create_index('ix_inbound_tasks_state_kind', ['state', 'kind'], unique=False)
    # Relay tasks still waiting from before: one per message, listing every recipient.
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, message_id, target FROM inbound_tasks "
        "WHERE kind = 'relay' AND state = 'new' ORDER BY message_id, id")).fetchall()
    by_message: dict[int, list] = {}
    for row in rows:
        by_message.setdefault(row[1], []).append(row)
    for tasks in by_message.values():
        if len(tasks) < 2:
            continue
        targets = list(dict.fromkeys(t[2] for t in tasks))
        conn.execute(sa.text("UPDATE inbound_tasks SET recipients = :r WHERE id = :id"),
                     {"r": "\n".join(targets), "id": tasks[0][0]})
        conn.execute(sa.text("UPDATE inbound_tasks SET state = 'done', lease_until = NULL "
                             "WHERE id IN (%s)" % ",".join(str(int(t[0])) for t in tasks[1:])))


def downgrade() -> None:
    # Give each recipient of a waiting relay task its own task again.
    conn = op.get_bind()
    rows = conn.execute(sa.text(
        "SELECT id, message_id, recipients FROM inbound_tasks "
        "WHERE kind = 'relay' AND state = 'new' AND recipients != ''")).fetchall()
    for task_id, message_id, recipients in rows:
        for rcpt in [r for r in recipients.split("\n") if r][1:]:
            conn.execute(sa.text(
                "INSERT INTO inbound_tasks (message_id, kind, target, rcpt, state, lease_owner, "
                "attempts, error) VALUES (:m, 'relay', :t, :t, 'new', '', 0, '')"),
                {"m": message_id, "t": rcpt})
    with op.batch_alter_table('inbound_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_inbound_tasks_state_kind')
        batch_op.drop_column('recipients')
