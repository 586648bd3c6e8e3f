"""SQLAlchemy 2 typed models: the whole schema in one place.

Every change here needs an alembic revision in migrations/versions (tests/test_migrations.py
proves the two agree).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from listmgr import clock

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


def utcnow() -> dt.datetime:
    """Naive UTC from listmgr.clock: every timestamp in the store is naive UTC."""
    return clock.now()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dt.datetime: DateTime(),
    }


# --------------------------------------------------------------------------- lists

class MailingList(Base):
    """A list and its settings; names follow listmgr.lists.settings.SETTINGS."""

    __tablename__ = "lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # lower case
    description: Mapped[str] = mapped_column(Text, default="")
    owners: Mapped[str] = mapped_column(Text, default="")  # one address a line
    admin_passwd_hash: Mapped[str] = mapped_column(String(255), default="")
    approve_passwd_hash: Mapped[str] = mapped_column(String(255), default="")
    subscribe_policy: Mapped[str] = mapped_column(String(20), default="open+confirm")
    unsubscribe_policy: Mapped[str] = mapped_column(String(20), default="open")
    post_policy: Mapped[str] = mapped_column(String(20), default="members")
    nonmember_action: Mapped[str] = mapped_column(String(10), default="hold")
    who_access: Mapped[str] = mapped_column(String(10), default="open")
    which_access: Mapped[str] = mapped_column(String(10), default="open")
    info_access: Mapped[str] = mapped_column(String(10), default="open")
    intro_access: Mapped[str] = mapped_column(String(10), default="list")
    index_access: Mapped[str] = mapped_column(String(10), default="open")
    get_access: Mapped[str] = mapped_column(String(10), default="list")
    advertise: Mapped[str] = mapped_column(Text, default="")  # regexps, one a line
    noadvertise: Mapped[str] = mapped_column(Text, default="")
    announcements: Mapped[bool] = mapped_column(Boolean, default=True)
    welcome: Mapped[bool] = mapped_column(Boolean, default=True)
    strip: Mapped[bool] = mapped_column(Boolean, default=True)
    administrivia: Mapped[bool] = mapped_column(Boolean, default=True)
    subject_prefix: Mapped[str] = mapped_column(String(255), default="")
    reply_to: Mapped[str] = mapped_column(String(255), default="")
    precedence: Mapped[str] = mapped_column(String(32), default="bulk")
    maxlength: Mapped[int | None] = mapped_column(Integer, nullable=True)
    message_footer: Mapped[str] = mapped_column(Text, default="")
    message_fronter: Mapped[str] = mapped_column(Text, default="")
    message_headers: Mapped[str] = mapped_column(Text, default="")
    moderator: Mapped[str] = mapped_column(String(255), default="")
    taboo_headers: Mapped[str] = mapped_column(Text, default="")
    taboo_body: Mapped[str] = mapped_column(Text, default="")
    purge_received: Mapped[bool] = mapped_column(Boolean, default=False)
    hold_expiry: Mapped[int] = mapped_column(Integer, default=14 * 86400)  # seconds
    language: Mapped[str] = mapped_column(String(8), default="")  # "" = site language
    comments: Mapped[str] = mapped_column(Text, default="")
    info: Mapped[str] = mapped_column(Text, default="")
    intro: Mapped[str] = mapped_column(Text, default="")
    date_info: Mapped[bool] = mapped_column(Boolean, default=True)
    date_intro: Mapped[bool] = mapped_column(Boolean, default=True)
    info_updated_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    intro_updated_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    post_sequence: Mapped[int] = mapped_column(Integer, default=0)
    verp: Mapped[str] = mapped_column(String(8), default="on")  # off | probes | on
    bounce_score_threshold: Mapped[float] = mapped_column(Float, default=5.0)
    bounce_warnings: Mapped[int] = mapped_column(Integer, default=3)
    bounce_warning_interval: Mapped[int] = mapped_column(Integer, default=7 * 86400)  # s
    bounce_info_stale_after: Mapped[int] = mapped_column(Integer, default=7 * 86400)  # s
    # Majordomo keywords (listmgr.majordomo.configmap says which have an effect here).
    maxlength_counts: Mapped[str] = mapped_column(String(10), default="message")
    restrict_post: Mapped[str] = mapped_column(Text, default="")
    restrict_post_reply_to: Mapped[bool] = mapped_column(Boolean, default=False)
    sender: Mapped[str] = mapped_column(String(320), default="")
    resend_host: Mapped[str] = mapped_column(String(255), default="")
    mungedomain: Mapped[bool] = mapped_column(Boolean, default=False)
    debug: Mapped[bool] = mapped_column(Boolean, default=False)
    archive_dir: Mapped[str] = mapped_column(Text, default="")
    digest_archive: Mapped[str] = mapped_column(Text, default="")
    digest_work_dir: Mapped[str] = mapped_column(Text, default="")
    digest_name: Mapped[str] = mapped_column(String(255), default="")
    digest_volume: Mapped[int] = mapped_column(Integer, default=1)
    digest_issue: Mapped[int] = mapped_column(Integer, default=1)
    digest_maxlines: Mapped[int | None] = mapped_column(Integer, nullable=True)
    digest_maxdays: Mapped[int | None] = mapped_column(Integer, nullable=True)
    digest_rm_footer: Mapped[str] = mapped_column(String(64), default="")
    digest_rm_fronter: Mapped[str] = mapped_column(String(64), default="")
    digest_format: Mapped[str] = mapped_column(String(10), default="mime")
    dmarc_mitigation: Mapped[str] = mapped_column(String(16), default="munge_from")
    dmarc_when: Mapped[str] = mapped_column(String(16), default="quarantine")
    require_auth: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    members: Mapped[list["Member"]] = relationship(
        back_populates="mailing_list", cascade="all, delete-orphan", passive_deletes=True,
        lazy="raise")


class Member(Base):
    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("list_id", "key"),
        # Streams a list's roster in id order (fan-out, `members`) without sorting it:
        # with only (list_id, key) SQLite sorts the whole list for every batch.
        Index("ix_members_list_id_id", "list_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    address: Mapped[str] = mapped_column(String(320))  # as given (stripped per `strip`)
    key: Mapped[str] = mapped_column(String(320), index=True)  # normalised: lower case
    domain: Mapped[str] = mapped_column(String(255), default="")
    delivery_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    digest: Mapped[bool] = mapped_column(Boolean, default=False)  # posts come as digests
    subscribed_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Why delivery is off: "" (it is on), "bounces", "member" (set LIST nomail), "owner".
    disabled_reason: Mapped[str] = mapped_column(String(16), default="")
    disabled_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    bounce_score: Mapped[float] = mapped_column(Float, default=0.0)
    last_bounce_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    last_bounce_reason: Mapped[str] = mapped_column(Text, default="")
    warnings_sent: Mapped[int] = mapped_column(Integer, default=0)
    last_warning_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    mailing_list: Mapped[MailingList] = relationship(back_populates="members")


class DigestEntry(Base):
    """A post waiting for the list's next digest (the bytes members received)."""

    __tablename__ = "digest_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"),
                                         index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    lines: Mapped[int] = mapped_column(Integer, default=0)
    size: Mapped[int] = mapped_column(Integer, default=0)
    queued_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class SiteSetting(Base):
    """Site-wide values kept in the store: the site password hash, the token secret."""

    __tablename__ = "site_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


