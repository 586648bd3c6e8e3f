"""`listmgr config-sample` (every key, commented, at its default) and the `key = value`
lines `listmgr check-config` prints for values that differ from the defaults."""

from __future__ import annotations

import dataclasses
import textwrap
from collections.abc import Iterator
from typing import Any

from listmgr.config import Config

HEADER = """\
# listmgr.toml: every key at its default value, with what it means.
# Uncomment a key and change its value to use it; keys left commented keep their default.
# Durations are written 90s, 30m, 4h, 5d; sizes 5MB (5,242,880 bytes) or a byte count.
# An unknown key or a bad value stops listmgr with one line naming the key and the file.
# `listmgr check-config` prints the values you changed and warns about what will not work.
"""

# What each key means (README's configuration table says the same).
HELP: dict[str, str] = {
    'domain': 'the mail domain served',
    'hostname': "this server's name in greetings, Received:, DSNs (empty: the domain)",
    'data_dir': 'spool, mailboxes, archives, the SQLite file',
    'database_url': 'e.g. postgresql+psycopg://user@host/db',
    'site_admins': 'addresses of the site administrators: they receive mail to postmaster@ and majordomo-owner@ (with none, that mail waits in the shunt queue and serve warns at start)',
    'language': 'language of replies and notices (en, ja); lists may override',
    'log_level': 'logging level',
    'smtp.listen': 'SMTP listener',
    'smtp.max_message_size': 'largest message, as transmitted',
    'smtp.local_domains': 'more domains handled as local',
    'smtp.relay_networks': 'client networks allowed to relay, e.g. ["192.0.2.0/24"] (loopback is *not* implied)',
    'smtp.max_recipients': 'RCPTs per transaction',
    'smtp.processes': 'processes accepting SMTP on `listen`: "auto" (one per CPU core, at most 8) or 1 to 64 (the server and N-1 more; more CPU cores for ingress; the connection caps count per process)',
    'smtp.max_connections': 'concurrent SMTP connections',
    'smtp.max_data_sessions': 'messages being received at once (each holds up to 2x its size in memory); more get 451 4.3.2 at DATA',
    'smtp.timeout': 'idle timeout',
    'smtp.tls_cert': 'PEM files; enable STARTTLS (and SMTP AUTH after it)',
    'smtp.tls_key': 'PEM files; enable STARTTLS (and SMTP AUTH after it)',
    'lmtp.listen': 'LMTP listener host:port',
    'submission.listen': 'submission for mail clients (port 587): STARTTLS, then AUTH PLAIN/LOGIN as a mailbox user',
    'submission.tls_listen': 'submission with implicit TLS (port 465, RFC 8314)',
    'submission.tls_cert': 'PEM files for both submission listeners (one of the two pairs is required)',
    'submission.tls_key': 'PEM files for both submission listeners (one of the two pairs is required)',
    'maps.listen': 'Postfix socketmap server answering "is this recipient ours?" (see docs/postfix.md)',
    'maps.timeout': 'an idle socketmap connection is closed after this',
    'maps.max_connections': 'concurrent socketmap connections',
    'pop3.listen': 'POP3 listener',
    'pop3.relay_window': 'relay allowed this long after a POP3 login from the same IP (0 turns POP-before-SMTP off)',
    'pop3.tls_cert': 'enable STLS and the implicit-TLS listener',
    'pop3.tls_key': 'enable STLS and the implicit-TLS listener',
    'pop3.tls_listen': 'implicit-TLS POP3 listener (only with a certificate)',
    'pop3.require_tls': 'refuse USER/PASS until STLS (needs a certificate)',
    'pop3.timeout': 'idle autologout (RFC 1939 asks for at least 10 minutes)',
    'pop3.login_failure_delay': 'pause before -ERR [AUTH]; doubles per recent failure from the same IP (up to 30 s)',
    'pop3.max_connections': 'concurrent POP3 connections',
    'delivery.smarthost': 'host:port to send all mail through; empty = direct MX delivery',
    'delivery.warn_after': 'delay warning to the sender',
    'delivery.give_up_after': 'return undelivered mail',
    'delivery.nameservers': "DNS servers for MX lookups (empty: the system's)",
    'delivery.port': 'remote SMTP port',
    'delivery.max_recipients_per_transaction': 'recipients per SMTP transaction',
    'delivery.min_backoff': 'retry backoff (doubling)',
    'delivery.max_backoff': 'retry backoff (doubling)',
    'delivery.concurrency': 'connection limits',
    'delivery.per_host_concurrency': 'connection limits',
    'delivery.processes': 'processes delivering: "auto" (one per CPU core, at most 4) or 1 to 64 (the server and N-1 more; more CPU cores for per-member copies such as VERP; concurrency and per_host_concurrency are shared out among them)',
    'delivery.workers': 'run delivery workers inside serve',
    'delivery.nameserver_port': 'port of nameservers entries given without one (host:port also works)',
    'delivery.timeout': 'SMTP reply / connect timeouts',
    'delivery.connect_timeout': 'SMTP reply / connect timeouts',
    'delivery.starttls': 'opportunistic STARTTLS when the remote offers it (certificate not verified)',
    'delivery.lease': 'the lease of claimed outbound recipients, if not [store] lease (0: [store] lease)',
    'store.lease': "how long a claim (inbound task, fan-out, outbound recipient) lasts unless its process's heartbeat renews it (every lease/3); a dead process's work is taken over by any live process after this",
    'delivery.batch_size': 'recipients claimed per store transaction',
    'delivery.poll_interval': 'how often workers look for due work and returned mail to send',
    'delivery.return_size_limit': 'originals larger than this come back as headers only',
    'delivery.keep_finished': 'finished messages stay visible to listmgr queue show this long',
    'commands.token_lifetime': 'confirmation keys expire after this',
    'commands.max_commands': 'commands read from one mail',
    'commands.replies_per_hour': 'command replies and confirmations to one address per hour',
    'posting.administrivia': 'whole-line regexps (case-insensitive) that make a post administrivia',
    'posting.rule_time_budget': "time all of one post's regexp matching may take; then it is held",
    'posting.fanout_batch': 'members read and queued per batch',
    'posting.expiry_interval': 'how often held posts are checked for expiry',
    'web.base_url': 'https base for List-Unsubscribe one-click links',
    'log.file': 'log to this file instead of standard error; kill -HUP reopens it (logrotate)',
    'log.syslog': 'also log to syslog, facility mail, Postfix-style tags (listmgr/smtpd[PID]: QUEUEID: ...)',
    'log.syslog_socket': 'the syslog socket',
    'metrics.listen': 'Prometheus metrics at http://HOST:PORT/metrics (keep it on loopback or behind a firewall)',
    'smtp.max_connections_per_ip': 'concurrent SMTP connections from one client address (0: no cap; relay_networks are exempt); more get 421 4.7.0',
    'smtp.max_data_sessions_per_ip': 'messages being received at once from one client address (relay_networks exempt); more get 451 4.3.2 at DATA',
    'smtp.min_data_rate': "bytes/s: a DATA must end within timeout plus its size at this rate, else 421 4.4.2 and the connection is closed (Postfix's smtpd_min_data_rate; 0: no minimum)",
    'smtp.mailbox_at_ingress': "mail whose recipients are all local mailboxes without an auto-reply is written into their Maildirs before the 250 (no spool file, no queue rows); false: it goes through the spool and the mailbox worker like other mail",
    'smtp.min_free_space': "free disk space kept in reserve under data_dir (Postfix's queue_minfree): below it, or when MAIL SIZE= would not fit, mail gets 452 4.3.1 Insufficient system storage",
    'commands.max_which_hits': "entries which STRING lists at most (Majordomo's $max_which_hits)",
    'posting.global_taboo_headers': 'site-wide /re/flags patterns: a matching header line holds a post on every list',
    'posting.global_taboo_body': 'site-wide /re/flags patterns for body lines',
    'web.listen': 'host:port of the web pages inside serve (empty: none)',
    'web.admin_users': 'mailbox users who may log in at /admin/ with their own password',
    'web.max_upload': 'largest request body (a bulk member upload); larger ones get 413',
    'web.session_lifetime': 'how long a login lasts',
    'bounces.check_interval': 'how often bounce notices, removals and stale scores are looked at',
    'mail.japanese_charset': 'iso-2022-jp: Japanese mail we send (replies, confirmations, notices, auto-replies) goes out as ISO-2022-JP, 7bit, for older Japanese mail readers; a request written in ISO-2022-JP is answered in it whatever this says',
    'dkim.selector': 'DKIM selector: the key is published at SELECTOR._domainkey.DOMAIN',
    'dkim.domains': 'domains we sign for (d=); a From: in one of them or a subdomain is signed',
    'dkim.key': 'PEM RSA private key (listmgr dkim keygen makes it); no key file: nothing is signed',
    'dkim.arc': 'ARC-seal list posts (RFC 8617) with the same key',
    'dkim.ed25519_selector': 'adds an Ed25519 signature (RFC 8463) beside the RSA one, key DATA_DIR/dkim/SELECTOR.key (listmgr dkim keygen --algorithm ed25519 --selector S)',
}


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _duration(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f'"{int(seconds // size)}{unit}"'
    return f'"{int(seconds)}s"' if seconds == int(seconds) else f'"{seconds}s"'


def _size(n: int) -> str:
    for unit, size in (("GB", 1024**3), ("MB", 1024**2), ("KB", 1024)):
        if n >= size and n % size == 0:
            return f'"{n // size}{unit}"'
    return str(n)


def format_value(f: dataclasses.Field, value: Any) -> str:
    """A value as TOML, written the way a person would (durations and sizes with units)."""
    kind = f.metadata.get("kind")
    if kind == "duration":
        return _duration(value)
    if kind == "size":
        return _size(value)
    if kind == "processes" and value == 0:
        return '"auto"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_str(v) for v in value) + "]"
    return _toml_str(str(value))


def _fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.name != "source"]


