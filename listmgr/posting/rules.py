"""The posting rules: small declared checks, each with a name, a description and a reason.

A rule looks at a `Post` (the list's settings, the parsed message, who sent it) and returns
a `Hit` (what to do and why, worded for the moderator) or None. Rules do no I/O: membership
and passwords come in as callables, so the policy is tested without a store.
Majordomo's reason texts (reference 5.1, 5.3) are kept where the concept is the same.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import regex

from listmgr import patterns
from listmgr.listconfig import parse_regexp
from listmgr.mail.addresses import address_list
from listmgr.posting.message import RawMessage

DISCARD, REJECT, HOLD = "discard", "reject", "hold"

# Guards for the list's own regexps (reference 8.1: a pathological pattern must not stall
# the server). Lines are cut to this length before matching, and all matching of one post
# shares one time budget; running out of it holds the post for a human.
MAX_LINE = 1000
MAX_BODY_LINES = 20000
ADMIN_BODY_LINES = 9  # Majordomo checks body lines 1-9


@dataclass(frozen=True)
class Hit:
    rule: str
    action: str  # discard | reject | hold
    reason: str


@dataclass
class Post:
    """What the rules see. `mlist` is read for its settings only."""

    mlist: Any
    msg: RawMessage
    size: int
    mail_from: str
    list_address: str  # LIST@domain
    list_id: str  # LIST.domain (RFC 2919 list-id)
    is_member: Callable[[str], bool]
    text: Callable[[], str]  # decoded text/plain body, computed on demand
    admin_patterns: Sequence[regex.Pattern] = ()
    max_size: int = 0
    time_budget: float = 2.0
    approved: bool = False
    approval_invalid: bool = False
    authenticated: bool | None = None  # From: had an aligned DKIM/SPF pass (None: unknown)
    auth_summary: str = ""
    started: float = field(default_factory=time.monotonic)
    # The site's Majordomo-form taboo patterns ([posting] global_taboo_*), one a line.
    global_taboo_headers: str = ""
    global_taboo_body: str = ""

    @property
    def poster(self) -> str:
        """The header From address, else the envelope sender."""
        addrs = self.msg.addresses("from")
        return addrs[0] if addrs else self.mail_from

    def senders(self) -> list[str]:
        """Addresses that may identify the poster: header From and the envelope sender,
        and Reply-To when the list keeps Majordomo's rule (restrict_post_reply_to)."""
        reply_to = self.msg.addresses("reply-to")[:5] \
            if getattr(self.mlist, "restrict_post_reply_to", False) else []
        out = list(dict.fromkeys(a for a in (*self.msg.addresses("from")[:1], self.mail_from,
                                             *reply_to) if a))
        return out

    def remaining(self) -> float:
        return self.time_budget - (time.monotonic() - self.started)


class Rule(ABC):
    name = ""
    description = ""
    # An approved post (valid Approved: password) skips this rule, as in Majordomo.
    skip_when_approved = True

    @abstractmethod
    def check(self, post: Post) -> Hit | None:
        """The hit when this rule applies to `post`, else None."""

    def hit(self, action: str, reason: str) -> Hit:
        return Hit(self.name, action, reason)


class Loop(Rule):
    name = "loop"
    description = "the post already went through this list (our X-Loop or List-Id): discard"
    skip_when_approved = False

    def check(self, post: Post) -> Hit | None:
        addr = post.list_address.lower()
        for v in post.msg.get_all("x-loop"):
            if addr in v.lower():
                return self.hit(DISCARD, f"mail loop: X-Loop: {v.strip()}")
        tag = f"<{post.list_id.lower()}>"
        for v in post.msg.get_all("list-id"):
            if tag in v.lower():
                return self.hit(DISCARD, f"mail loop: List-Id: {v.strip()}")
        return None


class InvalidApproval(Rule):
    name = "approved"
    description = "an Approved: password was given and is wrong: hold (it is never sent on)"
    skip_when_approved = False

    def check(self, post: Post) -> Hit | None:
        if post.approval_invalid and not post.approved:
            return self.hit(HOLD, "Invalid 'Approved:' header")
        return None


class ApprovedInPart(Rule):
    name = "approved_in_part"
    description = "an Approved: line that could not be taken out (inside a MIME part or " \
                  "an encoded body): hold, so a password is never sent to the list"
    skip_when_approved = False

    _LINE = regex.compile(r"^\s*Approved:\s*\S+\s*$", regex.I)

    def check(self, post: Post) -> Hit | None:
        for line in post.text().split("\n")[:5]:
            if not line.strip():
                continue
            if self._LINE.match(_cut(line)):
                return self.hit(HOLD, "Approved: line inside the message body could not be "
                                      "removed; send it as the first line of a plain-text "
                                      "post or as a header")
            return None
        return None


