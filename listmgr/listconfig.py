"""A list's settings: Majordomo's config keywords, their types, defaults and parsing.

One registry serves `listmgr config LIST KEY VALUE`, the mail commands `config` /
`newconfig` / `writeconfig`, and README. Values are parsed from text and formatted back
to text; `column` is the MailingList attribute that holds the value.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
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
    parse.choices = values  # type: ignore[attr-defined]  # forms offer these
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


def _positive_number(text: str) -> float:
    t = text.strip()
    if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", t) or float(t) <= 0 or float(t) > 1000:
        raise ValueError("expected a number above 0 (at most 1000), e.g. 5.0")
    return float(t)


def _count(text: str) -> int:
    t = text.strip()
    if not re.fullmatch(r"[0-9]{1,3}", t):
        raise ValueError("expected a whole number from 0 to 999")
    return int(t)


def _text(text: str) -> str:
    """Lines of text as given: a last empty line (Majordomo's `-` before END) is kept."""
    return text.replace("\r\n", "\n")


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
    if "@" not in t and re.fullmatch(r"[-_0-9A-Za-z.$]{1,64}", t):
        return t  # a local part, as Majordomo's digest default `LIST`: the site domain is added
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


def _positive_or_one(text: str) -> int:
    """Majordomo's digest_volume / digest_issue: an empty value means the default, 1."""
    value = _integer_or_empty(text)
    return 1 if value is None else value


def _fmt_int_or_empty(v: int | None) -> str:
    return "" if v is None else str(v)


def _host_or_empty(text: str) -> str:
    t = _word(text)
    if t and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})", t):
        raise ValueError("expected a host name")
    return t.lower()


def _local_or_address(text: str) -> str:
    """Majordomo's `sender`: a local part (the list's domain is added) or an address."""
    t = _word(text)
    if not t:
        return ""
    if "+" in t.rpartition("@")[0] or ("@" not in t and "+" in t):
        raise ValueError("a + cannot be in it: it starts the member part of VERP addresses")
    if "@" in t:
        return _address_or_empty(t)
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}", t) or t.startswith("-"):
        raise ValueError("expected a local part or an address")
    return t


def _restrict_post(text: str) -> str:
    """Majordomo's restrict_post: list names (or member files named for lists), separated
    by colons or blanks. A path keeps only its last part, as the list it names."""
    names = []
    for item in re.split(r"[:\s]+", text.strip()):
        if not item:
            continue
        name = item.rsplit("/", 1)[-1]
        if not valid_list_name(name):
            raise ValueError(f"{item!r} does not name a list")
        names.append(name.lower())
    if len(names) > 50:
        raise ValueError("at most 50 lists")
    return " ".join(dict.fromkeys(names))


def _absolute_dir(text: str) -> str:
    """A directory of a Majordomo installation: root-anchored, or relative to its $listdir
    (import-majordomo resolves it there); never with . or .. parts."""
    t = _string(text)
    if t and ("/../" in "/" + t + "/" or "/./" in "/" + t + "/"):
        raise ValueError("expected a directory without . or .. parts")
    return t


def _get_moderate(mlist: Any) -> bool:
    return mlist.post_policy == "moderated"


def _put_moderate(mlist: Any, value: bool) -> None:
    if value:
        mlist.post_policy = "moderated"
    elif mlist.post_policy == "moderated":
        mlist.post_policy = "members"


def _fmt_bool(v: bool) -> str:
    return "yes" if v else "no"


def _fmt_lines(v: str | tuple[str, ...]) -> str:
    """Addresses one a line: stored as text, read as a tuple (store.settings.ListSettings)."""
    return v if isinstance(v, str) else "\n".join(v)


