"""`listmgr import-majordomo`: a Majordomo 1.94.5 installation into the store, list by list.

Each list's settings are built in Majordomo's own order of precedence: its defaults (with
majordomo.cf's default policies), then the legacy flag files, then the options of the
list's resend alias, then LIST.config, which overrides them all. configmap gives every
keyword its meaning here. Passwords are hashed; Majordomo's guessable default passwords
(`LIST.admin`, `LIST.pass`) are not carried over.

Majordomo's digest list LIST-digest is LIST in digest mode here: its members join LIST
as digest members and its digest_* settings go to LIST.

Idempotent: a list that exists is updated, members already on it are counted, archive files
already copied are skipped. Each list is its own transaction; `dry_run` rolls each back and
copies nothing, so the report is exact and nothing changes.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from listmgr.listconfig import SETTINGS, SettingError, parse_value
from listmgr.majordomo import configmap, members as member_rows, sitecf, sources
from listmgr.majordomo.sources import SourceError
from listmgr.mail.addresses import AddressError, parse_single
from listmgr.passwords import hash_password
from listmgr.store import lists as repo
from listmgr.store import digests as digest_store
from listmgr.store import member_import
from listmgr.store.mailboxes import RESERVED

log = logging.getLogger(__name__)

MAX_ARCHIVE_FILES = 100_000
MAX_WAITING_POSTS = 10_000  # in one digest work directory
MEMBER_BATCH = 50_000  # rows a driver executemany, in file order

# resend option -> (setting, value); "" takes the option's argument.
RESEND_MAP = {
    "-h": ("resend_host", ""), "-f": ("sender", ""), "-p": ("precedence", ""),
    "-r": ("reply_to", ""), "-M": ("maxlength", ""), "-I": ("restrict_post", ""),
    "-a": ("approve_passwd", ""), "-A": ("moderate", "yes"), "-R": ("purge_received", "yes"),
    "-s": ("administrivia", "yes"), "-d": ("debug", "yes"),
}
RESEND_UNMAPPED = {
    "-C": "a per-list majordomo.cf: give it with --cf",
    "-m": "the mailer command: this server delivers by SMTP itself",
}
# Directories the importer reads (a running list has no use for them afterwards).
IMPORT_DIRS = ("archive_dir", "digest_archive", "digest_work_dir")

SITE_UNMAPPED = {
    "admin_headers": "this server's administrivia check is [posting] administrivia: whole "
                     "lines of the Subject and the first body lines; compare them by hand",
    "admin_body": "this server's administrivia check is [posting] administrivia: whole "
                  "lines of the Subject and the first body lines; compare them by hand",
}


@dataclass
class ListResult:
    name: str
    twin_of: str = ""
    created: bool = False
    members: int = 0
    added: int = 0
    already: int = 0
    invalid: list[str] = field(default_factory=list)
    mapped: int = 0
    not_mapped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    archive_files: int = 0
    error: str = ""


@dataclass
class Report:
    lists: list[ListResult] = field(default_factory=list)
    site: list[str] = field(default_factory=list)  # majordomo.cf / aliases findings
    dry_run: bool = False


@dataclass
class Source:
    listdir: Path
    aliases: dict[str, list[str]] = field(default_factory=dict)
    cf: sources.SiteCf = field(default_factory=sources.SiteCf)
    _resends: dict[str, list[tuple[str, sources.Resend]]] | None = None

    def resends(self) -> dict[str, list[tuple[str, sources.Resend]]]:
        """The aliases running resend, by list name (each alias parsed once)."""
        if self._resends is None:
            self._resends = {}
            for alias, targets in self.aliases.items():
                for target in targets:
                    rs = sources.parse_resend(target)
                    if rs is not None:
                        self._resends.setdefault(rs.list_name, []).append((alias, rs))
        return self._resends

    def archive_of(self, name: str) -> Path:
        filedir = self.cf.values.get("filedir")
        suffix = self.cf.values.get("filedir_suffix", ".archive")
        base = Path(filedir) if filedir and Path(filedir).is_dir() else self.listdir
        return base / f"{name}{suffix}"


def load_source(listdir: Path, aliases: Path | None, cf: Path | None) -> Source:
    if not listdir.is_dir():
        raise SourceError(f"{listdir}: not a directory")
    src = Source(listdir)
    if aliases is not None:
        src.aliases = sources.parse_aliases(sources.read_text(aliases))
    if cf is not None:
        src.cf = sources.parse_cf(sources.read_text(cf))
    return src


class Hashes:
    """argon2 hashes of the passwords being imported, computed on two threads while the
    lists' members are inserted (argon2 releases the GIL); one hash per distinct password."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="import-hash")
        self._done: dict[str, Future[str]] = {}

    def prefetch(self, password: str) -> None:
        if password not in self._done:
            self._done[password] = self._pool.submit(hash_password, password)

    def get(self, password: str) -> str:
        self.prefetch(password)
        return self._done[password].result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def site_findings(src: Source, domain: str) -> list[str]:
    out = []
    where = src.cf.values.get("whereami", "")
    if where and where.lower() != domain.lower():
        out.append(f"majordomo.cf $whereami = {where}: lists now answer at @{domain} "
                   f"(the `domain` of listmgr.toml)")
    for var, why in SITE_UNMAPPED.items():
        pats = sources.cf_patterns(src.cf.blocks.get(var, []))
        if pats:
            out.append(f"majordomo.cf ${var}: {len(pats)} pattern(s) not mapped: {why}")
    return out


