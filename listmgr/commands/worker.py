"""The inbound handler for kind "command": one command mail in, one reply out.

task.target is the default list for LIST-request@ ("" for majordomo@). The requester is
Reply-To, else From (Majordomo's rule: where the reply goes); both addresses are kept as
the mail's identities for the "is this their own address" test. Robots, loops and floods
get no reply (guard.py, and a per-requester rate limit in the store).
"""

from __future__ import annotations

import logging
from email.message import Message
from email.utils import getaddresses

from listmgr.auth import inbound
from listmgr.commands import dispatch, guard, outgoing, parser, registry
from listmgr.commands.context import Context, Request
from listmgr.mail.addresses import validate_address
from listmgr.listconfig import valid_list_name
from listmgr.mail import mimelimits
from listmgr.mail.addresses import AddressError, normalise, parse_single
from listmgr.store.settings import list_exists, read_list

log = logging.getLogger(__name__)


def _header(msg: Message, name: str) -> str:
    try:
        value = msg.get(name)
        return " ".join(str(value).split()) if value is not None else ""
    except Exception:
        return ""


def _first_address(value: str) -> str:
    if not value:
        return ""
    try:
        return parse_single(value)
    except AddressError:
        pass
    try:
        for _name, addr in getaddresses([value]):
            if addr:
                return parse_single(addr)
    except (AddressError, Exception):
        return ""
    return ""


def request_charset(msg: Message) -> str:
    """The charset the request was written in: its first text part's, else its Subject's."""
    try:
        for part in msg.walk():
            if part.get_content_maintype() == "text":
                cs = part.get_content_charset()
                if cs:
                    return cs.lower()
                break
        raw = str(msg.get("Subject", "") or "")
    except Exception:
        return ""
    return "iso-2022-jp" if "=?iso-2022-jp?" in raw.lower() else ""


def request_of(msg: Message, *, mail_from: str, default_list: str) -> Request | None:
    """Who asks; None when no usable requester address is present."""
    reply_to = _header(msg, "Reply-To")
    from_ = _header(msg, "From")
    requester = reply_to or from_ or _header(msg, "Apparently-From")
    address = _first_address(requester)
    if not address or not validate_address(address):
        # No usable address in the headers (a whole `Name <addr>` inside one RFC 2047
        # encoded word, a quoted local part with spaces): answer the envelope sender.
        address = _first_address(mail_from) if mail_from else ""
        if not address or not validate_address(address):
            return None
        requester = address
    identities = tuple(dict.fromkeys(
        normalise(a) for a in (_first_address(from_), _first_address(reply_to)) if a))
    return Request(requester=requester, address=address, identities=identities or
                   (normalise(address),), subject=_header(msg, "Subject"),
                   message_id=_header(msg, "Message-ID"),
                   references=_header(msg, "References"),
                   mail_from=mail_from, default_list=default_list,
                   charset=request_charset(msg))


def reply_language(ctx: Context, default, lines) -> str:
    """The language of the reply: LIST-request@'s list's; for majordomo@, the language of
    the lists the commands name when they all share one; else the site's."""
    site = ctx.app.config.language
    if default is not None:
        return default.language or site
    found = set()
    for ln in lines:
        if ln.kind != "command" or not ln.args:
            continue
        # approve PASSWD CMD LIST ..., auth KEY CMD LIST ...: the list is the third word
        arg = ln.args[2] if ln.name in ("approve", "auth") and len(ln.args) > 2 \
            else ln.args[0]
        mlist = ctx.find_list(arg)
        if mlist is not None:
            found.add(mlist.language or site)
    return found.pop() if len(found) == 1 else site


def process(app, s, *, data: bytes, mail_from: str, default_list: str = "") -> Context | None:
    """Process one command mail in session `s`; returns the context (None: no reply)."""
    too_complex = mimelimits.check(data)
    if too_complex:
        # Ingress refuses these before 250; one stored earlier is not parsed at all.
        log.warning("command mail from <%s>: %s; not read, no reply", mail_from, too_complex)
        return None
    msg = parser.parse_message(data)
    req = request_of(msg, mail_from=mail_from, default_list=default_list)
    if req is None:
        log.info("command mail from <%s>: no valid requester address; no reply", mail_from)
        return None
    why = guard.refusal(msg, mail_from=mail_from, requester=req.address,
                        domain=app.config.domain)
    if why is None and guard.is_service_address(
            req.address, local_domains=app.config.local_domains,
            has_list=lambda name: valid_list_name(name) and list_exists(s, name)):
        why = "requester is one of our own addresses"
    if why:
        log.info("command mail from <%s> requester=<%s>: %s; no reply", mail_from,
                 req.address, why)
        return None
    if not outgoing.rate_ok_requester(app, s, req.address):
        log.warning("command mail requester=<%s>: more than %d replies this hour; dropped",
                    req.address, app.config.commands.replies_per_hour)
        return None
    default = read_list(s, default_list) if default_list else None
    body = parser.body_of(msg)
    lines = parser.parse(body.text, multipart=body.multipart, known=registry.known(),
                         data_commands=registry.DATA_COMMANDS,
                         max_commands=app.config.commands.max_commands)
    ctx = Context(app=app, s=s, req=req, lang=app.config.language)
    ctx.lang = reply_language(ctx, default, lines)
    dispatch.run(ctx, lines)
    outgoing.send(ctx, to=req.address, subject=outgoing.results_subject(ctx),
                  body=ctx.out.text(), reply=True, origin="reply")
    return ctx


def prepare_command(app, target: str, message, data: bytes) -> bytes:
    """DKIM/SPF/DMARC of the command mail, before the transaction (DNS): one `auth` log
    line per message, and the mail with our Authentication-Results. The commands
    themselves stay protected by passwords and confirmation keys."""
    _auth, data = inbound.authenticate(app, data=data, client_ip=message.client_ip,
                                       helo=message.client_helo, mail_from=message.mail_from,
                                       queue_id=message.queue_id)
    return data


def handle_command(app, session, task, message, data: bytes,
                   checked: bytes | None = None) -> None:
    if checked is None:
        checked = prepare_command(app, task.target, message, data)
    process(app, session, data=checked, mail_from=message.mail_from,
            default_list=task.target or "")


handle_command.prepare = prepare_command  # type: ignore[attr-defined]  # run by the pipeline
