"""DMARC mitigation: whether a post must leave From: the list (RFC 7960 section 4.1.3).

A post From: a domain that publishes DMARC p=quarantine or p=reject fails DMARC at the
members' providers once the list changed it (subject prefix, fronter, footer, Reply-To):
the poster's DKIM signature breaks and our envelope is not theirs. Then the list's
`dmarc_mitigation` applies (`munge_from` or `wrap`, see listmgr.posting.decorate), when
the policy is at least `dmarc_when` (`reject`, `quarantine`; `always`: every post, without
asking DNS). A list that changes nothing needs none. A policy that cannot be looked up now
(DNS timeout) counts as reject: a munged post is delivered, a rejected one is lost.
"""

from __future__ import annotations

import logging

from listmgr.auth import dmarc
from listmgr.auth.dns import DNSTrouble, TXTLookup
from listmgr.mail.addresses import domain_of
from listmgr.posting.decorate import ListInfo
from listmgr.posting.message import RawMessage

log = logging.getLogger(__name__)

MODES = ("none", "munge_from", "wrap")
WHEN = ("reject", "quarantine", "always")
_STRENGTH = {"none": 0, "quarantine": 1, "reject": 2}


def decide(lookup: TXTLookup, info: ListInfo, msg: RawMessage,
           local_domains: tuple[str, ...] = ()) -> str:
    """"none", "munge_from" or "wrap" for this post on this list."""
    mode = info.dmarc_mitigation
    if mode not in ("munge_from", "wrap"):
        return "none"
    if info.dmarc_when == "always":
        return mode
    if not info.changes_posts:
        return "none"
    addrs = msg.addresses("from")
    if len(addrs) != 1:
        return "none"
    domain = domain_of(addrs[0])
    if domain in local_domains:
        return "none"  # our own users: our signature is aligned already
    try:
        policy = dmarc.policy_for(lookup, domain)
    except DNSTrouble as exc:
        log.warning("list=%s DMARC policy of %s unknown (%s): mitigating", info.name,
                    domain, exc)
        return mode
    if policy is None:
        return "none"
    need = 2 if info.dmarc_when == "reject" else 1
    return mode if _STRENGTH[policy.policy] >= need else "none"
