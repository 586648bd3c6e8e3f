"""The chain: approval, then the rules, then one decision with every reason recorded.

Approval follows Majordomo (reference 5.1 point 3, 5.2): an `Approved: PASSWORD` header
anywhere in the header, or as the first body line. In the body, a blank line after it is
eaten; otherwise what follows is a whole message (how an owner resends a held post with
its headers). The password is checked against approve_passwd, then admin_passwd. An
Approved: header or line never goes out to the list, valid or not.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from listmgr.passwords import verify_password
from listmgr.posting import rules
from listmgr.posting.message import RawMessage, text_of

_BODY_APPROVED = re.compile(rb"^Approved:[ \t]*(\S+)[ \t]*$", re.I)
_PLAIN_ENCODINGS = ("", "7bit", "8bit", "binary")


@dataclass
class Approval:
    password: str | None
    msg: RawMessage


def extract_approval(msg: RawMessage) -> Approval:
    """Take the Approved: password (header first, else first body line) out of `msg`."""
    password = None
    values = msg.get_all("approved") or msg.get_all("approve")
    if values:
        password = values[0].strip() or None
    msg.remove("approved", "approve")
    if password is not None:
        return Approval(password, msg)
    if msg.content_type() != "text/plain" or \
            msg.get("content-transfer-encoding").strip().lower() not in _PLAIN_ENCODINGS:
        return Approval(None, msg)
    body = msg.body
    stripped = body.lstrip(b"\r\n")
    line, sep, rest = stripped.partition(b"\r\n")
    m = _BODY_APPROVED.match(line)
    if not m:
        return Approval(None, msg)
    password = m.group(1).decode("utf-8", "replace")
    if rest.startswith(b"\r\n") or not rest.strip():
        msg.body = rest[2:] if rest.startswith(b"\r\n") else rest
        return Approval(password, msg)
    # The rest is a whole message: its headers replace ours (Majordomo's resend of a
    # held post, reference 5.2).
    inner = RawMessage.parse(rest)
    inner.remove("approved", "approve")
    return Approval(password, inner)


def check_password(mlist, password: str) -> bool:
    for stored in (mlist.approve_passwd_hash, mlist.admin_passwd_hash):
        if stored and verify_password(stored, password):
            return True
    return False


@dataclass
class Decision:
    action: str  # accept | hold | reject | discard
    hits: list[rules.Hit]
    approved: bool
    msg: RawMessage  # the post with any Approved: removed
    poster: str
    senders: list[str] = field(default_factory=list)

    @property
    def reasons(self) -> list[str]:
        return [h.reason for h in self.hits]

    def hit_by(self, rule: str) -> bool:
        return any(h.rule == rule for h in self.hits)


def decide(post: rules.Post, rule_set=rules.RULES) -> Decision:
    hits = rules.evaluate(post, rule_set)
    actions = {h.action for h in hits}
    if rules.DISCARD in actions:
        action = "discard"
    elif rules.REJECT in actions:
        action = "reject"
    elif rules.HOLD in actions:
        action = "hold"
    else:
        action = "accept"
    return Decision(action, hits, post.approved, post.msg, post.poster, post.senders())


def build_post(*, mlist, data: bytes, mail_from: str, domain: str, is_member,
               admin_patterns, max_size: int, time_budget: float,
               global_taboo: tuple[str, str] = ("", "")) -> rules.Post:
    """Parse `data`, take out the approval, and make the Post the rules look at."""
    approval = extract_approval(RawMessage.parse(data))
    msg = approval.msg
    cache: list[str] = []

    def text() -> str:
        if not cache:
            cache.append(text_of(msg))
        return cache[0]

    post = rules.Post(mlist=mlist, msg=msg, size=len(data), mail_from=mail_from,
                      list_address=f"{mlist.name}@{domain}", list_id=f"{mlist.name}.{domain}",
                      is_member=is_member, text=text, admin_patterns=admin_patterns,
                      max_size=max_size, time_budget=time_budget,
                      global_taboo_headers=global_taboo[0], global_taboo_body=global_taboo[1])
    if approval.password is not None:
        if check_password(mlist, approval.password):
            post.approved = True
        else:
            post.approval_invalid = True
    return post
