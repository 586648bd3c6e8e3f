"""newconfig takes Majordomo 1.94.5's own config files; config writes one Majordomo reads.

The default config in tests/data/majordomo is laid out as 1.94.5's writeconfig prints it
for a list `demo` (padded keys, tab-indented comments, empty here-documents).
"""

from __future__ import annotations

import re
from pathlib import Path

from listmgr.commands import texts
from listmgr.majordomo import configmap
from tests.commands_helpers import cmd_app, mailer, make_list  # noqa: F401
from tests.test_posting_flow import held, mail, post, queued

DEFAULT = (Path(__file__).parent / "data" / "majordomo" / "default-1.94.5.config").read_text()


def newconfig(mailer, text: str, password: str = "s3cret", after: str = "s3cret"):
    """newconfig, then config with the password that holds `after` it."""
    return mailer.send(f"newconfig demo {password}\n{text}\nEOF\nconfig demo {after}")


def config_values(lines: list[str]) -> dict[str, str]:
    out = {}
    for ln in lines:
        m = re.match(r"^(?:#listmgr: )?([a-z_]+) = (.*)$", ln)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def test_the_47_keywords_are_all_mapped():
    assert len(configmap.KEYWORDS) == 47
    assert sum(1 for line in DEFAULT.splitlines()
               if re.match(r"^[a-z_]+\s+(=|<<)", line)) == 47


def test_majordomo_default_config_is_accepted_with_majordomo_meanings(mailer):
    make_list(mailer.app, post_policy="members")
    out = newconfig(mailer, DEFAULT, after="demo.admin")
    lines = out.lines
    assert "New config for list demo accepted." in lines, out.text
    # Nothing in the default asks for a feature missing here; who may post is reported.
    i = lines.index("New config for list demo accepted.")
    n = DEFAULT.split("\n").index("moderate            =   no") + 1
    assert lines[i + 1] == (f"moderate/restrict_post (line {n}): who may post is now "
                            "post_policy = open"), lines[i + 1]
    assert not any("accepted, has no effect here" in ln for ln in lines)
    values = config_values(lines)
    # A Majordomo list without restrict_post takes posts from anyone; maxlength counts
    # the body, 40000 by default.
    assert values["post_policy"] == "open"
    assert values["maxlength"] == "40000"
    assert values["maxlength_counts"] == "body"
    assert values["subscribe_policy"] == "open+confirm"
    assert values["sender"] == "owner-demo"
    assert values["digest_name"] == "demo"
    # The Majordomo default passwords took effect (stored hashed, never shown).
    assert values["admin_passwd"] == ""
    out = mailer.send("writeconfig demo demo.admin")
    assert "wrote new config for list demo." in out.lines


ODD = ("  Description   =   Odd   spacing  # trailing comment\n"
       "SUBJECT_PREFIX=[$LIST]\n"
       "message_footer   <<   EOT\n"
       "   --\n"
       "-\n"
       "-   kept spaces\n"
       "EOT\n")


def test_crlf_file_reads_as_lf():
    crlf = configmap.read(ODD.replace("\n", "\r\n"), "demo", domain="example.org")
    lf = configmap.read(ODD, "demo", domain="example.org")
    assert crlf.errors == [] and crlf.values == lf.values
    assert lf.values["message_footer"] == "-\n\n   kept spaces"


def test_odd_spacing(mailer):
    make_list(mailer.app)
    out = newconfig(mailer, ODD)
    assert "New config for list demo accepted." in out.lines, out.text
    values = config_values(out.lines)
    assert values["description"] == "Odd   spacing"
    assert values["subject_prefix"] == "[$LIST]"
    i = out.lines.index("message_footer << END")
    assert out.lines[i + 1:i + 5] == ["--", "-", "-   kept spaces", "END"]


def test_values_with_no_effect_are_stored_and_reported(mailer):
    make_list(mailer.app)
    text = DEFAULT.replace("debug               =   no", "debug = yes") \
        .replace("mungedomain         =   no", "mungedomain = yes") \
        .replace("resend_host         =", "resend_host = lists.example.org") \
        .replace("digest_maxdays      =", "digest_maxdays = 7")
    out = newconfig(mailer, text, after="demo.admin")
    lines = out.lines
    assert "New config for list demo accepted." in lines, out.text
    notes = [ln for ln in lines if "accepted, has no effect here" in ln]
    # resend_host has its Majordomo meaning now (the Sender: header's host): no note.
    assert [n.split(" ")[0] for n in notes] == ["debug", "mungedomain"]
    assert notes[0].startswith("debug (line ")
    values = config_values(lines)
    assert values["debug"] == "yes" and values["mungedomain"] == "yes"
    assert values["resend_host"] == "lists.example.org"
    assert values["digest_maxdays"] == "7"


def test_moderate_and_restrict_post(mailer):
    make_list(mailer.app)
    make_list(mailer.app, "other")
    out = newconfig(mailer, "moderate = yes\nmoderator = editor\n")
    values = config_values(out.lines)
    assert values["post_policy"] == "moderated" and values["moderate"] == "yes"
    assert values["moderator"] == "editor@example.org"
    out = newconfig(mailer, "moderate = no\nrestrict_post = /usr/lib/lists/demo:other\n")
    values = config_values(out.lines)
    assert values["post_policy"] == "members" and values["moderate"] == "no"
    assert values["restrict_post"] == "demo other"


