"""Configuration: one TOML file -> frozen dataclasses.

Every error names the key, the value and the file, in one line (ConfigError).
Lookup order: --config FILE, then $LISTMGR_CONFIG, then ./listmgr.toml, else defaults.
$LISTMGR_DATABASE_URL overrides `database_url`.

To add a key: add a field to its section's dataclass, with `kind` metadata when the
value is a duration, a size, an address list or a host:port; document it in README.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from listmgr import patterns


class ConfigError(Exception):
    """A configuration problem, worded for the person who wrote the file."""


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SIZE = re.compile(r"^\s*(\d+)\s*(b|kb|k|mb|m|gb|g)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "k": 1024, "kb": 1024, "m": 1024**2, "mb": 1024**2,
               "g": 1024**3, "gb": 1024**3}


def parse_duration(value: Any) -> float:
    """`90s`, `30m`, `4h`, `5d` (or a number of seconds) -> seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 30m, 4h or 5d")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError("expected a duration such as 90s, 30m, 4h or 5d")
    m = _DURATION.match(value)
    if not m:
        raise ValueError("expected a duration such as 90s, 30m, 4h or 5d")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


_JA_UNITS = {"day": "日", "hour": "時間", "minute": "分", "second": "秒"}


def format_duration(seconds: float, lang: str = "en") -> str:
    """The inverse of parse_duration for whole units: 14400 -> '4 hours' ('4時間' in ja)."""
    unit, n = "second", int(seconds)
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            unit, n = name, int(seconds // size)
            break
    if lang == "ja":
        return f"{n}{_JA_UNITS[unit]}"
    return f"{n} {unit}{'s' if n != 1 else ''}"


def parse_size(value: Any) -> int:
    """`5MB` (= 5,242,880) or a plain byte count -> bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size such as 5MB or a byte count")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a size cannot be negative")
        return value
    if not isinstance(value, str):
        raise ValueError("expected a size such as 5MB or a byte count")
    m = _SIZE.match(value)
    if not m:
        raise ValueError("expected a size such as 5MB or a byte count")
    unit = m.group(2).lower() if m.group(2) else None
    return int(m.group(1)) * _SIZE_UNITS[unit]


def parse_hostport(value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise ValueError("expected host:port")
    if value == "" and allow_empty:
        return value
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError("expected host:port, e.g. 127.0.0.1:2525")
    return value


def split_hostport(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


def _addresses(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of addresses")
    for v in value:
        if "@" not in v or any(c in v for c in " \r\n\t<>"):
            raise ValueError(f"{v!r} is not an e-mail address")
    return tuple(value)


def _strings(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("expected a list of strings")
    return tuple(value)


def _networks(value: Any) -> tuple[str, ...]:
    nets = _strings(value)
    for n in nets:
        ipaddress.ip_network(n, strict=False)
    return nets


def _regexps(value: Any) -> tuple[str, ...]:
    pats = _strings(value)
    for p in pats:
        try:
            patterns.compile_pattern(p, "i")
        except patterns.PatternError as exc:
            raise ValueError(f"{p!r} is refused: {exc}") from None
    return pats


def _mj_regexps(value: Any) -> tuple[str, ...]:
    """Majordomo-form patterns, `/re/flags` or `m<d>re<d>flags`, as in majordomo.cf."""
    pats = _strings(value)
    for p in pats:
        patterns.parse_item(p)  # ValueError names the pattern and why
    return pats


AUTO_PROCESSES = 8  # the most SMTP processes "auto" starts, however many cores
AUTO_DELIVERY_PROCESSES = 4  # the most delivery processes "auto" starts


def _processes(value: Any) -> int:
    """`"auto"` (0: one per CPU core this process may run on) or 1 to 64."""
    if value == "auto":
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise ValueError('expected "auto" or 1 to 64')
    return value


def cpu_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, as `nproc` counts)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _domains(value: Any) -> tuple[str, ...]:
    return tuple(d.lower().rstrip(".") for d in _strings(value))


_KINDS: dict[str, Callable[[Any], Any]] = {
    "duration": parse_duration,
    "size": parse_size,
    "hostport": parse_hostport,
    "hostport?": lambda v: parse_hostport(v, allow_empty=True),
    "addresses": _addresses,
    "strings": _strings,
    "networks": _networks,
    "domains": _domains,
    "processes": _processes,
    "regexps": _regexps,
    "mj_regexps": _mj_regexps,
}


def _kind(kind: str, default: Any) -> Any:
    return field(default=default, metadata={"kind": kind})


@dataclass(frozen=True)
class SMTPConfig:
    listen: str = _kind("hostport", "127.0.0.1:2525")
    max_message_size: int = _kind("size", 5 * 1024 * 1024)
    local_domains: tuple[str, ...] = _kind("domains", ())
    relay_networks: tuple[str, ...] = _kind("networks", ())
    max_recipients: int = 1000
    # processes accepting SMTP on `listen`, the server's own included: "auto" (stored as 0)
    # is one per CPU core (process_count)
    processes: int = _kind("processes", 0)
    max_connections: int = 100
    max_data_sessions: int = 20
    max_connections_per_ip: int = 20  # 0: no per-IP cap; relay_networks are exempt
    max_data_sessions_per_ip: int = 5
    min_data_rate: int = 500  # bytes/s after `timeout` in DATA (0: no minimum)
    min_free_space: int = _kind("size", 100 * 1024 * 1024)  # Postfix's queue_minfree
    # Mail whose recipients are all local mailboxes without an auto-reply goes into the
    # Maildirs before 250 (no spool file, no queue rows); false: spool and mailbox worker.
    mailbox_at_ingress: bool = True
    timeout: float = _kind("duration", 300.0)
    tls_cert: str = ""
    tls_key: str = ""

    @property
    def process_count(self) -> int:
        """How many processes accept SMTP: `processes`, or for "auto" one per CPU core, at
        most AUTO_PROCESSES (each acceptor is a Python process of ~75 MB)."""
        return self.processes or min(AUTO_PROCESSES, cpu_cores())


@dataclass(frozen=True)
class SubmissionConfig:
    listen: str = _kind("hostport?", "")  # port 587: STARTTLS, then AUTH (e.g. 0.0.0.0:587)
    tls_listen: str = _kind("hostport?", "")  # port 465: implicit TLS (RFC 8314)
    tls_cert: str = ""  # default: [smtp] tls_cert
    tls_key: str = ""  # default: [smtp] tls_key


@dataclass(frozen=True)
class LMTPConfig:
    listen: str = _kind("hostport?", "")


@dataclass(frozen=True)
class MapsConfig:
    listen: str = _kind("hostport?", "")  # Postfix socketmap server, e.g. 127.0.0.1:2526
    timeout: float = _kind("duration", 100.0)  # an idle connection is closed after this
    max_connections: int = 100


@dataclass(frozen=True)
class POP3Config:
    listen: str = _kind("hostport", "127.0.0.1:1110")
    relay_window: float = _kind("duration", 1800.0)
    tls_cert: str = ""
    tls_key: str = ""
    tls_listen: str = _kind("hostport?", "127.0.0.1:1995")  # implicit TLS, when a cert is set
    require_tls: bool = False  # refuse USER/PASS until STLS (or on the TLS listener)
    timeout: float = _kind("duration", 600.0)  # RFC 1939 autologout: at least 10 minutes
    login_failure_delay: float = _kind("duration", 2.0)  # doubled per recent failure per IP
    max_connections: int = 100


@dataclass(frozen=True)
class DeliveryConfig:
    smarthost: str = _kind("hostport?", "")
    warn_after: float = _kind("duration", 4 * 3600.0)
    give_up_after: float = _kind("duration", 5 * 86400.0)
    nameservers: tuple[str, ...] = _kind("strings", ())
    port: int = 25
    max_recipients_per_transaction: int = 50
    min_backoff: float = _kind("duration", 300.0)
    max_backoff: float = _kind("duration", 4000.0)
    concurrency: int = 20
    per_host_concurrency: int = 5
    workers: bool = True
    # processes running a delivery worker, the server's own included: "auto" (stored as 0)
    # is one per CPU core (process_count); the connection limits above are shared out
    processes: int = _kind("processes", 0)
    nameserver_port: int = 53
    timeout: float = _kind("duration", 300.0)
    connect_timeout: float = _kind("duration", 30.0)
    starttls: bool = True
    lease: float = _kind("duration", 0.0)  # 0: [store] lease
    batch_size: int = 500
    poll_interval: float = _kind("duration", 1.0)
    return_size_limit: int = _kind("size", 50000)
    keep_finished: float = _kind("duration", 86400.0)

    @property
    def process_count(self) -> int:
        """How many processes deliver: `processes`, or for "auto" one per CPU core, at most
        AUTO_DELIVERY_PROCESSES."""
        return self.processes or min(AUTO_DELIVERY_PROCESSES, cpu_cores())


@dataclass(frozen=True)
class StoreConfig:
    # How long a claim (inbound task, fan-out, outbound recipient) lasts unless the claiming
    # process's heartbeat renews it (every lease / 3): a dead process's work is taken over by
    # any live one after this.
    lease: float = _kind("duration", 30.0)


@dataclass(frozen=True)
class CommandsConfig:
    token_lifetime: float = _kind("duration", 7 * 86400.0)
    max_commands: int = 100
    replies_per_hour: int = 20
    max_which_hits: int = 100


# Whole-line commands that make a post administrivia (matched case-insensitively against
# the Subject and the first body lines; Majordomo's sample list, reference 5.3, without
# its "anywhere in the line" false positives).
ADMINISTRIVIA = (
    r"(un)?subscribe(\s+\S+){0,2}",
    r"(unsub|signoff|sign\s+off|cancel)(\s+\S+){0,2}",
    r"(please\s+)?(add|delete|remove|take)\s+me(\s+(from|to|off)(\s+\S+){1,3})?[.!]?",
    r"help|lists|index(\s+\S+)?|which(\s+\S+)?",
    r"(info|intro|who)\s+\S+|get\s+\S+\s+\S+",
    r"(approve|passwd|newinfo|newintro|config|newconfig|writeconfig|mkdigest)(\s+\S+){1,3}",
)


# Majordomo 1.94.5's sample.cf $global_taboo_headers: subjects of bounces and auto-replies.
GLOBAL_TABOO_HEADERS = (
    r"/^subject: ndn: /i",
    r"/^subject:\s*RCPT:/i",
    r"/^subject:\s*Delivery Confirmation\b/i",
    r"/^subject:\s*NON-DELIVERY of:/i",
    r"/^subject:.*Undeliverable Message\b/i",
    r"/^subject:.*Receipt Confirmation\b/i",
    r"/^subject:.*Failed mail\b/i",
    r"/^subject:.*Returned mail\b/i",
    r"/^subject:\s*unable to deliver mail\b/i",
    r"/^subject:\s.*\baway from my mail\b/i",
    r"/^subject:\s*Autoreply/i",
)


@dataclass(frozen=True)
class PostingConfig:
    administrivia: tuple[str, ...] = _kind("regexps", ADMINISTRIVIA)
    global_taboo_headers: tuple[str, ...] = _kind("mj_regexps", GLOBAL_TABOO_HEADERS)
    global_taboo_body: tuple[str, ...] = _kind("mj_regexps", ())
    rule_time_budget: float = _kind("duration", 2.0)
    fanout_batch: int = 1000
    expiry_interval: float = _kind("duration", 60.0)


@dataclass(frozen=True)
class BouncesConfig:
    check_interval: float = _kind("duration", 600.0)  # bounce notices and removals due


@dataclass(frozen=True)
class WebConfig:
    listen: str = _kind("hostport?", "127.0.0.1:8080")  # empty: no web server
    base_url: str = ""  # public address, for links in mail (https://lists.example.org)
    admin_users: tuple[str, ...] = _kind("strings", ())  # mailbox users who are site admins
    max_upload: int = _kind("size", 10 * 1024 * 1024)  # largest request body
    session_lifetime: float = _kind("duration", 8 * 3600.0)


@dataclass(frozen=True)
class MailConfig:
    japanese_charset: str = "utf-8"  # or "iso-2022-jp" for every Japanese mail we send


@dataclass(frozen=True)
class DKIMConfig:
    selector: str = "listmgr"
    domains: tuple[str, ...] = _kind("domains", ())  # empty: every local domain
    key: str = ""  # empty: <data_dir>/dkim/<selector>.key
    arc: bool = False
    ed25519_selector: str = ""  # empty: no second (Ed25519, RFC 8463) signature


@dataclass(frozen=True)
class MetricsConfig:
    listen: str = _kind("hostport?", "")  # Prometheus /metrics, e.g. 127.0.0.1:9432


@dataclass(frozen=True)
class LogConfig:
    file: str = ""  # log here instead of standard error; reopened on SIGHUP
    syslog: bool = False  # also to syslog, facility mail, tags like listmgr/smtpd[PID]
    syslog_socket: str = "/dev/log"


@dataclass(frozen=True)
class Config:
    domain: str = "localhost"
    hostname: str = ""
    data_dir: str = "./var"
    database_url: str = ""
    site_admins: tuple[str, ...] = _kind("addresses", ())
    language: str = "en"
    log_level: str = "INFO"
    smtp: SMTPConfig = field(default_factory=SMTPConfig)
    lmtp: LMTPConfig = field(default_factory=LMTPConfig)
    submission: SubmissionConfig = field(default_factory=SubmissionConfig)
    maps: MapsConfig = field(default_factory=MapsConfig)
    pop3: POP3Config = field(default_factory=POP3Config)
    delivery: DeliveryConfig = field(default_factory=DeliveryConfig)
    store: StoreConfig = field(default_factory=StoreConfig)
    commands: CommandsConfig = field(default_factory=CommandsConfig)
    posting: PostingConfig = field(default_factory=PostingConfig)
    web: WebConfig = field(default_factory=WebConfig)
    bounces: BouncesConfig = field(default_factory=BouncesConfig)
    mail: MailConfig = field(default_factory=MailConfig)
    dkim: DKIMConfig = field(default_factory=DKIMConfig)
    log: LogConfig = field(default_factory=LogConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: str = field(default="(built-in defaults)", compare=False)

    # Derived values -------------------------------------------------------
    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def local_domains(self) -> tuple[str, ...]:
        """Every domain this server receives mail for, lower case, no trailing dot."""
        first = self.domain.lower().rstrip(".")
        return (first,) + tuple(d for d in self.smtp.local_domains if d != first)

    def with_overrides(self, **changes: Any) -> "Config":
        """A copy with top-level or `section__key` values replaced (tests, CLI)."""
        top: dict[str, Any] = {}
        sections: dict[str, dict[str, Any]] = {}
        for k, v in changes.items():
            if "__" in k:
                sec, key = k.split("__", 1)
                sections.setdefault(sec, {})[key] = v
            else:
                top[k] = v
        for sec, vals in sections.items():
            top[sec] = dataclasses.replace(getattr(self, sec), **vals)
        return dataclasses.replace(self, **top)


_SECTIONS = {f.name: f.default_factory for f in dataclasses.fields(Config)
             if f.default_factory is not dataclasses.MISSING}


def _convert(cls: type, raw: dict[str, Any], where: str, source: str) -> dict[str, Any]:
    known = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        name = f"{where}{key}"
        if where == "" and key in _SECTIONS:
            continue  # a [section]: from_mapping converts it
        f = known.get(key)
        if f is None:
            raise ConfigError(f"{source}: unknown key '{name}' (value {value!r})")
        kind = f.metadata.get("kind")
        try:
            if kind:
                value = _KINDS[kind](value)
            else:
                value = _plain(f.type, value)
        except ValueError as exc:
            raise ConfigError(f"{source}: bad value {value!r} for '{name}': {exc}") from None
        out[key] = value
    return out


def _plain(typ: Any, value: Any) -> Any:
    t = typ if isinstance(typ, str) else getattr(typ, "__name__", str(typ))
    if t == "str":
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    if t == "bool":
        if not isinstance(value, bool):
            raise ValueError("expected true or false")
        return value
    if t == "int":
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError("expected a whole number")
        return value
    if t == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError("expected a number")
        return float(value)
    return value


def from_mapping(raw: dict[str, Any], source: str = "(built-in defaults)") -> Config:
    top = _convert(Config, raw, "", source)
    for sec, factory in _SECTIONS.items():
        if sec in raw:
            if not isinstance(raw[sec], dict):
                raise ConfigError(f"{source}: '{sec}' must be a [{sec}] section, not {raw[sec]!r}")
            cls = type(factory())
            top[sec] = cls(**_convert(cls, raw[sec], f"{sec}.", source))
    cfg = Config(source=source, **top)
    if not re.fullmatch(r"[A-Za-z0-9.-]+", cfg.domain):
        raise ConfigError(f"{source}: bad value {cfg.domain!r} for 'domain': not a domain name")
    if not cfg.hostname:
        cfg = dataclasses.replace(cfg, hostname=cfg.domain)
    if cfg.language not in ("en", "ja"):
        raise ConfigError(f"{source}: bad value {cfg.language!r} for 'language': expected en or ja")
    if bool(cfg.smtp.tls_cert) != bool(cfg.smtp.tls_key):
        raise ConfigError(f"{source}: 'smtp.tls_cert' and 'smtp.tls_key' go together")
    if bool(cfg.pop3.tls_cert) != bool(cfg.pop3.tls_key):
        raise ConfigError(f"{source}: 'pop3.tls_cert' and 'pop3.tls_key' go together")
    if cfg.mail.japanese_charset.lower() not in ("utf-8", "iso-2022-jp"):
        raise ConfigError(f"{source}: bad value {cfg.mail.japanese_charset!r} for "
                          "'mail.japanese_charset': expected utf-8 or iso-2022-jp")
    if cfg.web.base_url and not re.fullmatch(r"https?://[A-Za-z0-9.:\[\]-]+(/[^\s?#]*)?",
                                             cfg.web.base_url):
        raise ConfigError(f"{source}: bad value {cfg.web.base_url!r} for 'web.base_url': "
                          "expected an http:// or https:// address")
    if bool(cfg.submission.tls_cert) != bool(cfg.submission.tls_key):
        raise ConfigError(f"{source}: 'submission.tls_cert' and 'submission.tls_key' go "
                          "together")
    if (cfg.submission.listen or cfg.submission.tls_listen) and not (
            cfg.submission.tls_cert or cfg.smtp.tls_cert):
        raise ConfigError(f"{source}: 'submission.listen' and 'submission.tls_listen' need "
                          "a certificate: set 'submission.tls_cert' and 'tls_key' (or "
                          "'smtp.tls_cert' and 'tls_key')")
    if cfg.pop3.require_tls and not cfg.pop3.tls_cert:
        raise ConfigError(f"{source}: 'pop3.require_tls' needs 'pop3.tls_cert' and "
                          "'pop3.tls_key'")
    for key in ("selector", "ed25519_selector"):
        value = getattr(cfg.dkim, key)
        if (value or key == "selector") and \
                not re.fullmatch(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})", value):
            raise ConfigError(f"{source}: bad value {value!r} for 'dkim.{key}': "
                              "expected one DNS label (letters, digits, hyphens)")
    if cfg.dkim.ed25519_selector and cfg.dkim.ed25519_selector == cfg.dkim.selector:
        raise ConfigError(f"{source}: 'dkim.ed25519_selector' must differ from "
                          "'dkim.selector'")
    return cfg


def load(path: str | os.PathLike[str] | None = None) -> Config:
    """Load the configuration by the documented lookup order."""
    if path is None:
        path = os.environ.get("LISTMGR_CONFIG") or None
        if path is None and Path("listmgr.toml").exists():
            path = "listmgr.toml"
    raw: dict[str, Any] = {}
    source = "(built-in defaults)"
    if path is not None:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                raw = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"{source}: configuration file not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source}: not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    cfg = from_mapping(raw, source)
    env_url = os.environ.get("LISTMGR_DATABASE_URL")
    if env_url:
        cfg = dataclasses.replace(cfg, database_url=env_url)
    return cfg


def japanese_charset(cfg: Config, request_charset: str = "") -> str:
    """ISO-2022-JP for Japanese mail when the site says so or the request came in it."""
    if cfg.mail.japanese_charset.lower() == "iso-2022-jp" \
            or request_charset.lower() == "iso-2022-jp":
        return "iso-2022-jp"
    return ""


def database_url(cfg: Config) -> str:
    if cfg.database_url:
        return cfg.database_url
    return f"sqlite:///{(cfg.data_path / 'listmgr.sqlite3').resolve()}"