# --------------------------------------------------------------------------- mailboxes

class MailboxUser(Base):
    __tablename__ = "mailbox_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)  # lower case local part
    password_hash: Mapped[str] = mapped_column(String(255))
    autoreply_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    autoreply_subject: Mapped[str] = mapped_column(String(255), default="")
    autoreply_body: Mapped[str] = mapped_column(Text, default="")
    autoreply_start: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    autoreply_end: Mapped[dt.date | None] = mapped_column(Date, nullable=True)  # inclusive
    autoreply_interval_days: Mapped[int] = mapped_column(Integer, default=1,
                                                         server_default=text("1"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class RelayGrant(Base):
    """A successful POP3 login: lets `ip` relay until `expires_at` (POP-before-SMTP)."""

    __tablename__ = "relay_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ip: Mapped[str] = mapped_column(String(64), index=True)
    user: Mapped[str] = mapped_column(String(64))
    granted_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)


# --------------------------------------------------------------------------- inbound

class InboundMessage(Base):
    """A message accepted by SMTP/LMTP: its bytes are in the spool file, fsynced."""

    __tablename__ = "inbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), unique=True)
    spool_path: Mapped[str] = mapped_column(String(255))  # relative to data_dir
    mail_from: Mapped[str] = mapped_column(String(320))  # "" = null sender
    client_ip: Mapped[str] = mapped_column(String(64), default="")
    client_helo: Mapped[str] = mapped_column(String(255), default="")
    size: Mapped[int] = mapped_column(Integer, default=0)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)

    tasks: Mapped[list["InboundTask"]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True)