def _defaults(src: Source, name: str) -> dict[str, tuple[str, str]]:
    """Majordomo's defaults for list `name`: key -> (value text, where it came from)."""
    out: dict[str, tuple[str, str]] = {}
    for key, kw in configmap.KEYWORDS.items():
        if SETTINGS[key].secret:
            continue  # the defaults LIST.admin / LIST.pass are guessable: never carried over
        out[key] = (configmap.default_text(kw, name), "default")
    for key in ("subscribe_policy", "unsubscribe_policy"):
        site = src.cf.values.get(f"config'default_{key}")
        if site:
            out[key] = (site, "majordomo.cf")
    if name.endswith("-digest"):
        out["reply_to"] = (name[:-7], "default")
    return out


def _flag_files(src: Source, name: str, values: dict, result: ListResult) -> None:
    def has(suffix: str) -> bool:
        return (src.listdir / f"{name}{suffix}").exists()
    if has(".private"):
        for op in ("get", "index", "who", "which"):
            values[f"{op}_access"] = ("closed", f"{name}.private")
    if has(".closed"):
        values["subscribe_policy"] = ("closed", f"{name}.closed")
        values["unsubscribe_policy"] = ("closed", f"{name}.closed")
        if has(".auto"):
            result.notes.append(f"both {name}.auto and {name}.closed exist: closed chosen, "
                                f"as Majordomo does")
    elif has(".auto"):
        values["subscribe_policy"] = ("auto", f"{name}.auto")
        values["unsubscribe_policy"] = ("auto", f"{name}.auto")
    if has(".strip"):
        values["strip"] = ("yes", f"{name}.strip")
    if has(".hidden"):
        values["noadvertise"] = ("/.*/", f"{name}.hidden")


def _resend_options(src: Source, name: str, values: dict, result: ListResult) -> None:
    for alias, rs in src.resends().get(name.lower(), []):
        where = f"aliases {alias}: resend"
        for flag, arg in rs.options:
            if flag in RESEND_MAP:
                key, fixed = RESEND_MAP[flag]
                values[key] = (fixed or arg, f"{where} {flag}")
            else:
                result.not_mapped.append(f"{where} {flag} {arg}".rstrip() + ": "
                                         + RESEND_UNMAPPED.get(flag, "not used here"))
        for word in rs.unknown:
            result.not_mapped.append(f"{where} {word}: not a resend option this "
                                     f"importer knows; ignored")


