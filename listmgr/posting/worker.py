"""The inbound handler for posts to LIST@domain: chain -> accept, hold, reject or discard."""

from __future__ import annotations

import ipaddress
import logging

from listmgr.auth import inbound
from listmgr.mail import automatic, mimelimits
from listmgr.posting import chain, moderation, notices, rules
from listmgr.posting.fanout import distribute
from listmgr.store.lists import may_post
from listmgr.store.settings import read_list

log = logging.getLogger(__name__)

_admin_cache: dict[tuple[str, ...], list] = {}


def _admin_patterns(config) -> list:
    pats = config.posting.administrivia
    got = _admin_cache.get(pats)
    if got is None:
        got = _admin_cache[pats] = rules.compile_admin(pats)
    return got


def local_submission(config, client_ip: str) -> bool:
    """Sent from `[smtp] relay_networks`: our own users' clients, trusted like SMTP AUTH."""
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n, strict=False) for n in config.smtp.relay_networks)


def _decide(app, mlist, data: bytes, mail_from: str, is_member_fn,
            auth: inbound.Results | None = None, local: bool = False) -> chain.Decision:
    cfg = app.config
    post = chain.build_post(mlist=mlist, data=data, mail_from=mail_from,
                            domain=cfg.domain, is_member=is_member_fn,
                            admin_patterns=_admin_patterns(cfg),
                            max_size=cfg.smtp.max_message_size,
                            time_budget=cfg.posting.rule_time_budget,
                            global_taboo=("\n".join(cfg.posting.global_taboo_headers),
                                          "\n".join(cfg.posting.global_taboo_body)))
    if auth is not None:
        post.authenticated = auth.aligned_pass or local
        post.auth_summary = auth.summary()
    too_complex = mimelimits.check(data)
    if too_complex:
        # Its text cannot be read within bounds, so no content rule can clear it.
        return chain.decide(post, (rules.Loop(), rules.TooComplex(too_complex)))
    return chain.decide(post)


def _authenticated(app, message, data: bytes) -> tuple[inbound.Results, bytes, bool]:
    """DKIM/SPF/DMARC/ARC of the post (DNS: never inside a store transaction) and the post
    with our Authentication-Results on top."""
    auth, data = inbound.authenticate(app, data=data, client_ip=message.client_ip,
                                      helo=message.client_helo, mail_from=message.mail_from,
                                      queue_id=message.queue_id)
    return auth, data, local_submission(app.config, message.client_ip)


def prepare_post(app, target: str, message, data: bytes) -> chain.Decision | None:
    """Check the sender, parse the post and run the list's rules, with no store transaction
    open: DNS, a slow pattern or a large post never holds the write lock that SMTP ingress
    waits for."""
    with app.store.session() as s:
        mlist = read_list(s, target)
    if mlist is None:
        return None
    auth, data, local = _authenticated(app, message, data)

    def member(address: str) -> bool:
        with app.store.session() as s:
            return may_post(s, mlist, address)
    return _decide(app, mlist, data, message.mail_from, member, auth, local)


def handle_post(app, s, task, message, data: bytes,
                decision: chain.Decision | None = None) -> None:
    mlist = read_list(s, task.target)
    if mlist is None:
        log.warning("%s post to unknown list %r dropped", message.queue_id, task.target)
        return
    if decision is None:
        auth, data, local = _authenticated(app, message, data)
        decision = _decide(app, mlist, data, message.mail_from,
                           lambda a: may_post(s, mlist, a), auth, local)
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
