"""Each command's replies, line by line, through the command handler (both databases)."""

from __future__ import annotations

import pytest

from tests.commands_helpers import cmd_app, mailer, make_list, members_of  # noqa: F401

JOE = "joe@example.net"


def block(text: str) -> list[str]:
    return text.strip("\n").split("\n")


def contains(lines: list[str], expected: list[str]) -> bool:
    n = len(expected)
    return any(lines[i:i + n] == expected for i in range(len(lines) - n + 1))


# (setup kwargs for the "demo" list, command text, expected consecutive reply lines)
CASES = [
    ("lists", {"description": "A demo list"}, "lists", """
>>>> lists
majordomo@example.org serves the following lists:

  demo                    A demo list

Use the 'info <list>' command to get more information
about a specific list.
"""),
    ("who", {"members": ("a@example.com", "b@example.com")}, "who demo", """
>>>> who demo
Members of list 'demo':

a@example.com
b@example.com

2 subscribers

"""),
    ("who-one", {"members": ("a@example.com",)}, "who demo", """
Members of list 'demo':

a@example.com

1 subscriber
"""),
    ("who-unknown", {}, "who nosuch", "**** who: no such list 'nosuch'"),
    ("who-closed", {"who_access": "closed"}, "who demo", "**** Command disabled."),
    ("who-private", {"who_access": "list"}, "who demo", f"""
**** List 'demo' is a private list.
**** Only members of the list can do a 'who'.
**** You [ {JOE} ] aren't a member of list 'demo'.
"""),
    ("who-private-member", {"who_access": "list", "members": (JOE,)}, "who demo", f"""
Members of list 'demo':

{JOE}
"""),
    ("which", {"members": (JOE,)}, "which", f"""
>>>> which
The string '{JOE}' appears in the following
entries in lists served by majordomo@example.org:

List                    Address
====                    =======
demo                    {JOE}

"""),
    ("which-none", {}, "which nobody@example.com", """
The string 'nobody@example.com' appears in the following
entries in lists served by majordomo@example.org:

**** No matches found

"""),
    ("which-substring", {"members": (JOE,)}, "which EXAMPLE.net",
     "demo                    joe@example.net"),
    ("which-access-closed", {"members": (JOE,), "which_access": "closed"}, "which",
     "**** No matches found"),
    ("info", {"info": "All about demo."}, "info demo", ">>>> info demo\nAll about demo."),
    ("info-none", {}, "info demo", "#### No info available for demo."),
    ("info-unknown", {}, "info nosuch", "**** info: unknown list 'nosuch'."),
    ("intro-private", {"intro": "Secret intro"}, "intro demo",
     "#### No intro available for demo."),
    ("intro-member", {"intro": "Secret intro", "members": (JOE,)}, "intro demo",
     "Secret intro"),
    ("subscribe-unknown", {}, "subscribe nosuch", "**** subscribe: unknown list 'nosuch'."),
    ("subscribe-invalid", {}, "subscribe demo John Doe", """
**** The address you supplied, John Doe
**** does not seem to be a legal Internet address.  You may have supplied
**** your full name instead of your address, or you may have included your
"""),
    ("subscribe-incomplete", {}, "subscribe demo joe@localhost", """
**** The address you supplied, joe@localhost
**** is not a complete address.  When providing an address, you must give
**** the full name of the machine including the domain part (like
**** host.corp.com), not just your user name or your name and the short
**** name of the machine (just user or user@host is not legal).

**** subscribe: invalid address 'joe@localhost'"""),
    ("subscribe-no-dot", {}, "subscribe demo joe", "**** is not a complete address."),
    ("subscribe-unbalanced", {}, "subscribe demo Joe <joe@example.net", """
**** The address you supplied, Joe <joe@example.net
**** Does not seem to be a legal Internet address.  It seems to have an
**** uneven number of parentheses or brackets.
"""),
    ("subscribe-unquoted", {}, "subscribe demo jo;e@example.net", """
**** The address you supplied, jo;e@example.net
**** Does not seem to be a legal Internet address.  It seems to have
**** unquoted colons, commas, or semicolons.
"""),
    ("subscribe-two", {}, "subscribe demo a@example.net, b@example.net",
     ">>>> subscribe demo a@example.net, b@example.net\n"
     "**** subscribe: invalid address 'a@example.net, b@example.net'"),
    ("subscribe-invalid-2", {}, "subscribe demo John Doe",
     "**** subscribe: invalid address 'John Doe'"),
    ("subscribe-open", {"subscribe_policy": "open"}, "subscribe demo",
     ">>>> subscribe demo\nSucceeded."),
    ("subscribe-dup", {"subscribe_policy": "open", "members": (JOE,)}, "subscribe demo",
     "**** Address already subscribed to demo"),
    ("subscribe-service", {"subscribe_policy": "auto"}, "subscribe demo demo@example.org",
     "**** subscribe: 'demo@example.org' is an address of this mail server and cannot be"
     " subscribed."),
    ("subscribe-service-2", {"subscribe_policy": "auto"},
     "subscribe demo majordomo@Example.ORG", "is an address of this mail server"),
    ("unsubscribe-notmember", {}, "unsubscribe demo", f"""
**** unsubscribe: '{JOE}' is not a member of list 'demo'.
**** contact "demo-approval@example.org" if you need help.
"""),
    ("unsubscribe-self", {"members": (JOE,), "unsubscribe_policy": "closed"},
     "unsubscribe demo", ">>>> unsubscribe demo\nSucceeded."),
    ("signoff", {"members": (JOE,)}, "signoff demo", "Succeeded."),
    ("cancel", {"members": (JOE,)}, "cancel demo", "Succeeded."),
    ("unsubscribe-unknown", {}, "unsubscribe nosuch", "**** unsubscribe: unknown list 'nosuch'."),
    ("auth-needs-key", {}, "auth", "**** auth: needs key"),
    ("auth-bad-cmd", {}, "auth abc who demo", "**** auth: needs key"),
    ("approve-bare", {}, "approve", """
**** approve: needs passwd
**** approve: which command?
**** approve: unknown list ''.
"""),
    ("approve-badpw", {}, "approve wrong subscribe demo a@example.com",
     "**** approve: invalid list or password."),
    ("approve-badcmd", {}, "approve s3cret frobnicate demo",
     "**** approve: invalid command 'frobnicate'"),
    ("approve-who", {}, "approve s3cret subscribe demo", "**** approve: who?"),
    ("approve-unknown-list", {}, "approve s3cret subscribe nosuch a@example.com",
     "**** approve: unknown list 'nosuch'."),
    ("approve-subscribe", {"subscribe_policy": "closed"},
     "approve s3cret subscribe demo a@example.com", "Succeeded."),
    ("approve-who-closed", {"who_access": "closed", "members": ("a@example.com",)},
     "approve s3cret who demo", "Members of list 'demo':\n\na@example.com"),
    ("passwd-bad-old", {}, "passwd demo wrong new1", "**** Sorry; old password incorrect."),
    ("passwd-ok", {}, "passwd demo s3cret new1", "Password changed."),
    ("passwd-missing", {}, "passwd demo", """
**** passwd: need old password
**** passwd: need new password
"""),
    ("passwd-null-new", {}, "passwd demo s3cret",
     "**** passwd: need new password\n**** passwd: null 'new_passwd'."),
    ("passwd-unknown", {}, "passwd nosuch a b", "**** passwd: invalid list 'nosuch'"),
    ("newinfo-badpw", {}, "newinfo demo wrong\nx\nEOF", "**** newinfo: invalid password."),
    ("newinfo-nopw", {}, "newinfo demo", "**** newinfo: needs password"),
    ("newinfo-unknown", {}, "newinfo nosuch pw\nx\nEOF", "**** newinfo: unknown list 'nosuch'."),
    ("newintro", {}, "newintro demo s3cret\nhello\nEOF",
     ">>>> newintro demo s3cret\nNew intro for list demo accepted."),
    ("config-badpw", {}, "config demo wrong", "**** config: invalid password."),
    ("writeconfig", {}, "writeconfig demo s3cret", "wrote new config for list demo."),
    ("writeconfig-badpw", {}, "writeconfig demo nope", "**** writeconfig: invalid password."),
    ("newconfig-badpw", {}, "newconfig demo nope\na = b\nEOF", "**** newconfig: invalid password."),
    ("index-none", {}, "index demo", "#### No files available for demo."),
    ("index-closed", {"index_access": "closed"}, "index demo", "**** Command disabled."),
    ("index-private", {"index_access": "list"}, "index demo", """
**** List 'demo' is a private list.
**** Only members of the list can do an 'index'.
**** You aren't a member of list 'demo'.
"""),
    ("get-which", {}, "get demo", "**** get: which file?"),
    ("get-private", {}, "get demo demo.202611", """
**** List 'demo' is a private list.
**** Only members of the list can do a 'get'.
**** You aren't a member of list 'demo'.
"""),
    ("get-closed", {"get_access": "closed"}, "get demo x", "**** Command disabled."),
    ("get-invalid", {"get_access": "open"}, "get demo ../../etc/passwd",
     "**** get: invalid file '../../etc/passwd' for list 'demo'."),
    ("get-unknown-list", {}, "get nosuch f", "**** get: unknown list 'nosuch'."),
    ("unknown", {}, "frobnicate now", ">>>> frobnicate now\n**** Command 'frobnicate' not recognized."),
    ("end", {}, "lists\nend\nwho demo", ">>>> end\nEND OF COMMANDS"),
    ("mkdigest", {}, "mkdigest demo pw", "**** mkdigest: invalid password."),
    ("newlist-usage", {}, "newlist", "**** newlist: usage: newlist LIST OWNER-ADDRESS [description]"),
    ("newlist-exists", {}, "newlist demo a@example.com", "**** newlist: list 'demo' already exists."),
    ("accept-unknown", {}, "accept 0123456789abcdef", "**** That key is not valid."),
    ("reject-missing", {}, "reject", "**** reject: which key?"),
]


