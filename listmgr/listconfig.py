"""A list's settings: Majordomo's config keywords, their types, defaults and parsing.

One registry serves `listmgr config LIST KEY VALUE`, the mail commands `config` /
`newconfig` / `writeconfig`, and README. Values are parsed from text and formatted back
to text; `column` is the MailingList attribute that holds the value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

import regex

from listmgr import patterns
from listmgr.config import format_duration, parse_duration
from listmgr.mail.addresses import AddressError, parse_single

POLICIES = ("open", "closed", "auto", "open+confirm", "closed+confirm", "auto+confirm")
POST_POLICIES = ("open", "members", "moderated", "announce")
ACCESS = ("open", "list", "closed")
NAME_RE = re.compile(r"^[-_0-9A-Za-z]{1,64}$")


class SettingError(ValueError):
    """A bad key or value; the message names both."""


def valid_list_name(name: str) -> bool:
    return bool(NAME_RE.match(name))


def _bool(text: str) -> bool:
    t = text.strip().lower()
    if t in ("yes", "y", "true", "on", "1"):
        return True
    if t in ("no", "n", "false", "off", "0"):
        return False
    raise ValueError("expected yes or no")


def _enum(*values: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        t = text.strip()
        if t not in values:
            raise ValueError(f"expected one of {', '.join(values)}")
        return t
    return parse


def _word(text: str) -> str:
    t = text.strip()
    if any(c.isspace() for c in t):
        raise ValueError("expected a single word")
    return t


def _string(text: str) -> str:
    if "\n" in text.strip("\n") or "\r" in text:
        raise ValueError("expected a single line")
    return text.strip()


# Ranges: every number a list owner can set fits its column and makes sense.
MAX_MAXLENGTH = 1024 * 1024 * 1024  # bytes
MIN_HOLD_EXPIRY = 1  # seconds
MAX_HOLD_EXPIRY = 365 * 86400


def _integer_or_empty(text: str) -> int | None:
    t = text.strip()
    if t == "":
        return None
    if not re.fullmatch(r"[1-9][0-9]*", t):
        raise ValueError("expected a positive whole number")
    if len(t) > 12 or int(t) > MAX_MAXLENGTH:
        raise ValueError(f"expected a number from 1 to {MAX_MAXLENGTH}")
    return int(t)


def _text(text: str) -> str:
    return text.replace("\r\n", "\n").rstrip("\n")


def parse_regexp(item: str) -> regex.Pattern:
    """Majordomo's `/pattern/flags` (or `m<d>pattern<d>flags`) -> compiled pattern, priced
    and compiled by listmgr.patterns (ValueError names the item and why it is refused)."""
    return patterns.parse_item(item)


def _regexps(text: str) -> str:
    items = [ln for ln in _text(text).split("\n") if ln.strip()]
    for it in items:
        parse_regexp(it)
    return "\n".join(it.strip() for it in items)


def _addresses(text: str) -> str:
    items = [ln.strip() for ln in re.split(r"[\n,]", text) if ln.strip()]
    out = []
    for it in items:
        try:
            out.append(parse_single(it))
        except AddressError as exc:
            raise ValueError(str(exc)) from None
    if not out:
        raise ValueError("at least one owner address is needed")
    return "\n".join(out)


def _address_or_empty(text: str) -> str:
    t = text.strip()
    if not t:
        return ""
    try:
        return parse_single(t)
    except AddressError as exc:
        raise ValueError(str(exc)) from None


def _reply_to(text: str) -> str:
    t = text.strip()
    if t in ("", "$SENDER", "$sender"):
        return t
    return _address_or_empty(t)


def _duration(text: str) -> int:
    t = text.strip()
    if len(t) > 20:
        raise ValueError("expected a duration from 1s to 365d")
    seconds = parse_duration(t)
    if not MIN_HOLD_EXPIRY <= seconds <= MAX_HOLD_EXPIRY:
        raise ValueError("expected a duration from 1s to 365d")
    return int(seconds)


def _language(text: str) -> str:
    t = text.strip()
    if t not in ("", "en", "ja"):
        raise ValueError("expected en or ja (or empty for the site language)")
    return t


def _short_duration(seconds: int) -> str:
    """14 days -> '14d': the form _duration parses back."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _fmt_bool(v: bool) -> str:
    return "yes" if v else "no"


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # bool, enum, word, string, integer, string_array, regexp_array, ...
    parse: Callable[[str], Any]
    description: str
    column: str = ""
    fmt: Callable[[Any], str] = str
    secret: bool = False  # write-only: stored hashed, never shown

    @property
    def attr(self) -> str:
        return self.column or self.key

    @property
    def is_array(self) -> bool:
        return self.kind.endswith("_array")