def _sections() -> list[tuple[str, type]]:
    return [(f.name, f.default_factory().__class__) for f in _fields(Config)
            if f.default_factory is not dataclasses.MISSING]


def _comment(text: str) -> str:
    return "\n".join(textwrap.wrap(text, 88, initial_indent="# ", subsequent_indent="# ",
                                   break_on_hyphens=False))


def sample_text() -> str:
    """The sample listmgr.toml: every key commented out at its default value."""
    defaults = Config()
    out = [HEADER]
    for f in _fields(Config):
        if f.default_factory is not dataclasses.MISSING:
            continue
        value = getattr(defaults, f.name)
        if f.name == "hostname":
            value = ""  # empty: the domain
        out.append(_comment(HELP.get(f.name, f.name)) + f"\n#{f.name} = {format_value(f, value)}\n")
    for name, cls in _sections():
        out.append(f"[{name}]\n")
        section = cls()
        for g in _fields(cls):
            out.append(_comment(HELP.get(f"{name}.{g.name}", g.name)) +
                       f"\n#{g.name} = {format_value(g, getattr(section, g.name))}\n")
    return "\n".join(out)


def non_default(cfg: Config) -> Iterator[tuple[str, str]]:
    """(key, TOML value) of every value that differs from the default, `section.key` for
    keys in a [section], in file order (as `postconf -n` does for Postfix)."""
    defaults = Config()
    for f in _fields(Config):
        if f.default_factory is not dataclasses.MISSING:
            continue
        value = getattr(cfg, f.name)
        if f.name == "hostname" and value == cfg.domain:
            continue  # the derived default
        if value != getattr(defaults, f.name):
            yield f.name, format_value(f, value)
    for name, cls in _sections():
        mine, base = getattr(cfg, name), cls()
        for g in _fields(cls):
            if getattr(mine, g.name) != getattr(base, g.name):
                yield f"{name}.{g.name}", format_value(g, getattr(mine, g.name))