@pytest.mark.parametrize("name,setup,commands,expected", CASES, ids=[c[0] for c in CASES])
def test_reply(mailer, name, setup, commands, expected):
    make_list(mailer.app, "demo", **setup)
    out = mailer.send(commands, frm=f"Joe <{JOE}>" if False else JOE)
    assert contains(out.lines, block(expected)) or block(expected)[0] in out.text, \
        "\n".join(out.lines)
    if len(block(expected)) > 1 or expected.startswith(("\n", ">>>>")):
        assert contains(out.lines, block(expected)), "\n".join(out.lines)


ERRORS_WITH_HELP = ["who-unknown", "unknown", "approve-bare", "auth-needs-key"]


def test_squawk_appends_help_once(mailer):
    make_list(mailer.app, "demo")
    out = mailer.send("frobnicate\nsubscribe nosuch\nlists")
    assert out.lines.count("**** Help for majordomo@example.org:") == 1
    i = out.lines.index("**** Help for majordomo@example.org:")
    assert out.lines[i + 1] == "" and "This help message is being sent" in out.lines[i + 3]
    assert out.lines.index(">>>> lists") < i


def test_no_reply_help_when_all_ok(mailer):
    make_list(mailer.app, "demo")
    out = mailer.send("lists")
    assert "**** Help for majordomo@example.org:" not in out.lines


