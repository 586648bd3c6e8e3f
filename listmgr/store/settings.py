"""A list's settings as a plain frozen value, read from the store.

Posting, commands and bounce handling read a list through `ListSettings`, never through
the live ORM row: a value cannot change under them or be written back by accident. A
change goes through an explicit write function here (or store.lists.set_setting).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from listmgr.mail.addresses import address_list
from listmgr.store.models import MailingList


class ListError(Exception):
    """A list operation that cannot be done; the message is for the user."""


class NoSuchList(ListError):
    pass


@dataclass(frozen=True, slots=True)
class ListSettings:
    """Every column of a list, typed; `owners` as a tuple of addresses."""

    id: int
    name: str
    description: str
    owners: tuple[str, ...]
    admin_passwd_hash: str
    approve_passwd_hash: str
    subscribe_policy: str
    unsubscribe_policy: str
    post_policy: str
    nonmember_action: str
    who_access: str
    which_access: str
    info_access: str
    intro_access: str
    index_access: str
    get_access: str
    advertise: str
    noadvertise: str
    announcements: bool
    welcome: bool
    strip: bool
    administrivia: bool
    subject_prefix: str
    reply_to: str
    precedence: str
    maxlength: int | None
    message_footer: str
    message_fronter: str
    message_headers: str
    moderator: str
    taboo_headers: str
    taboo_body: str
    purge_received: bool
    hold_expiry: int
    language: str
    comments: str
    info: str
    intro: str
    date_info: bool
    date_intro: bool
    info_updated_at: dt.datetime | None
    intro_updated_at: dt.datetime | None
    post_sequence: int
    verp: str
    bounce_score_threshold: float
    bounce_warnings: int
    bounce_warning_interval: int
    bounce_info_stale_after: int
    maxlength_counts: str
    restrict_post: str
    restrict_post_reply_to: bool
    sender: str
    resend_host: str
    mungedomain: bool
    debug: bool
    archive_dir: str
    digest_archive: str
    digest_work_dir: str
    digest_name: str
    digest_volume: int
    digest_issue: int
    digest_maxlines: int | None
    digest_maxdays: int | None
    digest_rm_footer: str
    digest_rm_fronter: str
    digest_format: str
    dmarc_mitigation: str
    dmarc_when: str
    require_auth: bool
    created_at: dt.datetime


# A list as store functions take it: the frozen value, or the row (web and cli edit rows).
ListRef = MailingList | ListSettings


_FIELDS = tuple(f.name for f in dataclasses.fields(ListSettings))


def settings_of(row: MailingList) -> ListSettings:
    """The frozen value of one ORM row."""
    values = {name: getattr(row, name) for name in _FIELDS}
    values["owners"] = tuple(address_list(row.owners))
    return ListSettings(**values)


def read_list(s: Session, name: str) -> ListSettings | None:
    """The list called `name` (any case), or None."""
    row = s.scalars(select(MailingList).where(MailingList.name == name.lower())).first()
    return settings_of(row) if row is not None else None


def require_settings(s: Session, name: str) -> ListSettings:
    """read_list, or NoSuchList."""
    mlist = read_list(s, name)
    if mlist is None:
        raise NoSuchList(f"no list named '{name}'")
    return mlist


def read_list_by_id(s: Session, list_id: int) -> ListSettings | None:
    row = s.get(MailingList, list_id)
    return settings_of(row) if row is not None else None


def read_all_lists(s: Session) -> list[ListSettings]:
    """Every list, by name."""
    return [settings_of(r) for r in s.scalars(select(MailingList).order_by(MailingList.name))]


def list_exists(s: Session, name: str) -> bool:
    return s.scalar(select(MailingList.id).where(MailingList.name == name.lower())) is not None


# ---------------------------------------------------------------------------- writes

def row_of(s: Session, mlist: ListSettings) -> MailingList:
    """The row behind a value, from the session's identity map when it is loaded."""
    row = s.get(MailingList, mlist.id)
    if row is None:
        raise LookupError(f"list '{mlist.name}' is gone")
    return row


def take_post_sequence(s: Session, mlist: ListSettings) -> int:
    """Atomically take the list's next post number."""
    row = row_of(s, mlist)
    s.execute(update(MailingList).where(MailingList.id == mlist.id).values(
        post_sequence=MailingList.post_sequence + 1))
    s.refresh(row, ["post_sequence"])
    return row.post_sequence


def set_digest_issue(s: Session, mlist: ListSettings, issue: int) -> None:
    row_of(s, mlist).digest_issue = issue


def set_admin_password(s: Session, mlist: ListSettings, hashed: str, *,
                       approve_too: bool) -> None:
    """The admin password (already hashed); the approve password too if `approve_too`."""
    row = row_of(s, mlist)
    row.admin_passwd_hash = hashed
    if approve_too:
        row.approve_passwd_hash = hashed


def set_list_text(s: Session, mlist: ListSettings, what: str, text: str,
                  updated_at: dt.datetime | None) -> None:
    """The list's `info` or `intro` text and when it was changed."""
    if what not in ("info", "intro"):
        raise ValueError(what)
    row = row_of(s, mlist)
    setattr(row, what, text)
    setattr(row, f"{what}_updated_at", updated_at)
