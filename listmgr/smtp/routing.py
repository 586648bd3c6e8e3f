"""Recipient routing: an RCPT address -> where the message goes, or why it is refused.

Pure: the lists and mailbox users are looked up through a `Directory` the caller provides.
The address is judged as the server parsed it (aiosmtpd has already dropped source routes
and needless quotes). For a local domain only plain local parts are routed: `%` hacks, bang
paths and quoted local parts are attempts to route through us and are refused, never
re-parsed (they would otherwise open a relay behind the gate's back).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from listmgr.mail.addresses import MAX_ADDRESS

# Local parts we route: what list names and mailbox user names are made of.
_PLAIN_LOCAL = re.compile(r"^[a-z0-9](?:[a-z0-9._+-]{0,62}[a-z0-9_])?$")
# Characters that mean "route this further" in some MTA's eyes (RFC 5321 3.6, sendmail).
_ROUTING = set('%!@":\\[]<>,;() \t')

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_REMOTE_DOMAIN = re.compile(rf"^(?:{_LABEL}(?:\.{_LABEL})*|\[[0-9a-f:.]+\]|\[ipv6:[0-9a-f:.]+\])$")

KINDS = ("command", "post", "owner", "approval", "admins", "local", "relay", "bounce")


@dataclass(frozen=True)
class Destination:
    """kind: one of KINDS; target: list name, mailbox user, or the remote address."""

    kind: str
    target: str


@dataclass(frozen=True)
class Refusal:
    """An RCPT we refuse; `reply` is the complete SMTP reply line."""

    reply: str


class Directory(Protocol):
    def has_list(self, name: str) -> bool: ...
    def has_user(self, name: str) -> bool: ...
    def list_of_sender(self, local: str) -> str | None: ...


def user_unknown(address: str) -> Refusal:
    return Refusal(f"550 5.1.1 <{address}>... User unknown")


def relaying_denied(address: str) -> Refusal:
    return Refusal(f"550 5.7.1 <{address}>... Relaying denied")


def split_address(address: str) -> tuple[str, str]:
    """(local part, domain) with the domain lower case and without a trailing dot.

    The split is at the last `@` outside quotes, so `"a@b"@host` gives `"a@b"`, `host`.
    """
    local, at, domain = address.rpartition("@")
    if not at:
        return address, ""
    if local.count('"') % 2:  # the `@` was inside a quoted string: no domain
        return address, ""
    return local, domain.lower().rstrip(".")


def is_local_domain(domain: str, local_domains: tuple[str, ...]) -> bool:
    """Exact match only: `sub.example.org`, `example.org.evil` and IP literals are remote."""
    return domain in local_domains


def route(address: str, local_domains: tuple[str, ...], directory: Directory
          ) -> Destination | Refusal:
    """Where mail for `address` goes. Remote addresses come back as kind "relay": the caller
    still has to ask the relay gate."""
    if not address or len(address) > MAX_ADDRESS or any(ord(c) < 32 or ord(c) == 127
                                                for c in address):
        return Refusal("553 5.1.3 Bad address syntax")  # not echoed: control characters
    local, domain = split_address(address)
    if domain == "" and "@" not in address and local.lower() == "postmaster":
        return Destination("admins", "")  # RFC 5321 4.5.1: "postmaster" with no domain
    if domain == "":
        # A bare local part (or one whose `@` is quoted) is routing by another name.
        return relaying_denied(address) if set(local) & _ROUTING else \
            Refusal(f"553 5.1.3 <{address}>... Domain name required")
    if not is_local_domain(domain, local_domains):
        if not _REMOTE_DOMAIN.match(domain) or any(c in address for c in " <>"):
            return Refusal(f"553 5.1.3 <{address}>... Bad address syntax")
        return Destination("relay", address)
    return route_local(address, local.lower(), directory)


def _bounce_address(local: str, directory: Directory) -> Destination | None:
    """owner-LIST@ (the envelope sender of posts) and owner-LIST+member=domain@ (VERP) go to
    the bounce processor; the `+` part is only ever decoded, never routed anywhere."""
    if not local.startswith("owner-"):
        return None
    name, plus, rest = local[len("owner-"):].partition("+")
    if plus and (not rest or len(local) > 254):
        return None
    if name and _PLAIN_LOCAL.match(name) and directory.has_list(name):
        return Destination("bounce", name)
    return None


def _sender_bounce(local: str, directory: Directory) -> Destination | None:
    """SENDER@ and SENDER+member=domain@ of a list whose `sender` is not owner-LIST: its
    bounces, as owner-LIST's. Asked only of addresses nothing else here claims."""
    base, plus, rest = local.partition("+")
    if (plus and not rest) or len(local) > 254 or not _PLAIN_LOCAL.match(base):
        return None
    finder = getattr(directory, "list_of_sender", None)  # test directories may lack it
    name = finder(base) if finder is not None else None
    return Destination("bounce", name) if name else None


def route_local(address: str, local: str, directory: Directory) -> Destination | Refusal:
    """A local part at one of our domains -> its destination."""
    dest = _bounce_address(local, directory)
    if dest is None and "+" in local:
        dest = _sender_bounce(local, directory)
    if dest is not None:
        return dest
    if set(local) & _ROUTING:
        return relaying_denied(address)
    if not _PLAIN_LOCAL.match(local):
        return user_unknown(address)
    if local == "majordomo":
        return Destination("command", "")
    if local in ("majordomo-owner", "postmaster"):
        return Destination("admins", "")
    if directory.has_list(local):
        return Destination("post", local)
    if local.endswith("-digest") and directory.has_list(local[:-7]):
        return Destination("post", local[:-7])  # Majordomo's digest list is LIST in digest mode
    for suffix, kind in (("-request", "command"), ("-owner", "owner"),
                         ("-approval", "approval")):
        if local.endswith(suffix):
            name = local[: -len(suffix)]
            if name and directory.has_list(name):
                return Destination(kind, name)
            if name.endswith("-digest") and directory.has_list(name[:-7]):
                # LIST-digest-request: commands name LIST-digest (digest mode)
                return Destination(kind, name if kind == "command" else name[:-7])
    name = local[len("owner-"):] if local.startswith("owner-") else ""
    if name.endswith("-digest") and directory.has_list(name[:-7]):
        return Destination("bounce", name[:-7])  # owner-LIST-digest@: the list's bounces
    if directory.has_user(local):
        return Destination("local", local)
    if local == "abuse":  # feedback loops report here (RFC 2142); people get the admins
        return Destination("bounce", "")
    return _sender_bounce(local, directory) or user_unknown(address)


class _Questions:
    """A Directory that knows no name and notes the names it is asked about."""

    def __init__(self) -> None:
        self.lists: list[str] = []
        self.users: list[str] = []

    def has_list(self, name: str) -> bool:
        self.lists.append(name)
        return False

    def has_user(self, name: str) -> bool:
        self.users.append(name)
        return False

    def list_of_sender(self, local: str) -> str | None:
        return None


def questions(address: str, local_domains: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The list names and user names `route(address, ...)` may ask its Directory about, so
    that a caller can look them all up at once. With every answer "no", `route` walks its
    longest path and asks every question; a "yes" only ever ends the walk early, so the
    names asked with any other answers are among these. (list_of_sender is not included.)"""
    asked = _Questions()
    route(address, local_domains, asked)
    return asked.lists, asked.users
