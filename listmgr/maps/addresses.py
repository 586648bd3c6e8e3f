"""Which addresses this server receives mail for, judged exactly as RCPT judges them.

`is_ours` answers for one address (the socketmap server asks it per lookup); `all_addresses`
lists every address at every local domain (for `listmgr postfix-maps`, a file to `postmap`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from listmgr.smtp.routing import Destination, route
from listmgr.store.lists import all_lists, get_list, list_of_sender
from listmgr.store.mailboxes import all_users, user_exists

# Addresses every site has, lists or not (routing.route_local).
SITE_LOCAL_PARTS = ("majordomo", "majordomo-owner", "postmaster")
# The addresses a list named L answers to: L, L-request, L-owner, L-approval, owner-L.
LIST_FORMS = ("{}", "{}-request", "{}-owner", "{}-approval", "owner-{}")


class StoreDirectory:
    """routing.Directory over a store session (`s`: a SQLAlchemy session)."""

    def __init__(self, s: Any):
        self.s = s

    def has_list(self, name: str) -> bool:
        return get_list(self.s, name) is not None

    def has_user(self, name: str) -> bool:
        return user_exists(self.s, name)

    def list_of_sender(self, local: str) -> str | None:
        return list_of_sender(self.s, local)


def is_ours(s: Any, address: str, local_domains: tuple[str, ...]) -> bool:
    """True when RCPT TO:<address> would be accepted for local delivery here (the same
    routing.route the SMTP listener runs at RCPT)."""
    dest = route(address, local_domains, StoreDirectory(s))
    return isinstance(dest, Destination) and dest.kind != "relay"


def all_addresses(s: Any, local_domains: tuple[str, ...]) -> Iterator[str]:
    """Every address at every local domain that mail is accepted for, domain by domain."""
    lists = sorted(m.name for m in all_lists(s))
    users = sorted(u.name for u in all_users(s))
    for domain in local_domains:
        for local in SITE_LOCAL_PARTS:
            yield f"{local}@{domain}"
        for name in lists:
            for form in LIST_FORMS:
                yield f"{form.format(name)}@{domain}"
        for name in users:
            yield f"{name}@{domain}"
