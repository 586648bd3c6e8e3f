"""The state one command mail is processed with: who asks, the transcript, the store.

`Context` gives command modules what Majordomo's globals gave its do_* routines: the
requester, the default list (`-l` mode at LIST-request@), per-line `approved`, password
checks, access checks, and the texts in the reply's language.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from listmgr.commands import passguard, texts
from listmgr.commands.results import Transcript
from listmgr.listconfig import valid_list_name
from listmgr.mail.addresses import AddressError, normalise, parse_single
from listmgr.passwords import verify_password
from listmgr.store import lists as repo
from listmgr.store.db import Session
from listmgr.store.models import SiteSetting
from listmgr.store.settings import ListSettings, read_list

if TYPE_CHECKING:
    from listmgr.app import App

log = logging.getLogger(__name__)

SITE_PASSWORD_KEY = "site_password_hash"


@dataclass(frozen=True)
class Request:
    """Who sent the command mail and what it answers."""

    requester: str            # Reply-To, else From (raw; Majordomo's $reply_to)
    address: str              # the requester's bare address: where the reply goes
    identities: tuple[str, ...]  # normalised From and Reply-To addresses
    subject: str = ""
    message_id: str = ""
    references: str = ""
    mail_from: str = ""
    default_list: str = ""    # LIST for LIST-request@, "" for majordomo@
    charset: str = ""         # the request's text charset (iso-2022-jp: answer in it)


@dataclass
class Context:
    app: "App"
    s: Session
    req: Request
    lang: str
    out: Transcript = field(default_factory=Transcript)
    approved: bool = False     # this line came through `approve PASSWD ...`
    confirmed: bool = False    # this line came with a valid auth key
    key_error: str = ""        # why an auth key was refused ("" = none given / fine)
    auth_key: str = ""         # the key of an `auth` / `accept` line being run
    aborted: bool = False
    password_failures: int = 0  # failed password checks in this mail (passguard.py)

    # ---------------------------------------------------------------- identity
    @property
    def domain(self) -> str:
        return self.app.config.domain

    @property
    def whoami(self) -> str:
        return f"majordomo@{self.domain}"

    @property
    def whoami_owner(self) -> str:
        return f"majordomo-owner@{self.domain}"

    def approval_address(self, list_name: str) -> str:
        return f"{list_name}-approval@{self.domain}"

    # ---------------------------------------------------------------- output
    def t(self, name: str, **kw) -> str:
        return texts.msg(self.lang, name, **kw)

    def say(self, name: str, **kw) -> None:
        self.out.say(self.t(name, **kw))

    def squawk(self, name: str, **kw) -> None:
        self.out.squawk(self.t(name, **kw))

    def list_lang(self, mlist: ListSettings | None) -> str:
        if mlist is not None and mlist.language:
            return mlist.language
        return self.app.config.language

    # ---------------------------------------------------------------- lists
    def find_list(self, raw: str | None) -> ListSettings | None:
        """Majordomo's valid_list: <...> and a trailing @host are ignored; case-folded;
        full-width letters (ｄｅｍｏ) read as their ASCII forms, as command words are."""
        if not raw:
            return None
        name = unicodedata.normalize("NFKC", raw).strip()
        if name.startswith("<") and name.endswith(">"):
            name = name[1:-1]
        name = name.split("@", 1)[0]
        if not valid_list_name(name):
            return None
        mlist = read_list(self.s, name)
        if mlist is None and name.lower().endswith("-digest"):
            # Majordomo's digest list LIST-digest is LIST in digest mode here.
            mlist = read_list(self.s, name[:-7])
        return mlist

    def get_listname(self, cmd: str, required: int, args: list[str]
                     ) -> tuple[str, ListSettings | None, list[str]]:
        """Majordomo's get_listname: (raw name, list or None, remaining args)."""
        args = list(args)
        default = self.req.default_list
        if default:
            if len(args) <= required:
                mlist = self.find_list(default)
                if mlist is not None:
                    return default, mlist, args
                raw = args.pop(0) if args else ""
                if not raw:
                    self.squawk("which_list", cmd=cmd)
                return raw, self.find_list(raw), args
            raw = args.pop(0)
            mlist = self.find_list(raw)
            if mlist is None:
                args.insert(0, raw)
                raw = default
                mlist = self.find_list(raw)
            return raw, mlist, args
        raw = args.pop(0) if args else ""
        return raw, self.find_list(raw), args

    def succeeded(self, mlist: ListSettings, direction: str, *, quiet_all: bool = False) -> None:
        if self.req.default_list:
            self.say("succeeded_to" if direction == "to" else "succeeded_from",
                     list=self.req.default_list)
        elif quiet_all:
            self.say("succeeded_from", list=mlist.name)
        else:
            self.say("succeeded")

    # ---------------------------------------------------------------- checks
    def password_ok(self, mlist: ListSettings, password: str | None) -> bool:
        """The list's admin password, or the site password; constant-time (argon2).

        Guessing is bounded (passguard.py): after a failed check in this mail, or too many
        for this list or requester this hour, the answer is False without a check."""
        if not password:
            return False
        if self._password_refused(mlist.name):
            return False
        if verify_password(mlist.admin_passwd_hash, password):
            return True
        if self._site_password_matches(password):
            return True
        self._password_failed(mlist.name, mlist)
        return False

    def site_password_ok(self, password: str | None) -> bool:
        if not password:
            return False
        if self._password_refused(passguard.SITE):
            return False
        if self._site_password_matches(password):
            return True
        self._password_failed(passguard.SITE, None)
        return False

    def _site_password_matches(self, password: str) -> bool:
        row = self.s.get(SiteSetting, SITE_PASSWORD_KEY)
        return verify_password(row.value if row else "", password)

    def _password_refused(self, target: str) -> bool:
        return self.password_failures > 0 or \
            passguard.blocked(self.s, target, self.req.address)

    def _password_failed(self, target: str, mlist: ListSettings | None) -> None:
        self.password_failures += 1
        if not passguard.failed(self.s, target, self.req.address):
            return
        from listmgr.commands import outgoing
        owners = repo.owners_of(mlist) if mlist is not None \
            else list(self.app.config.site_admins)
        lang = self.list_lang(mlist)
        name = mlist.name if mlist is not None else ""
        body = texts.text("password_guessing", lang, list=name, requester=self.req.address,
                          failures=passguard.MAX_FAILURES, whoami=self.whoami)
        outgoing.send(self, to=owners, subject=texts.msg(lang, "subject_password_guessing",
                                                         list=name or "site"), body=body)

    def is_self(self, address: str) -> bool:
        """Every identity the mail claims (From, Reply-To) is this address."""
        try:
            key = normalise(parse_single(address))
        except AddressError:
            return False
        return bool(self.req.identities) and all(i == key for i in self.req.identities)

    def is_member(self, mlist: ListSettings, address: str | None = None) -> bool:
        addr = address or self.req.address
        return repo.is_member(self.s, mlist, addr)

    def access(self, op: str, mlist: ListSettings) -> bool:
        """`*_access`: open = anyone, list = members only, closed = nobody."""
        mode = getattr(mlist, f"{op}_access", "open")
        if mode == "open":
            return True
        if mode == "closed":
            return False
        if mlist.restrict_post.strip():  # Majordomo: the restrict_post lists decide
            return repo.may_post(self.s, mlist, self.req.address)
        if self.is_member(mlist):
            return True
        # A digest list and its main list share membership (Majordomo's access_check).
        twin = mlist.name[:-7] if mlist.name.endswith("-digest") else mlist.name + "-digest"
        other = read_list(self.s, twin) if valid_list_name(twin) else None
        return other is not None and self.is_member(other)


_LISTSERV = re.compile(r"[!%@:]")


def looks_like_real_name(text: str) -> bool:
    """Majordomo's LISTSERV-style check: whitespace and no routing characters."""
    return bool(re.search(r"\s", text.strip())) and not _LISTSERV.search(text)
