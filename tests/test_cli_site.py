"""`listmgr site-password` stores a hash that approves list creation by mail."""

from __future__ import annotations

from listmgr.commands.context import SITE_PASSWORD_KEY
from listmgr.passwords import verify_password
from listmgr.store.models import SiteSetting
from tests.support import run_cli


def test_site_password(app, config_file):
    cfg = config_file()
    r = run_cli(cfg, "site-password", stdin="short\n")
    assert r.status == 1 and "at least 8 characters" in r.err
    r = run_cli(cfg, "site-password", stdin="correct-horse\n")
    assert r.status == 0, r.err
    assert r.out.strip() == "site password set"
    with app.store.session() as s:
        row = s.get(SiteSetting, SITE_PASSWORD_KEY)
        assert row.value.startswith("$argon2id$")
        assert "correct-horse" not in row.value
        assert verify_password(row.value, "correct-horse")
    from tests.commands_helpers import Mailer
    out = Mailer(app).send("approve correct-horse newlist fans fan@example.com",
                           frm="admin@example.org")
    assert "List fans created; its password has been sent to fan@example.com." in out.lines
