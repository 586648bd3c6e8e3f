"""archive: scrub Approved: passwords once (held posts approved before the fix)

The archive is files under data_dir, which a migration cannot see: this revision leaves a
marker row in site_settings, and `listmgr serve` scrubs the archive at its next start
(listmgr.posting.scrub.run_pending), then removes the marker.

Revision ID: 0006_i14_archive_scrub
Revises: 0006_i17_relay_recipients
Create Date: 2026-12-02
"""
from alembic import op
import sqlalchemy as sa


revision = '0006_i14_archive_scrub'
down_revision = '0006_i17_relay_recipients'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.get_bind().execute(sa.text(
        "INSERT INTO site_settings (key, value) VALUES ('archive_scrub_pending', '1')"))


def downgrade() -> None:
    op.get_bind().execute(sa.text(
        "DELETE FROM site_settings WHERE key = 'archive_scrub_pending'"))
