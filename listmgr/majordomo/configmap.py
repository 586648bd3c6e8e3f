"""Majordomo 1.94.5's 47 list config keywords and what each means here.

One table serves the mail commands `config` / `newconfig` / `writeconfig` and
`listmgr import-majordomo`. Every keyword is stored in a list setting of the same name
(listmgr.listconfig). Most have their Majordomo meaning; the ones marked `no_effect` are
kept (so a config written back is the one read) and reported, with the reason, when their
value asks for something this server does not do.

Two keywords meet settings Majordomo does not have, and a Majordomo file (one without our
`#listmgr:` lines for them) gets Majordomo's meaning:
- `moderate` and `restrict_post` decide who may post: moderate = yes is post_policy
  moderated; otherwise a restrict_post makes it `members` (of the lists named), and none
  makes it `open`, as in Majordomo, where anyone may post to a list without one.
- `maxlength` counts the body in Majordomo (default 40000) and the whole message here:
  a Majordomo file's maxlength sets maxlength_counts = body.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from typing import Any

from listmgr.listconfig import SETTINGS, SettingError, describe, format_value, parse_value
from listmgr.majordomo import configfile


@dataclass(frozen=True)
class Keyword:
    name: str
    kind: str  # Majordomo's type, as its writeconfig prints it
    default: str  # Majordomo's default ("undef": none); $LIST is the list's name
    subsystems: str
    no_effect: str = ""  # why a value is stored but changes nothing here


_NO_DIR = ("a running list keeps its archive and digests in data_dir; import-majordomo "
           "reads this directory once")

KEYWORDS: dict[str, Keyword] = {k.name: k for k in [
    Keyword("admin_passwd", "word", "$LIST.admin", "majordomo"),
    Keyword("administrivia", "bool", "yes", "resend"),
    Keyword("advertise", "regexp_array", "undef", "majordomo"),
    Keyword("announcements", "bool", "yes", "majordomo"),
    Keyword("approve_passwd", "word", "$LIST.pass", "resend"),
    Keyword("archive_dir", "absolute_dir", "undef", "majordomo", _NO_DIR),
    Keyword("comments", "string_array", "undef", "config"),
    Keyword("date_info", "bool", "yes", "majordomo"),
    Keyword("date_intro", "bool", "yes", "majordomo"),
    Keyword("debug", "bool", "no", "resend", "posts are always distributed"),
    Keyword("description", "string", "undef", "majordomo"),
    Keyword("digest_archive", "absolute_dir", "undef", "digest", _NO_DIR),
    Keyword("digest_issue", "integer", "1", "digest"),
    Keyword("digest_maxdays", "integer", "undef", "digest"),
    Keyword("digest_maxlines", "integer", "undef", "digest"),
    Keyword("digest_name", "string", "$LIST", "digest"),
    Keyword("digest_rm_footer", "word", "undef", "digest"),
    Keyword("digest_rm_fronter", "word", "undef", "digest"),
    Keyword("digest_volume", "integer", "1", "digest"),
    Keyword("digest_work_dir", "absolute_dir", "undef", "digest", _NO_DIR),
    Keyword("get_access", "enum", "list", "majordomo"),
    Keyword("index_access", "enum", "open", "majordomo"),
    Keyword("info_access", "enum", "open", "majordomo"),
    Keyword("intro_access", "enum", "list", "majordomo"),
    Keyword("maxlength", "integer", "40000", "resend,digest"),
    Keyword("message_footer", "string_array", "undef", "resend,digest"),
    Keyword("message_fronter", "string_array", "undef", "resend,digest"),
    Keyword("message_headers", "string_array", "undef", "resend,digest"),
    Keyword("moderate", "bool", "no", "resend"),
    Keyword("moderator", "word", "undef", "resend"),
    Keyword("mungedomain", "bool", "no", "majordomo",
            "addresses match exactly (the domain without regard to case)"),
    Keyword("noadvertise", "regexp_array", "undef", "majordomo"),
    Keyword("precedence", "word", "bulk", "resend,digest"),
    Keyword("purge_received", "bool", "no", "resend"),
    Keyword("reply_to", "word", "undef", "resend,digest"),
    Keyword("resend_host", "word", "undef", "resend"),
    Keyword("restrict_post", "restrict_post", "undef", "resend"),
    Keyword("sender", "word", "owner-$LIST", "majordomo,resend,digest"),
    Keyword("strip", "bool", "yes", "majordomo"),
    Keyword("subject_prefix", "word", "undef", "resend"),
    Keyword("subscribe_policy", "enum", "open", "majordomo"),
    Keyword("taboo_body", "regexp_array", "undef", "resend"),
    Keyword("taboo_headers", "regexp_array", "undef", "resend"),
    Keyword("unsubscribe_policy", "enum", "open", "majordomo"),
    Keyword("welcome", "bool", "yes", "majordomo"),
    Keyword("which_access", "enum", "open", "majordomo"),
    Keyword("who_access", "enum", "open", "majordomo"),
]}

# Our settings that Majordomo does not have: written as `#listmgr:` comment lines.
EXTENSIONS: tuple[str, ...] = tuple(sorted(k for k in SETTINGS if k not in KEYWORDS))


def default_text(keyword: Keyword, list_name: str) -> str:
    return "" if keyword.default == "undef" else keyword.default.replace("$LIST", list_name)


def is_default(keyword: Keyword, value: str, list_name: str) -> bool:
    """Does `value` ask for nothing beyond Majordomo's default?"""
    default = default_text(keyword, list_name)
    if keyword.kind == "bool":
        return value.strip().lower() in (("yes", "y") if default == "yes" else ("no", "n", ""))
    return value.strip() in ("", default)