@dataclass(frozen=True)
class Setting:
    key: str
    kind: str  # bool, enum, word, string, integer, string_array, regexp_array, ...
    parse: Callable[[str], Any]
    description: str
    column: str = ""
    fmt: Callable[[Any], str] = str
    secret: bool = False  # write-only: stored hashed, never shown
    # A setting held in other settings (Majordomo's `moderate` is post_policy moderated):
    # get(mlist) -> value, put(mlist, value) stores it; `column` is then unused.
    get: Callable[[Any], Any] | None = None
    put: Callable[[Any, Any], None] | None = None

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
    _s("bounce_info_stale_after", "duration", _duration, "a bounce score this old starts "
       "again from zero", fmt=lambda v: _short_duration(v)),
    _s("bounce_score_threshold", "number", _positive_number, "bounce score (hard 1.0, soft "
       "0.5, one a day) at which a member's delivery is turned off", fmt=lambda v: f"{v:g}"),
    _s("bounce_warning_interval", "duration", _duration, "time between the notices to a "
       "member whose delivery bounces turned off", fmt=lambda v: _short_duration(v)),
    _s("bounce_warnings", "integer", _count, "notices to such a member before removal (0: "
       "removed when disabled)"),
    _s("approve_passwd", "word", _word, "password for Approved: on posts (stored hashed)",
       column="approve_passwd_hash", secret=True),
    _s("archive_dir", "absolute_dir", _absolute_dir, "Majordomo's archive directory: "
       "import-majordomo copies the archive from there; stored, no effect afterwards"),
    _s("comments", "string_array", _text, "free text kept with the list"),
    _s("date_info", "bool", _bool, "stamp the date at the top of the info text", fmt=_fmt_bool),
    _s("date_intro", "bool", _bool, "stamp the date at the top of the intro text",
       fmt=_fmt_bool),
    _s("debug", "bool", _bool, "Majordomo's resend debugging: stored, has no effect",
       fmt=_fmt_bool),
    _s("description", "string", _string, "one-line description shown by `lists`"),
    _s("digest_archive", "absolute_dir", _absolute_dir, "Majordomo's digest archive "
       "directory: import-majordomo copies its digests; stored, no effect afterwards"),
    _s("digest_format", "enum", _enum("mime", "rfc1153"), "digests as MIME multipart/digest "
       "(RFC 2046) or plain text (RFC 1153)"),
    _s("digest_issue", "integer", _positive_or_one, "number of the next digest issue"),
    _s("digest_maxdays", "integer", _integer_or_empty, "send a digest when its oldest "
       "post is this many days old (empty: no age trigger)", fmt=_fmt_int_or_empty),
    _s("digest_maxlines", "integer", _integer_or_empty, "send a digest when the queued "
       "posts pass this many lines (empty: no line trigger)", fmt=_fmt_int_or_empty),
    _s("digest_name", "string", _string, "title of the digest (empty: the list name)",
       get=lambda m: m.digest_name or m.name),
    _s("digest_rm_footer", "word", _word, "list whose message_footer is cut from posts "
       "before they go into the digest"),
    _s("digest_rm_fronter", "word", _word, "list whose message_fronter is cut from posts "
       "before they go into the digest"),
    _s("digest_volume", "integer", _positive_or_one, "digest volume number"),
    _s("digest_work_dir", "absolute_dir", _absolute_dir, "Majordomo's digest work "
       "directory: import-majordomo queues the posts waiting there for the next digest; "
       "stored, no effect afterwards"),
    _s("dmarc_mitigation", "enum", _enum("none", "munge_from", "wrap"), "posts From: a "
       "domain with a strict DMARC policy go out From: the list (munge_from) or attached to "
       "a message from the list (wrap); none: unchanged"),
    _s("dmarc_when", "enum", _enum("reject", "quarantine", "always"), "mitigate posts from "
       "domains publishing p=reject, p=quarantine or reject, or always (every post)"),
    _s("get_access", "enum", _enum(*ACCESS), "who may `get` archive files: open, list, closed"),
    _s("hold_expiry", "duration", _duration, "held posts expire after this long",
       fmt=lambda v: _short_duration(v)),
    _s("index_access", "enum", _enum(*ACCESS), "who may `index`: open, list, closed"),
    _s("info_access", "enum", _enum(*ACCESS), "who may `info`: open, list, closed"),
    _s("intro_access", "enum", _enum(*ACCESS), "who may `intro`: open, list, closed"),
    _s("language", "word", _language, "language of replies and notices: en or ja"),
    _s("maxlength", "integer", _integer_or_empty, "largest post in bytes (empty: the "
       "server's max_message_size)", fmt=lambda v: "" if v is None else str(v)),
    _s("maxlength_counts", "enum", _enum("message", "body"), "what maxlength measures: "
       "message (the whole post, headers included) or body (Majordomo's meaning)"),
    _s("message_footer", "string_array", _text, "text appended to every post"),
    _s("message_fronter", "string_array", _text, "text prepended to every post"),
    _s("message_headers", "string_array", _text, "extra header lines added to every post"),
    _s("moderate", "bool", _bool, "hold every unapproved post: the same as post_policy "
       "moderated", fmt=_fmt_bool, get=_get_moderate, put=_put_moderate),
    _s("moderator", "word", _address_or_empty, "where held posts go (empty: the owners)"),
    _s("mungedomain", "bool", _bool, "Majordomo's user@host.dom = user@dom matching: "
       "stored, has no effect", fmt=_fmt_bool),
    _s("noadvertise", "regexp_array", _regexps, "hide the list from `lists` for requesters "
       "matching one of these"),
    _s("nonmember_action", "enum", _enum("hold", "reject"), "posts from non-members on a "
       "`members` list: hold for the moderator or reject"),
    _s("owners", "address_array", _addresses, "the list owners' addresses",
       fmt=_fmt_lines),
    _s("post_policy", "enum", _enum(*POST_POLICIES), "who may post: open (anyone), members, "
       "moderated (every post held), announce (owners only)"),
    _s("precedence", "word", _word, "Precedence: header put on posts"),
    _s("purge_received", "bool", _bool, "remove Received: headers from posts", fmt=_fmt_bool),
    _s("reply_to", "word", _reply_to, "Reply-To: put on posts ($SENDER for the poster)"),
    _s("resend_host", "word", _host_or_empty, "host name in the Sender: header put on "
       "posts and digests (empty: the site domain)"),
    _s("restrict_post", "restrict_post", _restrict_post, "lists whose members may post "
       "(colon or blank separated; empty: this list's own members)"),
    _s("restrict_post_reply_to", "bool", _bool, "a Reply-To naming a member lets a post "
       "through, as in Majordomo (off for new lists: anyone can write any Reply-To)",
       fmt=_fmt_bool),
    _s("sender", "word", _local_or_address, "envelope sender of the list's copies "
       "(a local part gets the site domain; default owner-LIST); with VERP its local part "
       "is the base: LOCAL+member=domain@ (bounces to either reach the bounce processor)",
       get=lambda m: m.sender or f"owner-{m.name}"),
    _s("require_auth", "bool", _bool, "hold posts whose From: address is not authenticated "
       "(no aligned DKIM or SPF pass); not on open lists", fmt=_fmt_bool),
    _s("strip", "bool", _bool, "store subscribers' bare addresses without comments",
       fmt=_fmt_bool),
    _s("subject_prefix", "word", _word, "prefix for Subject:, e.g. [$LIST] or [$LIST:$SEQ]"),
    _s("subscribe_policy", "enum", _enum(*POLICIES), "open, closed or auto, each optionally "
       "+confirm"),
    _s("taboo_body", "regexp_array", _regexps, "hold the post if a body line matches"),
    _s("taboo_headers", "regexp_array", _regexps, "hold the post if a header line matches"),
    _s("unsubscribe_policy", "enum", _enum(*POLICIES), "open, closed or auto, each optionally "
       "+confirm"),
    _s("verp", "enum", _enum("off", "probes", "on"), "each member's copy gets its own "
       "envelope sender owner-LIST+member=domain@ (on), only members with a bounce score "
       "(probes), or none (off: bounces are read with flufl.bounce)"),
    _s("welcome", "bool", _bool, "send the welcome/intro mail to new subscribers",
       fmt=_fmt_bool),
    _s("which_access", "enum", _enum(*ACCESS), "whether `which` searches this list"),
    _s("who_access", "enum", _enum(*ACCESS), "who may `who`: open, list, closed"),
]}


