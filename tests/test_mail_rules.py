"""The mail rules that live once in listmgr/mail/, pinned: what is automatic (RFC 3834) and
who is a robot, hop counting, the address length limit, owners lists. Every caller (command
replies, notices, the auto-responder, ingress, delivery) gets these answers."""

from __future__ import annotations

import email
import email.policy

import pytest

from listmgr.commands import guard
from listmgr.delivery.queue import validate_address
from listmgr.mail import automatic
from listmgr.mail.addresses import MAX_ADDRESS, address_list, is_valid
from listmgr.mail.hops import MAX_HOPS, hop_count, too_many_hops
from listmgr.mailbox.autoreply import skip_reason
from listmgr.posting.message import RawMessage
from listmgr.smtp.routing import Refusal, route


def headers(text: str):
    return email.message_from_string(text + "\n\n", policy=email.policy.default)


ROBOTS = ["MAILER-DAEMON@x.example", "postmaster@x.example", "owner-demo@x.example",
          "demo-request@x.example", "demo-owner@x.example", "demo-approval@x.example",
          "demo-bounces@x.example", "demo-bounces+joe=y.example@x.example",
          "demo-admin@x.example", "majordomo@x.example", "listserv@x.example",
          "noreply@x.example", "no-reply@x.example", "do-not-reply@x.example",
          "bounce@x.example", "<Mailer-Daemon@X.example>"]
PEOPLE = ["joe@x.example", "requester@x.example", "owner@x.example", "listener@x.example",
          "daemon@x.example"]


@pytest.mark.parametrize("address", ROBOTS)
def test_robots_are_robots_everywhere(address):
    assert automatic.is_robot(address)
    assert automatic.is_automatic(address.strip("<>"))
    # the command guard, the auto-responder and the posting notices agree
    assert guard.refusal(headers(""), mail_from=address.strip("<>"), requester="joe@y.example",
                         domain="example.org") is not None
    assert skip_reason(address.strip("<>"), "alice@example.org", headers("")) is not None


@pytest.mark.parametrize("address", PEOPLE)
def test_people_are_not_robots(address):
    assert not automatic.is_robot(address)
    assert automatic.reason(address, headers("Subject: hi")) is None
    assert guard.refusal(headers("Subject: hi"), mail_from=address, requester=address,
                         domain="example.org") is None
    assert skip_reason(address, "alice@example.org", headers("Subject: hi")) is None


@pytest.mark.parametrize("head,automatic_", [
    ("Auto-Submitted: auto-replied", True),
    ("Auto-Submitted: auto-generated; owner-email=x@y", True),
    ("Auto-Submitted: no", False),
    ("Auto-Submitted: No ; comment", False),
    ("Precedence: bulk", True),
    ("Precedence: LIST", True),
    ("Precedence: junk", True),
    ("Precedence: urgent", False),
    ("List-Id: <demo.example.net>", False),  # list mail: only the auto-responder minds
])
def test_auto_submitted_and_precedence(head, automatic_):
    for h in (headers(head), RawMessage.parse(f"{head}\r\n\r\nbody".encode())):
        assert automatic.is_automatic("joe@x.example", h) is automatic_


def test_the_null_sender_is_automatic():
    assert automatic.reason("", None) == "null sender"
    assert automatic.reason("", headers("Auto-Submitted: no")) == "null sender"


@pytest.mark.parametrize("head", ["List-Id: <demo.example.net>", "List-Unsubscribe: <x>",
                                  "X-Loop: someone", "Mailing-List: x",
                                  "X-Auto-Response-Suppress: OOF"])
def test_list_mail_counts_for_the_auto_responder_only(head):
    assert automatic.reason("joe@x.example", headers(head), list_mail=True) is not None
    assert automatic.reason("joe@x.example", headers(head)) is None


def test_a_robot_reply_to_address_is_a_robot_too():
    assert automatic.reason("joe@x.example", None, sender="demo-request@y.example")


def test_unreadable_headers_count_as_absent():
    class Broken:
        def get_all(self, name):
            raise ValueError("bad header")
    assert automatic.header(Broken(), "Precedence") == ""
    assert automatic.reason("joe@x.example", Broken()) is None


# --------------------------------------------------------------------------- hops

@pytest.mark.parametrize("data,n", [
    (b"Received: a\r\nreceived: b\r\nX: y\r\n\r\nReceived: body\r\n", 2),
    (b"Received: a\nreceived: b\nX: y\n\nReceived: body\n", 2),       # bare LF
    (b"Received: a\r\nX: y\n\nReceived: body\r\n\r\nReceived: c", 1),  # mixed: first blank
    (b"Received: a\r\nReceived : b\r\nX-Received: c\r\n\r\n", 2),
    (b"\r\nReceived: in the body\r\n", 0),
    (b"Received: a\r\nReceived: b", 2),                                # no body at all
])
def test_hop_count_whatever_the_line_ends(data, n):
    assert hop_count(data) == n


def test_too_many_hops_is_over_the_limit():
    head = b"Received: x\r\n" * MAX_HOPS
    assert too_many_hops(head + b"\r\nbody") is None
    assert too_many_hops(b"Received: x\r\n" + head + b"\r\nbody") == MAX_HOPS + 1


# --------------------------------------------------------------------------- addresses

class NoDirectory:
    def has_list(self, name):
        return False

    def has_user(self, name):
        return False


def test_the_address_length_limit_is_one_number():
    longest = "a" * 64 + "@" + ".".join(["b" * 63] * 4)  # RFC 5321: 64 + 1 + 255
    assert len(longest) == MAX_ADDRESS
    too_long = "x" + longest
    assert is_valid(longest) and not is_valid(too_long)
    assert validate_address(longest) and not validate_address(too_long)
    assert not isinstance(route(longest, ("example.org",), NoDirectory()), Refusal)
    assert isinstance(route(too_long, ("example.org",), NoDirectory()), Refusal)


def test_owners_lists_parse_one_way():
    assert address_list("a@x.example\nb@y.example, c@z.example  junk\n\nA@X.example") == [
        "a@x.example", "b@y.example", "c@z.example"]
    assert address_list("") == [] and address_list(None) == []