class Size(Rule):
    name = "size"
    description = "the post is larger than the list's maxlength (default: the server's " \
                  "max_message_size): hold. maxlength_counts says whether the whole " \
                  "message or, as in Majordomo, only the body is measured"

    def check(self, post: Post) -> Hit | None:
        limit = post.mlist.maxlength
        if limit and getattr(post.mlist, "maxlength_counts", "message") == "body":
            body = post.msg.body
            if len(body) - body.count(b"\r\n") > limit:  # Unix line ends, as resend counted
                return self.hit(HOLD, f"Message too long (>{limit} chars)")
            limit = 0  # the server's own limit still counts the whole message
        limit = limit or post.max_size
        if limit and post.size > limit:
            return self.hit(HOLD, f"Message too long (>{limit} bytes)")
        return None


def _cut(line: str) -> str:
    return line[:MAX_LINE]


class Administrivia(Rule):
    name = "administrivia"
    description = "the Subject or one of the first body lines is a command (subscribe, " \
                  "unsubscribe, remove me, ...): hold, and tell the sender to write to " \
                  "majordomo@"

    def check(self, post: Post) -> Hit | None:
        if not post.mlist.administrivia or not post.admin_patterns:
            return None
        subject = _cut(post.msg.get("subject").strip())
        subject = regex.sub(r"^(?:(?:re|aw|sv|fwd?)\s*:\s*)+", "", subject, flags=regex.I)
        for pat in post.admin_patterns:
            if _fullmatch(pat, subject, post):
                return self.hit(HOLD, f"Admin request: Subject: {subject}")
        lines = [ln.strip() for ln in post.text().split("\n")]
        lines = [ln for ln in lines if ln][:ADMIN_BODY_LINES]
        for n, line in enumerate(lines, 1):
            line = _cut(line)
            for pat in post.admin_patterns:
                if _fullmatch(pat, line, post):
                    return self.hit(HOLD, f"Admin request of type /{pat.pattern}/ at line {n}")
        return None


class TabooHeaders(Rule):
    name = "taboo_headers"
    description = "a header line matches one of the list's taboo_headers: hold"

    def check(self, post: Post) -> Hit | None:
        pats = compile_list(post.mlist.taboo_headers)
        if not pats:
            return None
        bad = _unusable(self, pats)
        if bad is not None:
            return bad
        for line in post.msg.header_lines():
            line = _cut(line)
            for text, pat in pats:
                if _search(pat, line, post):
                    return self.hit(HOLD, f"taboo header: {text}")
        return None


class TabooBody(Rule):
    name = "taboo_body"
    description = "a body line matches one of the list's taboo_body: hold"

    def check(self, post: Post) -> Hit | None:
        pats = compile_list(post.mlist.taboo_body)
        if not pats:
            return None
        bad = _unusable(self, pats)
        if bad is not None:
            return bad
        for n, line in enumerate(post.text().split("\n")[:MAX_BODY_LINES], 1):
            line = _cut(line.rstrip("\r"))
            for text, pat in pats:
                if _search(pat, line, post):
                    return self.hit(HOLD, f'taboo body match "{text}" at line {n}')
        return None


class GlobalTaboo(Rule):
    name = "global_taboo"
    description = "a header line or body line matches the site's [posting] " \
                  "global_taboo_headers / global_taboo_body: hold"

    def check(self, post: Post) -> Hit | None:
        pats = compile_list(post.global_taboo_headers)
        for line in post.msg.header_lines() if pats else ():
            line = _cut(line)
            for text, pat in pats:
                if _search(pat, line, post):
                    return self.hit(HOLD, f"global taboo header: {text}")
        pats = compile_list(post.global_taboo_body)
        if not pats:
            return None
        for n, line in enumerate(post.text().split("\n")[:MAX_BODY_LINES], 1):
            line = _cut(line.rstrip("\r"))
            for text, pat in pats:
                if _search(pat, line, post):
                    return self.hit(HOLD, f'global taboo body match "{text}" at line {n}')
        return None


MAX_HEADER_LINE = 128  # Majordomo's $MAX_HEADER_LINE_LENGTH
MAX_HEADER_FIELD = 1024  # $MAX_TOTAL_HEADER_LENGTH
_QUOTED = regex.compile(r'"(?:[^"\\]|\\.)*"')


class AddressHeaders(Rule):
    name = "address_headers"
    description = "To:, Cc: or From: with a line over 128 characters, over 1024 in all, " \
                  "or From: with unbalanced parentheses or angle brackets: hold " \
                  "(Majordomo's resend checks)"

    def check(self, post: Post) -> Hit | None:
        for name, raw in post.msg.fields:
            if name not in ("to", "cc", "from"):
                continue
            if any(len(line) > MAX_HEADER_LINE for line in raw.split(b"\r\n")):
                return self.hit(HOLD, f"Header line too long (>{MAX_HEADER_LINE})")
            if len(raw.replace(b"\r\n", b"")) > MAX_HEADER_FIELD:
                return self.hit(HOLD, f"Header field too long (>{MAX_HEADER_FIELD})")
            if name == "from":
                value = _QUOTED.sub("", raw.decode("utf-8", "replace"))
                if value.count("(") != value.count(")") or \
                        value.count("<") != value.count(">"):
                    return self.hit(HOLD, "Imbalanced parentheses or angle brackets")
        return None


