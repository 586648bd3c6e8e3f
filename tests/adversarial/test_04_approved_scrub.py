"""Item 4: an `Approved:` password never leaks when a held post is approved.

A post whose Approved: line the chain could not take out (base64, quoted-printable, the
first line of a MIME part, multipart/alternative) is held; approving it once sent the
password to every member and into the archive. Now approval takes it out of every text
part (or refuses), and the archive written before is scrubbed once at start.
"""

from __future__ import annotations

import base64
import email
import email.policy

import pytest
from sqlalchemy import select

from listmgr.posting import moderation, scrub
from listmgr.posting.archive import archive_dir
from listmgr.store.models import OutboundMessage, SiteSetting
from tests.adversarial.support import MEMBERS, app_call, held, make_list, store_inbound

PW = "s3cret"


def b64(text: str) -> str:
    return base64.encodebytes(text.encode()).decode()


def plain_b64() -> str:
    return ("From: alice@example.com\nTo: demo@example.org\nSubject: b64\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            + b64(f"Approved: {PW}\n\nThe real text.\n"))


def plain_qp() -> str:
    return ("From: alice@example.com\nTo: demo@example.org\nSubject: qp\nMIME-Version: 1.0\n"
            "Content-Type: text/plain; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            f"Approved: {PW}\n\nThe real text =E2=9C=93.\n")


def alternative() -> str:
    return ("From: alice@example.com\nTo: demo@example.org\nSubject: alt\nMIME-Version: 1.0\n"
            'Content-Type: multipart/alternative; boundary="b"\n\n'
            "--b\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n"
            + b64(f"Approved: {PW}\n\nThe real text.\n") +
            "--b\nContent-Type: text/html; charset=utf-8\n"
            "Content-Transfer-Encoding: quoted-printable\n\n"
            f"<html><body><p>Approved: {PW}</p><p>The real text.</p></body></html>\n"
            "--b--\n")


def first_line_of_part() -> str:
    return ("From: alice@example.com\nTo: demo@example.org\nSubject: part\nMIME-Version: 1.0\n"
            'Content-Type: multipart/mixed; boundary="m"\n\n'
            "--m\nContent-Type: text/plain\n\n"
            f"Approved: {PW}\nThe real text.\n"
            "--m--\n")


def texts_of(data: bytes) -> str:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    return "\n".join(p.get_content() for p in msg.walk()
                     if not p.is_multipart() and p.get_content_maintype() == "text")


@pytest.mark.parametrize("make", [plain_b64, plain_qp, alternative, first_line_of_part])
def test_approving_a_held_post_sends_no_password(app, make):
    make_list(app_call(app), post_policy="open")
    store_inbound(app, make().encode(), mail_from=MEMBERS[0])
    (h,) = held(app)
    with app.store.session() as s:
        moderation.decide(app, s, h.id, approve=True, by="owner")
    with app.store.session() as s:
        paths = s.scalars(select(OutboundMessage.spool_path).where(
            OutboundMessage.origin.startswith("post:"))).all()
    assert len(paths) == 1
    sent = app.spool.read(paths[0])
    assert PW.encode() not in sent
    assert PW not in texts_of(sent)
    assert "The real text" in texts_of(sent)
    for f in archive_dir(app.config, "demo").glob("*"):
        assert PW.encode() not in f.read_bytes()


def test_unremovable_password_refuses_the_approval():
    data = ("From: a@example.com\nSubject: x\nMIME-Version: 1.0\n"
            'Content-Type: multipart/alternative; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nApproved: s3cret\nhi\n"
            "--b\nContent-Type: text/html\n\n<p>Approved: <b>s3cret</b></p>\n--b--\n").encode()
    with pytest.raises(scrub.ApprovalLeak):
        scrub.scrub(data)


def test_the_archive_is_scrubbed_once_at_start(server, app):
    from listmgr.posting.archive import append
    make_list(app_call(app))
    for make in (plain_b64, alternative, first_line_of_part):
        append(app.config, "demo", make().encode(), envelope_from="owner-demo@example.org")
    append(app.config, "demo", b"From: a@example.com\nSubject: clean\n\nFrom the heart.\n",
           envelope_from="owner-demo@example.org")
    [path] = list(archive_dir(app.config, "demo").glob("*"))
    with app.store.session() as s:
        assert s.get(SiteSetting, scrub.SCRUB_MARKER) is not None  # set by the migration
    server()
    raw = path.read_bytes()
    assert PW.encode() not in raw
    assert raw.count(b"\nFrom ") + raw.startswith(b"From ") == 4  # no entry lost
    assert b">From the heart." in raw and b"The real text" in raw
    with app.store.session() as s:
        assert s.get(SiteSetting, scrub.SCRUB_MARKER) is None