def test_no_valid_commands(mailer):
    out = mailer.send("\n\n")
    assert contains(out.lines, ["**** No valid commands found.",
                                "**** Commands must be in message BODY, not in HEADER.", "",
                                "**** Help for majordomo@example.org:"])


def test_end_and_dash_count_as_commands(mailer):
    assert "**** No valid commands found." not in mailer.send("end").lines
    out = mailer.send("-- \nmy signature")
    assert out.lines[-1] == "END OF COMMANDS"


def test_echo_of_blank_and_comment(mailer):
    out = mailer.send("\n# hello\nlists")
    assert out.lines[:3] == [">>>> ", ">>>> # hello", ">>>> lists"]


def test_signature_without_separator_is_summarised(mailer):
    sig = "\n".join(f"Line {i} of a long signature" for i in range(25))
    out = mailer.send("lists\n" + sig)
    assert out.lines.count("**** Command 'line' not recognized.") == 10
    assert "Discarded 15 line(s) of unrecognized text." in out.lines


def test_too_many_commands(mailer):
    out = mailer.send("lists\n" * 105)
    assert out.lines.count(">>>> lists") == 100
    assert any(ln.startswith("**** Too many commands: only the first 100") for ln in out.lines)


def test_help_and_help_admin(mailer):
    out = mailer.send("help")
    assert "II.\tSUBSCRIBING TO A LIST" in out.lines
    assert "newlist" not in out.text
    out = mailer.send("help admin")
    assert any("approve <site-password> newlist" in ln for ln in out.lines)


def test_reply_headers(mailer):
    out = mailer.send("lists", subject="x" * 60, frm="Joe Bloggs <joe@example.net>",
                      headers={"Message-ID": "<m1@example.net>", "References": "<m0@example.net>"})
    r = out.reply
    m = r.message
    assert r.mail_from == "majordomo-owner@example.org"
    assert r.rcpts == ["joe@example.net"]
    assert m["From"] == "majordomo@example.org"
    assert m["To"] == "joe@example.net"
    assert m["Subject"] == "Majordomo results: " + "x" * 40
    assert m["In-Reply-To"] == "<m1@example.net>"
    assert m["References"] == "<m0@example.net> <m1@example.net>"
    assert m["Auto-Submitted"] == "auto-replied"
    assert m["X-Loop"] == "majordomo@example.org"
    assert r.lines[:2] == ["--", ""]
    out = mailer.send("lists", subject=None)
    assert out.reply.message["Subject"] == "Majordomo results"


def test_reply_goes_to_reply_to(mailer):
    out = mailer.send("lists", frm="joe@example.net",
                      headers={"Reply-To": "Joe <joe-home@example.com>"})
    assert out.reply.rcpts == ["joe-home@example.com"]


def test_default_list_mode(mailer):
    make_list(mailer.app, "demo", subscribe_policy="open", members=("a@example.com",),
              info="Demo info")
    make_list(mailer.app, "other", info="Other info")
    out = mailer.send("subscribe\nwho\ninfo other\ninfo\n", default_list="demo")
    assert contains(out.lines, [">>>> subscribe", "Succeeded (to list demo)."])
    assert contains(out.lines, [">>>> who", "Members of list 'demo':"])
    assert contains(out.lines, [">>>> info other", "Other info"])
    assert contains(out.lines, [">>>> info", "Demo info"])
    out = mailer.send("unsubscribe", default_list="demo")
    assert contains(out.lines, [">>>> unsubscribe", "Succeeded (from list demo)."])
    assert members_of(mailer.app, "demo") == ["a@example.com"]


def test_list_names_are_case_insensitive_and_may_carry_a_domain(mailer):
    make_list(mailer.app, "demo", members=("a@example.com",))
    out = mailer.send("who DEMO\nwho <demo@example.org>")
    assert out.lines.count("Members of list 'demo':") == 2