def _owners(src: Source, name: str, domain: str, result: ListResult) -> list[str]:
    for alias in (f"owner-{name}", f"{name}-owner", f"{name}-approval"):
        found = []
        for t in sources.resolve(src.aliases, alias):
            try:
                found.append(parse_single(t))
            except AddressError:
                if "@" not in t:
                    result.not_mapped.append(f"aliases {alias}: local user '{t}' has no "
                                             f"domain; left out of the owners")
        if found:
            return found
    site_owner = src.cf.values.get("whoami_owner", "")
    try:
        owner = parse_single(site_owner)
        result.notes.append(f"no owner-{name} alias: the owner is $whoami_owner {owner}")
        return [owner]
    except AddressError:
        result.notes.append(f"no owner found: the owner is postmaster@{domain}; "
                            f"set `owners` with listmgr config")
        return [f"postmaster@{domain}"]


def _password(src: Source, name: str, values: dict, result: ListResult) -> None:
    """LIST.passwd (the master password) when the config gives no admin_passwd."""
    path = src.listdir / f"{name}.passwd"
    if not path.is_file():
        if "admin_passwd" not in values:
            result.notes.append("no password but Majordomo's guessable default: only the "
                                "site password works until one is set")
        return
    lines = sources.read_text(path, 4096).split("\n")
    pw = lines[0].strip() if lines else ""
    if not pw:
        return
    if "admin_passwd" in values and values["admin_passwd"][0] != pw:
        result.notes.append(f"{name}.passwd differs from admin_passwd: admin_passwd kept, "
                            f"the {name}.passwd password no longer works")
        return
    values.setdefault("admin_passwd", (pw, f"{name}.passwd"))


def build_settings(src: Source, name: str, domain: str, result: ListResult) -> dict[str, str]:
    """Settings for list `name` as text, in Majordomo's order of precedence."""
    values = _defaults(src, name)
    _flag_files(src, name, values, result)
    _resend_options(src, name, values, result)
    config_path = src.listdir / f"{name}.config"
    if config_path.is_file():
        reading = configmap.read(sources.read_text(config_path), name, domain=domain,
                                 where=f"{name}.config")
        for err in reading.errors:
            result.not_mapped.append(f"{name}.config: {err}")
        for key, value in reading.values.items():
            values[key] = (value, f"{name}.config line {reading.lines.get(key, '?')}")
    _password(src, name, values, result)
    for key in ("admin_passwd", "approve_passwd"):
        if key in values and values[key][0] in (f"{name}.admin", f"{name}.pass"):
            del values[key]
            result.notes.append(f"{key} is Majordomo's default: not carried over")
    # Check every value; a bad one is reported and left at our default.
    final: dict[str, str] = {}
    for key, (value, where) in values.items():
        if key == "moderator" and value.strip() and "@" not in value:
            value = f"{value.strip()}@{domain}"
        if key in IMPORT_DIRS:
            value = resolve_dir(src.listdir, value)
        try:
            parse_value(key, value)
        except SettingError as exc:
            result.not_mapped.append(f"{where}: {exc}")
            continue
        final[key] = value
        kw = configmap.KEYWORDS.get(key)
        if kw is not None and kw.no_effect and key not in IMPORT_DIRS \
                and not configmap.is_default(kw, value, name):
            result.not_mapped.append(f"{where}: {key} = {value}: accepted, has no effect "
                                     f"here: {kw.no_effect}")
    reading = configmap.Reading(values=dict(final))
    configmap.majordomo_meanings(reading, None)
    final = reading.values
    final.setdefault("maxlength_counts", "body")
    final.setdefault("restrict_post_reply_to", "yes")  # resend let a member's Reply-To post
    result.mapped = sum(1 for k in final if k in configmap.KEYWORDS
                        and (not configmap.KEYWORDS[k].no_effect or k in IMPORT_DIRS))
    return final


def resolve_dir(listdir: Path, value: str) -> str:
    """A directory named in a list config: relative names are under $listdir, where
    Majordomo runs."""
    v = value.strip()
    if not v or v.startswith("/"):
        return v
    return os.path.normpath(listdir / v)


