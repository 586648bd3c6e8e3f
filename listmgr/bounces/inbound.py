"""The pipeline handler for the bounce addresses: owner-LIST@, owner-LIST+member=domain@
(VERP) and abuse@.

Feedback reports unsubscribe the complaining member and tell the owners; bounces score
the members they name (the VERP address names one exactly; otherwise flufl.bounce reads the
failed addresses out of the bounce); auto-replies are dropped; a bounce that names no
member goes to the owners once, with the reason; mail from a person goes to the owners as
mail to owner-LIST@ always did.
"""

from __future__ import annotations

import logging

from listmgr.app import App
from listmgr.bounces import detect, processor, scores
from listmgr.listconfig import bounce_base
from listmgr.mail import verp
from listmgr.forward.worker import forward, list_owners
from listmgr.posting import notices
from listmgr.store.lists import owners_of
from listmgr.store.models import InboundMessage, InboundTask
from listmgr.store.settings import ListSettings, read_list

log = logging.getLogger(__name__)


def _unrecognised(app: App, s, mlist: ListSettings, data: bytes, reason: str,
                  queue_id: str) -> None:
    log.info("%s list=%s bounce not recognised (%s): sent to the owners", queue_id,
             mlist.name, reason)
    notices.send(app, s, mlist=mlist, to=owners_of(mlist),
                 template="bounces/owner_unrecognised.txt", mail_from="", attach=data,
                 reason=reason)


def _feedback(app: App, s, mlist: ListSettings | None, v: detect.Verdict,
              verp_member: str | None, message: InboundMessage, data: bytes) -> None:
    if v.feedback_list and (mlist is None or v.feedback_list != mlist.name):
        mlist = read_list(s, v.feedback_list) or mlist
    who = list(v.complainants)
    if verp_member and verp_member not in who:
        who.insert(0, verp_member)
    acted = []
    if mlist is not None:
        for addr in who:
            m = processor.find_member(s, mlist, addr)
            if m is None:
                continue
            acted.append(m.address)
            log.info("%s list=%s member=<%s> feedback report (%s): unsubscribed",
                     message.queue_id, mlist.name, m.address, v.feedback_type)
            notices.send(app, s, mlist=mlist, to=owners_of(mlist),
                         template="bounces/owner_feedback.txt", mail_from="", attach=data,
                         member=m.address, action="unsubscribed",
                         feedback_type=v.feedback_type,
                         reporter=message.mail_from)
            processor.remove(s, m)
    if acted:
        return
    if mlist is not None:
        _unrecognised(app, s, mlist, data, "a feedback report that names no member",
                      message.queue_id)
    else:
        forward(app, s, message, data, list(app.config.site_admins), "abuse")


def handle_bounce(app: App, s, task: InboundTask, message: InboundMessage,
                  data: bytes) -> None:
    mlist = read_list(s, task.target) if task.target else None
    local = task.rcpt.rpartition("@")[0]
    hit = verp.decode(local) if "+" in local else None
    verp_member = hit[1] if hit and mlist is not None and hit[0] == mlist.name else None
    base, plus, folded = local.partition("+")
    if verp_member is None and plus and mlist is not None \
            and base.lower() == bounce_base(mlist):
        verp_member = verp.decode_member(folded)  # the list's own sender as VERP base
    v = detect.classify(message.mail_from, data, app.config.domain)
    if v.kind == detect.FEEDBACK:
        _feedback(app, s, mlist, v, verp_member, message, data)
        return
    if v.kind == detect.AUTO_REPLY:
        log.info("%s to=<%s> auto-reply dropped", message.queue_id, task.rcpt)
        return
    if mlist is None:
        if task.target:  # the list was deleted since RCPT
            forward(app, s, message, data, list(app.config.site_admins), "owner:" + task.target)
        else:  # abuse@ without a feedback report: a person
            forward(app, s, message, data, list(app.config.site_admins), "abuse")
        return
    if v.kind == detect.PERSON:
        if verp_member:
            _unrecognised(app, s, mlist, data, f"mail to {verp_member}'s bounce address that "
                          "is not a bounce", message.queue_id)
        else:
            forward(app, s, message, data, list_owners(s, mlist.name), f"owner:{mlist.name}")
        return
    if v.kind == detect.TOO_BIG:
        _unrecognised(app, s, mlist, data, v.reason, message.queue_id)
        return
    if verp_member:
        weight = scores.SOFT if v.temporary and not v.permanent else scores.HARD
        outcome = processor.record(app, s, mlist, verp_member, weight, v.reason)
        log.info("%s list=%s member=<%s> VERP bounce: %s", message.queue_id, mlist.name,
                 verp_member, outcome)
        return
    matched = 0
    for addrs, weight in ((v.permanent, scores.HARD), (v.temporary, scores.SOFT)):
        for addr in addrs:
            if processor.record(app, s, mlist, addr, weight, v.reason) != "not-member":
                matched += 1
    if not matched:
        found = ", ".join(v.permanent + v.temporary)
        _unrecognised(app, s, mlist, data, f"it names no member of the list ({found})"
                      if found else v.reason, message.queue_id)