class InboundTask(Base):
    """One destination of an inbound message, worked by an inbound worker (store/inbound.py).

    kind: command | post | owner | approval | admins | local | relay.
    target: the list name, mailbox user, or remote address; rcpt: the address as given.
    recipients: a relay task's remote addresses, one a line (one relay task per message).
    state: new -> done | shunted (a bug; replayable). Claimed with a lease.
    """

    __tablename__ = "inbound_tasks"
    __table_args__ = (Index("ix_inbound_tasks_state_lease", "state", "lease_until"),
                      Index("ix_inbound_tasks_state_kind", "state", "kind"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("inbound_messages.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(320), default="")
    rcpt: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[str] = mapped_column(Text, default="", server_default="")
    state: Mapped[str] = mapped_column(String(16), default="new")
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    done_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    message: Mapped[InboundMessage] = relationship(back_populates="tasks")


# --------------------------------------------------------------------------- outbound

class OutboundMessage(Base):
    """A message to send: body stored once in the spool, however many recipients."""

    __tablename__ = "outbound_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    queue_id: Mapped[str] = mapped_column(String(32), unique=True)
    spool_path: Mapped[str] = mapped_column(String(255))  # relative to data_dir
    mail_from: Mapped[str] = mapped_column(String(320))  # "" = null sender (no DSN ever)
    size: Mapped[int] = mapped_column(Integer, default=0)
    origin: Mapped[str] = mapped_column(String(64), default="")  # relay, reply, post:LIST, dsn
    arrival_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    received_from: Mapped[str] = mapped_column(String(255), default="")  # "host [ip]"
    warned_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # A list name: each member's copy gets its own parts at send time (VERP envelope
    # sender, List-Unsubscribe lines); "" = every recipient gets the same bytes.
    personal: Mapped[str] = mapped_column(String(64), default="")

    recipients: Mapped[list["OutboundRecipient"]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True,
        lazy="raise")


# Outbound priority classes (OutboundRecipient.priority): delivery claims every due
# interactive recipient (command replies, notices, returned mail, relayed and forwarded
# mail) before any bulk one (list posts), as Postfix's qmgr keeps a big job from
# starving small ones.
INTERACTIVE = 0
BULK = 1

QUEUED = "state = 'queued'"
PENDING = "state IN ('queued', 'bounce')"
BOUNCE = "state = 'bounce'"
LEASED = "lease_owner <> ''"


class OutboundRecipient(Base):
    """state: queued -> sent | bounce (returned mail due) -> failed | deleted.

    Deferred = queued with a later next_attempt_at. A claimed row has its lease in
    lease_owner/lease_until and next_attempt_at moved to the lease's end, so a worker that
    dies leaves it due again when the lease runs out.
    """

    __tablename__ = "outbound_recipients"
    __table_args__ = (
        # Partial indexes hold only the rows still in play, so a recipient leaving them
        # (sent, failed) costs an index delete and no insert. Queries that use them repeat
        # the predicate literally (listmgr.store.outbound_claims), as SQLite and generic PostgreSQL
        # plans require.
        Index("ix_outbound_recipients_due", "priority", "next_attempt_at",
              sqlite_where=text(QUEUED), postgresql_where=text(QUEUED)),
        Index("ix_outbound_recipients_pending", "message_id", "state",
              sqlite_where=text(PENDING), postgresql_where=text(PENDING)),
        Index("ix_outbound_recipients_bounce", "message_id",
              sqlite_where=text(BOUNCE), postgresql_where=text(BOUNCE)),
        Index("ix_outbound_recipients_message_id", "message_id"),  # cascades, purge
        # Only the claimed rows: the lease heartbeat renews them by owner (store.leases).
        Index("ix_outbound_recipients_leased", "lease_owner",
              sqlite_where=text(LEASED), postgresql_where=text(LEASED)),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_messages.id", ondelete="CASCADE"))
    rcpt: Mapped[str] = mapped_column(String(320))
    domain: Mapped[str] = mapped_column(String(255))  # routing key (no index: insert speed)
    priority: Mapped[int] = mapped_column(Integer, default=INTERACTIVE)  # or BULK
    state: Mapped[str] = mapped_column(String(16), default="queued")
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_attempt_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="")  # RFC 3463, e.g. 5.1.1
    diagnostic: Mapped[str] = mapped_column(Text, default="")
    remote_mta: Mapped[str] = mapped_column(String(255), default="")
    transcript: Mapped[str] = mapped_column(Text, default="")  # last failed attempt's dialogue
    done_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)

    message: Mapped[OutboundMessage] = relationship(back_populates="recipients")


class Fanout(Base):
    """A post still being queued to its list's members, in batches (posting.fanout).

    `cursor` is the id of the last member queued; each batch commits its recipients and
    the new cursor together, so a fan-out resumed after a crash neither repeats nor skips
    anyone. The row goes away when the last batch is queued; while it exists, its message
    is not finished (its spool file stays).
    """

    __tablename__ = "fanouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("outbound_messages.id", ondelete="CASCADE"), unique=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"))
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str] = mapped_column(String(64), default="")
    lease_until: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