def waiting_posts(work: Path) -> list[tuple[bytes, dt.datetime]]:
    """The posts in a Majordomo digest work directory (numbered files, one message each,
    as `digest -r` writes them), oldest first, with their arrival times."""
    if not work.is_dir():
        return []
    names = sorted((p for p in work.iterdir() if p.name.isdigit() and p.is_file()
                    and not p.is_symlink()), key=lambda p: int(p.name))
    if len(names) > MAX_WAITING_POSTS:
        raise SourceError(f"{work}: more than {MAX_WAITING_POSTS} waiting posts")
    out = []
    for path in names:
        data = path.read_bytes()
        if len(data) > sources.MAX_TEXT:
            raise SourceError(f"{path}: {len(data)} bytes, more than the "
                              f"{sources.MAX_TEXT} read")
        data = data.replace(b"\r\n", b"\n").lstrip(b"\n")
        if data.startswith(b"From "):  # an mbox separator line is not part of the post
            data = data.split(b"\n", 1)[1] if b"\n" in data else b""
        mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
        out.append((data.replace(b"\n", b"\r\n"), mtime.replace(tzinfo=None)))
    return out


def carry_waiting_posts(s, mlist, work: Path, result: ListResult) -> None:
    """Majordomo's posts waiting for the next digest into this list's digest queue (once:
    a post already waiting here is not queued again)."""
    posts = waiting_posts(work)
    if not posts:
        return
    have = set(digest_store.entry_digests(s, mlist))
    added = 0
    for data, when in posts:
        if digest_store.content_digest(data) in have:
            continue
        text = data.replace(b"\r\n", b"\n")
        digest_store.add_entry(s, mlist, data, lines=text.count(b"\n"), size=len(text),
                               queued_at=when)
        have.add(digest_store.content_digest(data))
        added += 1
    result.notes.append(f"{work}: {len(posts)} post(s) waiting for the next digest, "
                        f"{added} queued for {mlist.name}'s next digest")


