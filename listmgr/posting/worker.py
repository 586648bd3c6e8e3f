"""The inbound handler for posts to LIST@domain: chain -> accept, hold, reject or discard."""

from __future__ import annotations

import logging

from listmgr.mail import automatic, mimelimits
from listmgr.posting import chain, moderation, notices, rules
from listmgr.posting.fanout import distribute
from listmgr.store.lists import get_list, is_member

log = logging.getLogger(__name__)

_admin_cache: dict[tuple[str, ...], list] = {}


def _admin_patterns(config) -> list:
    pats = config.posting.administrivia
    got = _admin_cache.get(pats)
    if got is None:
        got = _admin_cache[pats] = rules.compile_admin(pats)
    return got


def _decide(app, mlist, data: bytes, mail_from: str, is_member_fn) -> chain.Decision:
    cfg = app.config
    post = chain.build_post(mlist=mlist, data=data, mail_from=mail_from,
                            domain=cfg.domain, is_member=is_member_fn,
                            admin_patterns=_admin_patterns(cfg),
                            max_size=cfg.smtp.max_message_size,
                            time_budget=cfg.posting.rule_time_budget)
    too_complex = mimelimits.check(data)
    if too_complex:
        # Its text cannot be read within bounds, so no content rule can clear it.
        return chain.decide(post, (rules.Loop(), rules.TooComplex(too_complex)))
    return chain.decide(post)


def prepare_post(app, target: str, mail_from: str, data: bytes) -> chain.Decision | None:
    """Parse the post and run the list's rules, with no store transaction open: a slow
    pattern or a large post never holds the write lock that SMTP ingress waits for."""
    with app.store.session() as s:
        mlist = get_list(s, target)
    if mlist is None:
        return None

    def member(address: str) -> bool:
        with app.store.session() as s:
            return is_member(s, mlist, address)
    return _decide(app, mlist, data, mail_from, member)


def handle_post(app, s, task, message, data: bytes,
                decision: chain.Decision | None = None) -> None:
    mlist = get_list(s, task.target)
    if mlist is None:
        log.warning("%s post to unknown list %r dropped", message.queue_id, task.target)
        return
    if decision is None:
        decision = _decide(app, mlist, data, message.mail_from,
                           lambda a: is_member(s, mlist, a))
    reasons = "; ".join(decision.reasons)
    if decision.action == "discard":
        log.info("%s list=%s from=<%s> discarded: %s", message.queue_id, mlist.name,
                 message.mail_from, reasons)
        return
    if decision.action == "reject":
        log.info("%s list=%s from=<%s> rejected: %s", message.queue_id, mlist.name,
                 message.mail_from, reasons)
        if not automatic.is_automatic(message.mail_from, decision.msg):
            notices.send(app, s, mlist=mlist, to=[message.mail_from],
                         template="post_refused.txt", mail_from="", limit=True,
                         subject=decision.msg.get("subject"), reasons=decision.reasons)
        return
    if decision.action == "hold":
        moderation.hold(app, s, mlist, decision.msg, mail_from=message.mail_from,
                        reasons=decision.reasons)
        if decision.hit_by("administrivia") and \
                not automatic.is_automatic(message.mail_from, decision.msg):
            notices.send(app, s, mlist=mlist, to=[message.mail_from],
                         template="post_administrivia.txt", mail_from="", limit=True,
                         subject=decision.msg.get("subject"))
        return
    if decision.approved:
        moderation.settle_resent(app, s, mlist, decision.msg, decision.poster)
    done = distribute(app, s, mlist, decision.msg)
    log.info("%s list=%s from=<%s> accepted%s -> %s (%d recipients)", message.queue_id,
             mlist.name, message.mail_from, " (approved)" if decision.approved else "",
             done.queue_id, done.recipients)


handle_post.prepare = prepare_post  # type: ignore[attr-defined]  # run by the pipeline