# --------------------------------------------------------------------------- commands/posts

class Token(Base):
    """A single-use confirmation: subscribe/unsubscribe auth, held-post decisions, newlist.

    Only a hash of the secret is stored; `used_at` makes it single-use.
    """

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    list_name: Mapped[str] = mapped_column(String(64), default="")
    address: Mapped[str] = mapped_column(String(320), default="")
    payload: Mapped[str] = mapped_column(Text, default="")  # JSON
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    used_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)


class HeldPost(Base):
    __tablename__ = "held_posts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    list_id: Mapped[int] = mapped_column(ForeignKey("lists.id", ondelete="CASCADE"), index=True)
    spool_path: Mapped[str] = mapped_column(String(255))
    mail_from: Mapped[str] = mapped_column(String(320))
    sender: Mapped[str] = mapped_column(String(320), default="")  # header From
    subject: Mapped[str] = mapped_column(Text, default="")
    reasons: Mapped[str] = mapped_column(Text, default="")  # JSON list of strings
    state: Mapped[str] = mapped_column(String(16), default="held")
    held_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(index=True)
    decided_at: Mapped[dt.datetime | None] = mapped_column(nullable=True)
    decision_note: Mapped[str] = mapped_column(Text, default="")


class RateCounter(Base):
    """Fixed-window counters (e.g. command replies per requester per hour)."""

    __tablename__ = "rate_counters"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    window_start: Mapped[dt.datetime] = mapped_column()
    count: Mapped[int] = mapped_column(Integer, default=0)
