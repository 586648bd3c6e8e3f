"""Which addresses this server receives mail for, judged exactly as RCPT judges them.

`is_ours` answers for one address (the socketmap server asks it per lookup); `all_addresses`
lists every address at every local domain (for `listmgr postfix-maps`, a file to `postmap`).
"""

from __future__ import annotations

from collections.abc import Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from listmgr.smtp.handler import StoreDirectory
from listmgr.smtp.routing import Destination, route
from listmgr.store.models import MailboxUser, MailingList

# Addresses every site has, lists or not (routing.route_local).
SITE_LOCAL_PARTS = ("majordomo", "majordomo-owner", "postmaster")
# The addresses a list named L answers to: L, L-request, L-owner, L-approval, owner-L.
LIST_FORMS = ("{}", "{}-request", "{}-owner", "{}-approval", "owner-{}")


def is_ours(s: Session, address: str, local_domains: tuple[str, ...]) -> bool:
    """True when RCPT TO:<address> would be accepted for local delivery here."""
    dest = route(address, local_domains, StoreDirectory(s))
    return isinstance(dest, Destination) and dest.kind != "relay"


def all_addresses(s: Session, local_domains: tuple[str, ...]) -> Iterator[str]:
    """Every address at every local domain that mail is accepted for, domain by domain."""
    lists = list(s.scalars(select(MailingList.name).order_by(MailingList.name)))
    users = list(s.scalars(select(MailboxUser.name).order_by(MailboxUser.name)))
    for domain in local_domains:
        for local in SITE_LOCAL_PARTS:
            yield f"{local}@{domain}"
        for name in lists:
            for form in LIST_FORMS:
                yield f"{form.format(name)}@{domain}"
        for name in users:
            yield f"{name}@{domain}"
