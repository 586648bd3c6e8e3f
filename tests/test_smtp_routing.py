"""Recipient routing, pure: address -> destination or refusal."""

import pytest

from listmgr.smtp.routing import Destination, Refusal, route

DOMAINS = ("example.org", "lists.example.org")


class Dir:
    lists = {"demo", "other-list"}
    users = {"alice"}

    def has_list(self, name):
        return name in self.lists

    def has_user(self, name):
        return name in self.users


@pytest.mark.parametrize("address,expected", [
    ("majordomo@example.org", ("command", "")),
    ("MajorDomo@Example.ORG", ("command", "")),
    ("demo-request@example.org", ("command", "demo")),
    ("demo@example.org", ("post", "demo")),
    ("DEMO@lists.example.org", ("post", "demo")),
    ("owner-demo@example.org", ("bounce", "demo")),
    ("owner-demo+alice=example.net@example.org", ("bounce", "demo")),
    ("owner-demo+a+b=c=example.net@example.org", ("bounce", "demo")),
    ("owner-demo+#22john#20doe#22=example.net@example.org", ("bounce", "demo")),
    ("Owner-Demo+Bob=Example.NET@example.org", ("bounce", "demo")),
    ("owner-other-list+x=y.example@lists.example.org", ("bounce", "other-list")),
    ("abuse@example.org", ("bounce", "")),
    ("demo-owner@example.org", ("owner", "demo")),
    ("demo-approval@example.org", ("approval", "demo")),
    ("demo-digest@example.org", ("post", "demo")),  # Majordomo's digest list address
    ("demo-digest-request@example.org", ("command", "demo-digest")),
    ("owner-demo-digest@example.org", ("bounce", "demo")),  # the digest's bounces
    ("demo-digest-approval@example.org", ("approval", "demo")),
    ("other-list-owner@example.org", ("owner", "other-list")),
    ("majordomo-owner@example.org", ("admins", "")),
    ("postmaster@example.org", ("admins", "")),
    ("Postmaster", ("admins", "")),
    ("alice@example.org", ("local", "alice")),
    ("Alice@EXAMPLE.org", ("local", "alice")),
    ("someone@outside.example", ("relay", "someone@outside.example")),
    ("u@[192.0.2.1]", ("relay", "u@[192.0.2.1]")),
    ("u@sub.example.org", ("relay", "u@sub.example.org")),
    ("u@example.org.evil.example", ("relay", "u@example.org.evil.example")),
    ("u@evil-example.org", ("relay", "u@evil-example.org")),
    ("u@xn--exmple-cua.org", ("relay", "u@xn--exmple-cua.org")),
])
def test_destinations(address, expected):
    assert route(address, DOMAINS, Dir()) == Destination(*expected)


@pytest.mark.parametrize("address,reply", [
    ("nobody@example.org", "550 5.1.1 <nobody@example.org>... User unknown"),
    ("demo-bogus@example.org", "550 5.1.1 <demo-bogus@example.org>... User unknown"),
    ("nolist-request@example.org", "550 5.1.1 <nolist-request@example.org>... User unknown"),
    ("user%outside.example@example.org",
     "550 5.7.1 <user%outside.example@example.org>... Relaying denied"),
    ("outside.example!user@example.org",
     "550 5.7.1 <outside.example!user@example.org>... Relaying denied"),
    ('"user@outside.example"@example.org',
     '550 5.7.1 <"user@outside.example"@example.org>... Relaying denied'),
    ('"alice"@example.org', '550 5.7.1 <"alice"@example.org>... Relaying denied'),
    ("user%outside.example", "550 5.7.1 <user%outside.example>... Relaying denied"),
    ("someone", "553 5.1.3 <someone>... Domain name required"),
    ("a b@outside.example", "553 5.1.3 <a b@outside.example>... Bad address syntax"),
])
def test_refusals(address, reply):
    assert route(address, DOMAINS, Dir()) == Refusal(reply)


class Strict(Dir):
    """Answers only the names routing.questions named; any other question fails."""

    def __init__(self, lists, users):
        self.asked_lists, self.asked_users = set(lists), set(users)

    def has_list(self, name):
        assert name in self.asked_lists, name
        return super().has_list(name)

    def has_user(self, name):
        assert name in self.asked_users, name
        return super().has_user(name)


ADDRESSES = [a for a, _ in [
    *test_destinations.pytestmark[0].args[1], *test_refusals.pytestmark[0].args[1]]]


@pytest.mark.parametrize("address", ADDRESSES)
def test_questions_name_every_lookup(address):
    # RCPT reads every name the route asks about in one statement (store.directory.lookup)
    from listmgr.smtp.routing import questions
    lists, users = questions(address, DOMAINS)
    assert route(address, DOMAINS, Strict(lists, users)) == route(address, DOMAINS, Dir())


def test_lookup_reads_names_at_once_and_asks_the_rest(app):
    from listmgr.smtp.routing import questions
    from listmgr.store import directory
    from listmgr.store.lists import create_list
    from listmgr.store.mailboxes import add_user
    with app.store.session() as s:
        create_list(s, "demo", ["owner@example.net"])
        add_user(s, "alice", "pw")
    for address, expected in [("demo@example.org", Destination("post", "demo")),
                              ("demo-digest-request@example.org",
                               Destination("command", "demo-digest")),
                              ("Alice@example.org", Destination("local", "alice")),
                              ("owner-demo+x=y.example@example.org",
                               Destination("bounce", "demo")),
                              ("bob@example.org", Refusal(
                                  "550 5.1.1 <bob@example.org>... User unknown"))]:
        lists, users = questions(address, DOMAINS)
        with directory.lookup(app.store, lists, users) as names:
            assert route(address, DOMAINS, names) == expected
    with directory.lookup(app.store, [f"n{i}" for i in range(12)] + ["demo"],
                          ["x", "y", "alice"]) as names:  # more names than usual
        assert names.has_list("demo") and not names.has_list("n3") and names.has_user("alice")
    with directory.lookup(app.store, ["demo"], []) as names:  # names not read before
        assert names.has_user("ALICE") and not names.has_user("bob")
        assert names.has_list("demo") and not names.has_list("other")