@lru_cache(maxsize=8)
def _descriptions(language: str) -> dict[str, str]:
    """templates/<language>/settings.toml: each setting's help text in that language."""
    if not re.fullmatch(r"[a-z]{2}", language):
        return {}
    path = resources.files("listmgr.templates").joinpath(language, "settings.toml")
    if not path.is_file():
        return {}
    return tomllib.loads(path.read_text(encoding="utf-8"))


def describe(setting: Setting | str, language: str) -> str:
    """A setting's help text in `language`; English where there is no translation."""
    st = setting if isinstance(setting, Setting) else SETTINGS[setting]
    if language == "en":
        return st.description
    return _descriptions(language).get(st.key) or st.description


def parse_value(key: str, text: str) -> Any:
    """Parse `text` for setting `key`; SettingError names both on failure."""
    setting = SETTINGS.get(key.lower())
    if setting is None:
        raise SettingError(f"unknown setting '{key}'")
    try:
        return setting.parse(text)
    except ValueError as exc:
        raise SettingError(f"bad value {text!r} for '{setting.key}': {exc}") from None


def get_value(mlist: Any, setting: Setting) -> Any:
    if setting.get is not None:
        return setting.get(mlist)
    return getattr(mlist, setting.attr)


def put_value(mlist: Any, setting: Setting, value: Any) -> None:
    if setting.put is not None:
        setting.put(mlist, value)
    else:
        setattr(mlist, setting.attr, value)


def format_value(mlist: Any, setting: Setting) -> str:
    if setting.secret:
        return ""
    return setting.fmt(get_value(mlist, setting))


def sender_address(mlist: Any, domain: str) -> str:
    """The envelope sender of the list's copies: `sender` (default owner-LIST), with
    @domain when it is a local part (Majordomo's resend -f)."""
    value = (getattr(mlist, "sender", "") or "").strip() or f"owner-{mlist.name}"
    return value if "@" in value else f"{value}@{domain}"


def sender_header(mlist: Any, domain: str) -> str:
    """The Sender: header of posts and digests: the sender's local part at `resend_host`
    (Majordomo's resend -h) when one is set, else the envelope sender."""
    host = (getattr(mlist, "resend_host", "") or "").strip()
    address = sender_address(mlist, domain)
    return f"{address.rpartition('@')[0]}@{host}" if host else address


def bounce_base(mlist: Any) -> str:
    """The local part bounces and VERP addresses are built on (lower case)."""
    value = (getattr(mlist, "sender", "") or "").strip() or f"owner-{mlist.name}"
    return value.rpartition("@")[0].lower() if "@" in value else value.lower()