class PostPolicy(Rule):
    name = "post_policy"
    description = "who may post: open (anyone), members (others held or rejected per " \
                  "nonmember_action), moderated (every post held), announce (owners only)"

    def check(self, post: Post) -> Hit | None:
        policy = post.mlist.post_policy
        if policy == "open":
            return None
        if policy == "moderated":
            return self.hit(HOLD, "Approval required: the list is moderated")
        senders = post.senders()
        action = REJECT if post.mlist.nonmember_action == "reject" else HOLD
        if policy == "announce":
            allowed = {o.lower() for o in [*post.mlist.owners, *address_list(post.mlist.moderator)]}
            if any(s.lower() in allowed for s in senders):
                return None
            return self.hit(action, f"Non-owner submission to an announce-only list from "
                                    f"[{post.poster}]")
        if any(post.is_member(s) for s in senders):
            return None
        return self.hit(action, f"Non-member submission from [{post.poster}]")


class RequireAuth(Rule):
    name = "require_auth"
    description = "require_auth lists (not open): a post whose From: domain has no aligned " \
                  "DKIM or SPF pass (DMARC's test) is held, so a forged member address " \
                  "cannot post"

    def check(self, post: Post) -> Hit | None:
        if not getattr(post.mlist, "require_auth", False) or post.mlist.post_policy == "open":
            return None
        if post.authenticated is None or post.authenticated:
            return None
        return self.hit(HOLD, f"The From: address [{post.poster}] is not authenticated "
                              f"({post.auth_summary})")


class TooComplex(Rule):
    """Not in RULES: the worker runs it alone when mail/mimelimits.py refuses the post's
    structure (the content rules could not read its text within bounds)."""

    name = "mime_limits"
    description = "the MIME structure passes a limit (parts, nesting, header fields): hold"
    skip_when_approved = False

    def __init__(self, why: str):
        self.why = why

    def check(self, post: Post) -> Hit | None:
        return self.hit(HOLD, f"Message structure too complex: {self.why}")


# The chain, in order. Loop first (a loop is never held), then the approval check, then
# the content rules, then who may post.
RULES: tuple[Rule, ...] = (Loop(), InvalidApproval(), ApprovedInPart(), Size(), Administrivia(),
                           TabooHeaders(), TabooBody(), GlobalTaboo(), AddressHeaders(),
                           PostPolicy(), RequireAuth())


TIME_BUDGET = "time_budget"  # the rule name of a hold because matching ran out of time


class BudgetExceeded(Exception):
    pass


def _run(fn, pat: regex.Pattern, text: str, post: Post) -> bool:
    left = post.remaining()
    if left <= 0:
        raise BudgetExceeded(pat.pattern)
    try:
        return fn(pat, text, left)
    except TimeoutError:
        raise BudgetExceeded(pat.pattern) from None


def _search(pat: regex.Pattern, text: str, post: Post) -> bool:
    return _run(patterns.search, pat, text, post)


def _fullmatch(pat: regex.Pattern, text: str, post: Post) -> bool:
    return _run(patterns.fullmatch, pat, text, post)


_cache: dict[str, list[tuple[str, regex.Pattern | str]]] = {}


def compile_list(text: str) -> list[tuple[str, regex.Pattern | str]]:
    """The list's `/re/flags` lines -> (as written, pattern that can time out).

    listmgr.patterns prices each pattern before the `regex` engine compiles it. A stored
    pattern that is refused (set before these checks, or by hand) comes back as the reason
    text in place of the pattern: the rule holds the post rather than compile it.
    """
    if not text or not text.strip():
        return []
    got = _cache.get(text)
    if got is not None:
        return got
    out: list[tuple[str, regex.Pattern | str]] = []
    for item in text.split("\n"):
        if not item.strip():
            continue
        try:
            out.append((item.strip(), parse_regexp(item)))
        except ValueError as exc:
            out.append((item.strip(), str(exc)))
    if len(_cache) > 256:
        _cache.clear()
    _cache[text] = out
    return out


def _unusable(rule: Rule, pats: list[tuple[str, regex.Pattern | str]]) -> Hit | None:
    for text, pat in pats:
        if isinstance(pat, str):
            return rule.hit(HOLD, f"{rule.name} pattern {text} cannot be used ({pat}); "
                                  f"the list owner must correct it")
    return None


def compile_admin(pats: Sequence[str]) -> list[regex.Pattern]:
    """Whole-line administrivia patterns from the configuration (case-insensitive)."""
    return [patterns.compile_pattern(p, "i") for p in pats]


def evaluate(post: Post, rules: Sequence[Rule] = RULES) -> list[Hit]:
    """Run every rule that applies; all hits are kept, so the moderator sees every reason."""
    hits: list[Hit] = []
    for rule in rules:
        if post.approved and rule.skip_when_approved:
            continue
        try:
            h = rule.check(post)
        except BudgetExceeded as exc:
            # Its own rule name: a pattern that ran out of time is not a hit of the rule
            # (an administrivia timeout must not tell the poster "looks like a command").
            h = Hit(TIME_BUDGET, HOLD, f"{rule.name} check ran out of time on /{exc}/")
        if h is not None:
            hits.append(h)
            if h.action == DISCARD:
                break
    return hits
