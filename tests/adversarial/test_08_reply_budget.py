"""Item 8: one budget of mails per address, notices included, and true hold reasons.

`replies_per_hour = 20` once allowed 40 mails to one address (20 replies plus 20
confirmations), and 30 forged-sender posts that looked like commands sent 30 notices to
the forged address. A post held because a pattern ran out of time told the poster it
"looks like a command".
"""

from __future__ import annotations

from sqlalchemy import select

from listmgr.store.models import OutboundMessage, OutboundRecipient
from tests.adversarial.support import app_call, held, make_list, post_text, store_inbound
from tests.commands_helpers import cmd_app, mailer  # noqa: F401  (fixtures)
from tests.commands_helpers import make_list as cmd_make_list


def mails_to(app, address: str) -> int:
    with app.store.session() as s:
        return len(s.scalars(select(OutboundRecipient.id).where(
            OutboundRecipient.rcpt == address)).all())


def test_replies_and_confirmations_share_one_budget(mailer):
    cmd_make_list(mailer.app, "demo", subscribe_policy="open+confirm")
    limit = mailer.app.config.commands.replies_per_hour
    for _ in range(limit + 10):
        mailer.send("subscribe demo\n", frm="victim@example.net")
    assert mails_to(mailer.app, "victim@example.net") <= limit


def test_forged_administrivia_posts_do_not_flood_the_forged_sender(app):
    make_list(app_call(app), members=())
    limit = app.config.commands.replies_per_hour
    for _ in range(limit + 10):
        store_inbound(app, post_text(frm="victim@example.net", subject="unsubscribe").encode(),
                      mail_from="victim@example.net")
    assert len(held(app)) == limit + 10  # every post is still held for the moderator
    assert mails_to(app, "victim@example.net") <= limit


def test_a_timeout_is_not_called_a_command(app, tmp_path, db_url):
    from listmgr import config as config_mod
    from listmgr.app import App
    from tests.support import write_config
    cfg = config_mod.load(write_config(tmp_path, db_url, posting__rule_time_budget="0.3s",
                                       posting__administrivia=["(x|x)+y"]))
    slow = App.from_config(cfg)
    try:
        make_list(app_call(slow), members=("poster@example.net",))
        store_inbound(slow, post_text(frm="poster@example.net", subject="x" * 40).encode(),
                      mail_from="poster@example.net")
        (h,) = held(slow)
        assert "ran out of time" in h.reasons[0]
        with slow.store.session() as s:
            origins = s.scalars(select(OutboundMessage.origin).join(
                OutboundRecipient, OutboundRecipient.message_id == OutboundMessage.id).where(
                OutboundRecipient.rcpt == "poster@example.net")).all()
        assert origins == []  # no "looks like a command" notice
    finally:
        slow.store.dispose()