def copy_archive(src_dir: Path, dest: Path, *, dry_run: bool) -> int:
    """Files of LIST.archive/ under the same names (so `index`/`get` serve them); returns
    how many were (or would be) copied."""
    if not src_dir.is_dir():
        return 0
    copied = seen = 0
    for root, dirs, files in os.walk(src_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fname in sorted(files):
            seen += 1
            if seen > MAX_ARCHIVE_FILES:
                raise SourceError(f"{src_dir}: more than {MAX_ARCHIVE_FILES} files")
            if fname.startswith("."):
                continue
            path = Path(root) / fname
            if path.is_symlink() or not path.is_file():
                continue
            target = dest / path.relative_to(src_dir)
            st = path.stat()
            if target.is_file():
                tst = target.stat()
                if tst.st_size == st.st_size and int(tst.st_mtime) == int(st.st_mtime):
                    continue
            copied += 1
            if dry_run:
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.importing")
            shutil.copy2(path, tmp)
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            os.replace(tmp, target)
    return copied


def add_members(s, list_id: int, members: sources.MemberLines, result: ListResult, *,
                keep_raw: bool, digest: bool = False,
                progress: Callable[[int], None] | None = None) -> list[str]:
    """The list file's members into list `list_id`, counted into `result`; returns the keys
    read (for a digest twin, which needs them)."""
    keys: list[str] = []
    pending: list[member_rows.Row] = []
    invalid: list[tuple[str, str]] = []
    done = 0

    def flush() -> None:
        nonlocal done
        added = member_import.insert_members(s, list_id, pending, digest=digest)
        result.added += added
        result.already += len(pending) - added
        done += len(pending)
        if digest:
            keys.extend(k for _, k, _ in pending)
        pending.clear()
        if progress:
            progress(done + len(invalid))

    for lines in members.blocks():
        rows, bad = member_rows.parse_block(lines, keep_raw=keep_raw)
        pending.extend(rows)
        invalid.extend(bad)
        if len(pending) >= MEMBER_BATCH:
            flush()
    flush()
    result.members = members.lines
    result.invalid = [f"{line}: {why}" for line, why in invalid] + \
        [f"{line}: longer than {sources.MAX_LINE} characters" for line in members.too_long]
    return keys


def import_list(app, src: Source, name: str, *, dry_run: bool,
                progress: Callable[[str, int], None] | None = None,
                hashes: Hashes | None = None) -> ListResult:
    cfg = app.config
    lname = name.lower()
    result = ListResult(lname)
    try:
        settings = build_settings(src, name, cfg.domain, result)
        with app.store.session() as s:
            member_import.prepare(s)
            mlist = repo.get_list(s, lname)
            if mlist is None:
                owners = _owners(src, name, cfg.domain, result)
                mlist = repo.create_list(s, lname, owners,
                                         reserved=RESERVED)
                result.created = True
            own = hashes is None
            hashes = hashes or Hashes()
            try:
                secrets = {k: hashes.get(v) for k, v in settings.items() if SETTINGS[k].secret}
            finally:
                if own:
                    hashes.close()
            for key, value in settings.items():
                try:
                    if key in secrets:
                        setattr(mlist, SETTINGS[key].attr, secrets[key])
                        continue
                    repo.set_setting(s, mlist, key, value)
                except SettingError as exc:
                    result.not_mapped.append(f"{key}: {exc}")
            for kind in ("info", "intro"):
                path = src.listdir / f"{name}.{kind}"
                if path.is_file():
                    setattr(mlist, kind, sources.read_text(path).rstrip("\n"))
                    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc)
                    setattr(mlist, f"{kind}_updated_at", mtime.replace(tzinfo=None))
            members = sources.MemberLines(src.listdir / name)
            add_members(s, mlist.id, members, result, keep_raw=mlist.strip is False,
                        progress=(lambda n: progress(lname, n)) if progress else None)
            if dry_run:
                s.rollback()
        archive = Path(settings["archive_dir"]) if settings.get("archive_dir") \
            else src.archive_of(name)
        dest = Path(cfg.data_dir) / "archive" / lname
        result.archive_files = copy_archive(archive, dest, dry_run=dry_run)
        if settings.get("digest_archive"):
            result.archive_files += copy_archive(Path(settings["digest_archive"]),
                                                 dest / "digest", dry_run=dry_run)
    except (SourceError, repo.ListError, OSError) as exc:
        result.error = str(exc)
    return result


DIGEST_KEYS = ("digest_issue", "digest_maxdays", "digest_maxlines", "digest_name",
               "digest_rm_footer", "digest_rm_fronter", "digest_volume")