@dataclass
class Reading:
    """A config text read against the keyword table: nothing is applied yet."""

    values: dict[str, str] = field(default_factory=dict)  # setting key -> text, in order
    notes: list[str] = field(default_factory=list)  # accepted, has no effect here
    errors: list[str] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # key -> line number


def read(text: str, list_name: str, *, domain: str, current: Any = None,
         where: str | None = None) -> Reading:
    """Parse and check a Majordomo (or our own) config text for list `list_name`.

    `current` is the list as it is (for values the file leaves out); errors use
    Majordomo's wording with the line number.
    """
    where = where or f"{list_name}.new.config"
    parsed = configfile.parse(text, where)
    out = Reading(errors=list(parsed.errors))
    for entry in parsed.entries:
        key = entry.key
        setting = SETTINGS.get(key)
        keyword = KEYWORDS.get(key)
        if setting is None:
            out.errors.append(f"unknown key |{key}| in file {where} at line {entry.lineno}")
            continue
        if entry.array and not setting.is_array:
            out.errors.append(f"|{key}| does not take multiple values at line {entry.lineno}")
            continue
        value = entry.value
        if entry.array and setting.kind == "string_array":
            value = "\n".join(configfile.decode_item(v) for v in value.split("\n"))
        elif entry.array:
            value = "\n".join(v.strip() for v in value.split("\n") if v.strip())
        if key == "moderator" and value.strip() and "@" not in value:
            value = f"{value.strip()}@{domain}"  # a local name, as resend allowed
        if setting.secret and value.strip() == "":
            continue  # a password left empty keeps the current one
        try:
            parse_value(key, value)
        except SettingError as exc:
            out.errors.append(f"{exc} at line {entry.lineno}")
            continue
        out.values[key] = value
        out.lines[key] = entry.lineno
        if keyword is not None and keyword.no_effect \
                and not is_default(keyword, value, list_name):
            out.notes.append(f"{key} (line {entry.lineno}): accepted, has no effect here: "
                             f"{keyword.no_effect}")
    majordomo_meanings(out, current)
    return out


def majordomo_meanings(out: Reading, current: Any) -> None:
    """Give a Majordomo file's moderate / restrict_post / maxlength their meaning here."""
    values = out.values
    if "maxlength" in values and "maxlength_counts" not in values:
        values["maxlength_counts"] = "body"
    if "post_policy" not in values and ("moderate" in values or "restrict_post" in values):
        moderate = values.pop("moderate", None)
        if moderate is None:
            moderated = current is not None and current.post_policy == "moderated"
        else:
            moderated = parse_value("moderate", moderate)
        restrict = values.get("restrict_post",
                              getattr(current, "restrict_post", "") if current else "")
        policy = "moderated" if moderated else ("members" if restrict.strip() else "open")
        values["post_policy"] = policy
        line = out.lines.get("moderate") or out.lines.get("restrict_post")
        out.notes.append(f"moderate/restrict_post (line {line}): who may post is now "
                         f"post_policy = {policy}")


def render(mlist: Any, header: str, language: str = "en") -> str:
    """The list's config as Majordomo's writeconfig lays it out: a file Majordomo 1.94.5
    reads as it is. Our other settings follow as `#listmgr:` comment lines. The keys'
    help comments are in `language`."""
    out = [header.rstrip("\n")]
    for key in sorted(KEYWORDS):
        keyword = KEYWORDS[key]
        setting = SETTINGS[key]
        default = default_text(keyword, mlist.name) or "undef"
        description = describe(setting, language)
        out.extend(configfile.render_block(
            key, keyword.kind, default, keyword.subsystems, description,
            format_value(mlist, setting), array=setting.is_array,
            wrap=(lambda t: textwrap.wrap(t, 66)) if language == "en"
            else (lambda t: configfile.wrap_columns(t, 66))))
    out.append("")
    out.append("# Settings of this server that Majordomo does not have.  Majordomo")
    out.append("# skips these comment lines; newconfig here reads them.")
    for key in EXTENSIONS:
        setting = SETTINGS[key]
        if setting.secret:
            continue
        value = format_value(mlist, setting)
        if setting.is_array:
            value = ", ".join(v for v in value.split("\n") if v)
        out.append(f"#listmgr: {key} = {value}")
    return "\n".join(out) + "\n"