def test_malformed_line_or_bad_value_refuses_the_whole_file(mailer):
    make_list(mailer.app, description="Before")
    text = DEFAULT.replace("digest_issue        =   1", "digest_issue = 0") \
        .replace("description         =", "description = After") \
        .replace("welcome             =   yes", "welcome = maybe") \
        + "this is not a config line\nfoo = bar\ncomments = one\n"
    out = newconfig(mailer, text)
    lines = out.lines
    i = lines.index("The new config file for demo was NOT accepted because:")
    errors = lines[i + 1:lines.index(">>>> config demo s3cret")]
    assert len(errors) == 4, errors  # `comments = one` is fine: a one-line array
    assert any(e.startswith("bad value '0' for 'digest_issue'") and "at line" in e
               for e in errors)
    assert any("welcome" in e for e in errors)
    n = len(text.split("\n")) - 3
    assert f"cannot parse 'this is not a config line' in file demo.new.config at line {n}" \
        in errors
    assert f"unknown key |foo| in file demo.new.config at line {n + 1}" in errors
    assert config_values(lines)["description"] == "Before"


def majordomo_reads(text: str) -> list[str]:
    """What 1.94.5's get_config would complain about in `text` (its grab_* checks)."""
    errors, lines, i = [], text.split("\n"), 0
    enums = {"open", "closed", "list"}
    policies = {"open", "closed", "auto", "open+confirm", "closed+confirm", "auto+confirm"}
    while i < len(lines):
        line = lines[i]
        i += 1
        if re.match(r"^\s*(#|$)", line):
            continue
        line = line.split("#", 1)[0]
        key, _, value = line.partition("=")
        here = "<<" in key
        if here:
            key, _, value = line.partition("<<")
        key, value = key.strip().lower(), value.strip()
        kw = configmap.KEYWORDS.get(key)
        if kw is None:
            errors.append(f"unknown key |{key}| at line {i}")
            continue
        if here:
            if not kw.kind.endswith("_array"):
                errors.append(f"|{key}| does not take multiple values at line {i}")
            while i < len(lines) and lines[i].strip() != value:
                i += 1
            i += 1
            continue
        if kw.kind == "bool" and value.lower() not in ("yes", "no", "y", "n"):
            errors.append(f"Unknown boolean value {value} at line {i}")
        if kw.kind == "integer" and not re.fullmatch(r"([1-9][0-9]*)?", value):
            errors.append(f"{value} is not an integer at line {i}")
        if kw.kind == "word" and len(value.split()) > 1:
            errors.append(f"More then one word in value {line} at line {i}")
        if kw.kind == "enum" and value not in (policies if "policy" in key else enums):
            errors.append(f"{value} at line {i} is not a valid value.")
    return errors


def test_config_output_is_a_file_majordomo_reads(mailer):
    make_list(mailer.app, description="Demo list", subject_prefix="[$LIST]",
              taboo_body="/viagra/i", message_footer="--\n  indented\n\nlast",
              post_policy="moderated", hold_expiry=7 * 86400, language="ja")
    out = mailer.send("config demo s3cret")
    text = "\n".join(out.lines[1:])
    assert majordomo_reads(text) == []
    keys = re.findall(r"^([a-z_]+) (?:=|<<)", text, re.M)
    assert sorted(keys) == sorted(configmap.KEYWORDS)
    assert "moderate = yes" in out.lines
    assert "#listmgr: post_policy = moderated" in out.lines
    assert "#listmgr: hold_expiry = 7d" in out.lines
    assert "#listmgr: owners = owner@example.com" in out.lines
    # And it comes back unchanged through newconfig.
    again = newconfig(mailer, text)
    # The list is in Japanese, so majordomo@ answers about it in Japanese.
    assert texts.msg("ja", "newconfig_accepted", list="demo") in again.lines, again.text
    assert not [n for n in again.lines if "accepted, has no effect" in n or "who may post" in n]
    assert again.lines[again.lines.index(">>>> config demo s3cret") + 1:] == out.lines[1:]


def test_maxlength_from_a_majordomo_config_counts_the_body(mailer):
    app = mailer.app
    make_list(app, members=("member@example.com",))
    out = newconfig(mailer, "maxlength = 300\nrestrict_post = demo\n")
    assert "New config for list demo accepted." in out.lines, out.text
    # Long headers, short body: Majordomo's meaning lets it through.
    post(app, mail(body="x" * 250 + "\n", extra="X-Padding: " + "p" * 400 + "\n"))
    assert len(queued(app)) == 1
    post(app, mail(body="y" * 320 + "\n"))
    assert len(queued(app)) == 1
    [h] = held(app)
    assert "Message too long (>300 chars)" in h.reasons


def test_restrict_post_names_other_lists(mailer):
    app = mailer.app
    make_list(app, members=("member@example.com",))
    make_list(app, "editors", members=("editor@example.com",))
    out = newconfig(mailer, "restrict_post = editors:demo\n")
    assert "who may post is now post_policy = members" in out.text
    post(app, mail(frm="editor@example.com"), mail_from="editor@example.com")
    post(app, mail(frm="member@example.com"))
    assert len(queued(app)) == 2
    post(app, mail(frm="stranger@example.net"), mail_from="stranger@example.net")
    assert len(queued(app)) == 2
    [h] = held(app)
    assert "Non-member submission from [stranger@example.net]" in h.reasons
    # `list` access follows restrict_post too, as in Majordomo.
    newconfig(mailer, "who_access = list\n")
    assert "Members of list 'demo':" in mailer.send("who demo", frm="editor@example.com").text
    assert "**** List 'demo' is a private list." in mailer.send(
        "who demo", frm="stranger@example.net").lines