def import_twin(app, src: Source, name: str, base: str, *, dry_run: bool,
                progress: Callable[[str, int], None] | None = None) -> ListResult:
    """LIST-digest (Majordomo's digest list) into LIST: its members in digest mode, its
    digest_* settings on LIST; its other settings are reported (LIST's apply)."""
    result = ListResult(name.lower(), twin_of=base)
    domain = app.config.domain
    try:
        values: dict[str, str] = {}
        dirs: dict[str, str] = {}
        config_path = src.listdir / f"{name}.config"
        if config_path.is_file():
            reading = configmap.read(sources.read_text(config_path), name, domain=domain,
                                     where=f"{name}.config")
            for err in reading.errors:
                result.not_mapped.append(f"{name}.config: {err}")
            for key, value in reading.values.items():
                kw = configmap.KEYWORDS.get(key)
                if key in DIGEST_KEYS:
                    values[key] = value
                elif key in IMPORT_DIRS and key != "archive_dir":
                    if value.strip():
                        dirs[key] = resolve_dir(src.listdir, value)
                elif kw is not None and not configmap.is_default(kw, value, name) \
                        and not (key == "reply_to" and value == base) \
                        and not (key == "sender" and value == f"owner-{name}"):
                    result.not_mapped.append(
                        f"{name}.config line {reading.lines.get(key)}: {key} = {value}: "
                        f"the digest goes out with list {base}'s settings")
        result.mapped = len(values) + len(dirs)
        work = Path(dirs["digest_work_dir"]) if dirs.get("digest_work_dir") else None
        if work is None and src.cf.values.get("digest_work_dir"):
            work = Path(src.cf.values["digest_work_dir"]) / name.lower()
        members = sources.MemberLines(src.listdir / name)
        with app.store.session() as s:
            member_import.prepare(s)
            mlist = repo.get_list(s, base)
            if mlist is None:  # only in a dry run, where LIST itself was rolled back
                result.members = sum(1 for _ in members)
                result.added = result.members
                return result
            for key, value in values.items():
                repo.set_setting(s, mlist, key, value)
            keys = add_members(s, mlist.id, members, result, keep_raw=mlist.strip is False,
                               digest=True,
                               progress=(lambda n: progress(name, n)) if progress else None)
            both = member_import.digest_off(s, mlist.id, keys)
            if both:
                result.notes.append(f"{len(both)} address(es) on both {base} and {name}: "
                                    f"they keep receiving single messages")
            if work is not None:
                carry_waiting_posts(s, mlist, work, result)
            if dry_run:
                s.rollback()
        if dirs.get("digest_archive"):
            result.archive_files = copy_archive(
                Path(dirs["digest_archive"]),
                Path(app.config.data_dir) / "archive" / base / "digest", dry_run=dry_run)
    except (SourceError, repo.ListError, SettingError, OSError) as exc:
        result.error = str(exc)
    return result


def run(app, src: Source, *, only: list[str] | None = None, dry_run: bool = False,
        progress: Callable[[str, int], None] | None = None,
        list_done: Callable[[], None] | None = None) -> Report:
    report = Report(dry_run=dry_run)
    report.site = site_findings(src, app.config.domain)
    report.site += sitecf.write_site_patterns(
        app.config, {k: sources.cf_patterns(src.cf.blocks.get(k, [])) for k in sitecf.KEYS},
        dry_run=dry_run)
    names = sources.list_names(src.listdir)
    if only:
        wanted = {n.lower() for n in only}
        missing = wanted - {n.lower() for n in names}
        for n in sorted(missing):
            report.lists.append(ListResult(n, error=f"no list file {src.listdir / n}"))
        names = [n for n in names if n.lower() in wanted]
    lower = {n.lower() for n in sources.list_names(src.listdir)}
    hashes = Hashes()
    try:
        for name in names:  # start hashing the passwords now: they are ready when needed
            if not _twin_base(name, lower):
                for secret in _secrets(src, name, app.config.domain):
                    hashes.prefetch(secret)
        for name in names:
            report.lists.append(_import_one(app, src, name, lower, dry_run=dry_run,
                                            progress=progress, hashes=hashes))
            if list_done:
                list_done()
    finally:
        hashes.close()
    return report


def _twin_base(name: str, lower: set[str]) -> str:
    base = name[:-7].lower() if name.lower().endswith("-digest") else ""
    return base if base and base in lower else ""


def _secrets(src: Source, name: str, domain: str) -> list[str]:
    try:
        settings = build_settings(src, name, domain, ListResult(name))
    except (SourceError, OSError):
        return []
    return [v for k, v in settings.items() if SETTINGS[k].secret]


def _import_one(app, src: Source, name: str, lower: set[str], *, dry_run: bool,
                progress, hashes: Hashes) -> ListResult:
    base = _twin_base(name, lower)
    if base:
        result = import_twin(app, src, name, base, dry_run=dry_run, progress=progress)
    else:
        result = import_list(app, src, name, dry_run=dry_run, progress=progress,
                             hashes=hashes)
    log.info("import-majordomo list=%s added=%d already=%d invalid=%d%s", result.name,
             result.added, result.already, len(result.invalid),
             " (dry run)" if dry_run else "")
    return result
