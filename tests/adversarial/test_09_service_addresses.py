"""Item 9: the server's own addresses are never members, in any spelling, on any path.

`listmgr subscribe lista listb@example.org` and `subscribe demo "lista"@example.org` by
mail once succeeded, and the second delivered demo's posts to lista's members.
"""

from __future__ import annotations

import pytest

from listmgr.commands.guard import is_service_address
from tests.adversarial.support import app_call, make_list
from tests.commands_helpers import cmd_app, mailer, members_of  # noqa: F401  (fixtures)
from tests.commands_helpers import make_list as cmd_make_list
from tests.support import run_cli

FORMS = ["lista@example.org", '"lista"@example.org', "LISTA@Example.ORG",
         "lista@example.org.", '"lista"@EXAMPLE.org.', "<lista@example.org>",
         "lista-request@example.org", "lista-owner@example.org", "owner-lista@example.org",
         "lista-approval@example.org", "majordomo@example.org", "postmaster@example.org",
         '"Postmaster"@example.org', "mailer-daemon@example.org", "majordomo-owner@example.org"]


@pytest.mark.parametrize("addr", FORMS)
def test_every_form_is_recognised(addr):
    assert is_service_address(addr, local_domains=("example.org",),
                              has_list=lambda n: n in ("lista", "demo"))


@pytest.mark.parametrize("addr", ["lista@example.net", "alice@example.org",
                                  '"alice smith"@example.org'])
def test_ordinary_addresses_are_not(addr):
    assert not is_service_address(addr, local_domains=("example.org",),
                                  has_list=lambda n: n in ("lista", "demo"))


@pytest.mark.parametrize("addr", ["lista@example.org", '"lista"@example.org',
                                  "LISTA@example.org.", "lista-request@example.org",
                                  "postmaster@example.org"])
def test_cli_subscribe_refuses(app, tmp_path, addr):
    call = app_call(app)
    make_list(call, "demo", members=())
    make_list(call, "lista", members=("x@example.com",))
    r = run_cli(tmp_path / "listmgr.toml", "subscribe", "demo", addr)
    assert r.status != 0
    # A trailing dot is refused as an incomplete address before the service check.
    assert "an address of this mail server" in r.err or addr.endswith(".")
    with app.store.session() as s:
        from listmgr.store import lists as repo
        assert repo.member_count(s, repo.get_list(s, "demo")) == 0


def test_cli_subscribe_refuses_them_in_a_batch_and_adds_the_rest(app, tmp_path):
    call = app_call(app)
    make_list(call, "demo", members=())
    make_list(call, "lista", members=())
    r = run_cli(tmp_path / "listmgr.toml", "subscribe", "demo", "-",
                stdin='"lista"@example.org\nreal@example.com\nowner-lista@example.org\n')
    assert r.status == 0
    assert "subscribed 1, 2 invalid" in r.out


@pytest.mark.parametrize("addr", ['"lista"@example.org', "LISTA@example.org.",
                                  '"lista-request"@example.org'])
def test_mail_subscribe_refuses(mailer, addr):
    cmd_make_list(mailer.app, "demo", subscribe_policy="open")
    cmd_make_list(mailer.app, "lista", members=("x@example.com",))
    out = mailer.send(f"subscribe demo {addr}\n", frm="owner@example.com")
    assert "is an address of this mail server and cannot be subscribed" in out.text \
        or (addr.endswith(".") and "does not seem to be a" in out.text)
    assert members_of(mailer.app, "demo") == []