def _s(key, kind, parse, description, **kw) -> Setting:
    return Setting(key, kind, parse, description, **kw)


SETTINGS: dict[str, Setting] = {s.key: s for s in [
    _s("admin_passwd", "word", _word, "password for the list's admin commands (stored hashed)",
       column="admin_passwd_hash", secret=True),
    _s("administrivia", "bool", _bool, "hold posts that look like commands (subscribe, "
       "unsubscribe, ...) instead of distributing them", fmt=_fmt_bool),
    _s("advertise", "regexp_array", _regexps, "`lists` shows the list only to requesters "
       "matching one of these"),
    _s("announcements", "bool", _bool, "send SUBSCRIBE/UNSUBSCRIBE notices to the owners",
       fmt=_fmt_bool),
    _s("approve_passwd", "word", _word, "password for Approved: on posts (stored hashed)",
       column="approve_passwd_hash", secret=True),
    _s("comments", "string_array", _text, "free text kept with the list"),
    _s("date_info", "bool", _bool, "stamp the date at the top of the info text", fmt=_fmt_bool),
    _s("date_intro", "bool", _bool, "stamp the date at the top of the intro text",
       fmt=_fmt_bool),
    _s("description", "string", _string, "one-line description shown by `lists`"),
    _s("get_access", "enum", _enum(*ACCESS), "who may `get` archive files: open, list, closed"),
    _s("hold_expiry", "duration", _duration, "held posts expire after this long",
       fmt=lambda v: _short_duration(v)),
    _s("index_access", "enum", _enum(*ACCESS), "who may `index`: open, list, closed"),
    _s("info_access", "enum", _enum(*ACCESS), "who may `info`: open, list, closed"),
    _s("intro_access", "enum", _enum(*ACCESS), "who may `intro`: open, list, closed"),
    _s("language", "word", _language, "language of replies and notices: en or ja"),
    _s("maxlength", "integer", _integer_or_empty, "largest post in bytes (empty: the "
       "server's max_message_size)", fmt=lambda v: "" if v is None else str(v)),
    _s("message_footer", "string_array", _text, "text appended to every post"),
    _s("message_fronter", "string_array", _text, "text prepended to every post"),
    _s("message_headers", "string_array", _text, "extra header lines added to every post"),
    _s("moderator", "word", _address_or_empty, "where held posts go (empty: the owners)"),
    _s("noadvertise", "regexp_array", _regexps, "hide the list from `lists` for requesters "
       "matching one of these"),
    _s("nonmember_action", "enum", _enum("hold", "reject"), "posts from non-members on a "
       "`members` list: hold for the moderator or reject"),
    _s("owners", "address_array", _addresses, "the list owners' addresses"),
    _s("post_policy", "enum", _enum(*POST_POLICIES), "who may post: open (anyone), members, "
       "moderated (every post held), announce (owners only)"),
    _s("precedence", "word", _word, "Precedence: header put on posts"),
    _s("purge_received", "bool", _bool, "remove Received: headers from posts", fmt=_fmt_bool),
    _s("reply_to", "word", _reply_to, "Reply-To: put on posts ($SENDER for the poster)"),
    _s("strip", "bool", _bool, "store subscribers' bare addresses without comments",
       fmt=_fmt_bool),
    _s("subject_prefix", "word", _word, "prefix for Subject:, e.g. [$LIST] or [$LIST:$SEQ]"),
    _s("subscribe_policy", "enum", _enum(*POLICIES), "open, closed or auto, each optionally "
       "+confirm"),
    _s("taboo_body", "regexp_array", _regexps, "hold the post if a body line matches"),
    _s("taboo_headers", "regexp_array", _regexps, "hold the post if a header line matches"),
    _s("unsubscribe_policy", "enum", _enum(*POLICIES), "open, closed or auto, each optionally "
       "+confirm"),
    _s("welcome", "bool", _bool, "send the welcome/intro mail to new subscribers",
       fmt=_fmt_bool),
    _s("which_access", "enum", _enum(*ACCESS), "whether `which` searches this list"),
    _s("who_access", "enum", _enum(*ACCESS), "who may `who`: open, list, closed"),
]}


def parse_value(key: str, text: str) -> Any:
    """Parse `text` for setting `key`; SettingError names both on failure."""
    setting = SETTINGS.get(key.lower())
    if setting is None:
        raise SettingError(f"unknown setting '{key}'")
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise SettingError(f"bad value {text!r} for '{setting.key}': {exc}") from None


def format_value(mlist: Any, setting: Setting) -> str:
    if setting.secret:
        return ""
    return setting.fmt(getattr(mlist, setting.attr))
