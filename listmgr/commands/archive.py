"""index LIST and get LIST FILE over the list's archive directory.

The archive is `<data_dir>/archive/<LIST>/` (monthly mbox files `LIST.YYYYMM`, written by
the posting side). `get` resolves the requested path and checks that it stays inside that
directory; anything else is rejected, never rewritten (reference 8.8).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from listmgr.commands import outgoing
from listmgr.commands.context import Context
from listmgr.commands.registry import command
from listmgr.store.settings import ListSettings


def archive_dir(ctx: Context, mlist: ListSettings) -> Path:
    return Path(ctx.app.config.data_dir) / "archive" / mlist.name


def resolve_file(base: Path, name: str) -> Path | None:
    """The file `name` inside `base`, or None: no absolute paths, no dot files, no `..`,
    no way out through symlinks, regular files only."""
    if not name or name.startswith(("/", ".")) or ".." in name or "\0" in name \
            or "\\" in name:
        return None
    try:
        root = base.resolve(strict=True)
        target = (root / name).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):
        return None
    if not target.is_relative_to(root) or target == root or not target.is_file():
        return None
    return target


def _allowed(ctx: Context, op: str, mlist: ListSettings, article: str) -> bool:
    if ctx.approved:
        return True
    if getattr(mlist, f"{op}_access") == "closed":
        ctx.say("command_disabled")
        return False
    if not ctx.access(op, mlist):
        ctx.say("private_list", list=mlist.name, what=article)
        return False
    return True


@command("index")
def do_index(ctx: Context, args: list[str], line=None) -> None:
    raw, mlist, _rest = ctx.get_listname("index", 0, args)
    if mlist is None:
        ctx.squawk("unknown_list", cmd="index", list=raw)
        return
    if not _allowed(ctx, "index", mlist, "an 'index'"):
        return
    base = archive_dir(ctx, mlist)
    files = []
    if base.is_dir():
        for p in sorted(base.iterdir()):
            if p.is_file() and not p.name.startswith("."):
                st = p.stat()
                files.append((p.name, st.st_size, dt.datetime.fromtimestamp(
                    st.st_mtime, dt.timezone.utc).strftime("%Y-%m-%d %H:%M")))
    if not files:
        ctx.say("no_files", list=mlist.name)
        return
    ctx.say("index_header", list=mlist.name)
    for name, size, when in files:
        ctx.out.lines.append(ctx.t("index_row", file=name, size=size, when=when))
    ctx.out.lines.append("")


@command("get")
def do_get(ctx: Context, args: list[str], line=None) -> None:
    raw, mlist, rest = ctx.get_listname("get", 1, args)
    filename = rest[0] if rest else ""
    if not filename:
        ctx.squawk("which_file", cmd="get")
    if mlist is None:
        ctx.squawk("unknown_list", cmd="get", list=raw)
        return
    if not filename:
        return
    if not _allowed(ctx, "get", mlist, "a 'get'"):
        return
    path = resolve_file(archive_dir(ctx, mlist), filename)
    if path is None:
        ctx.squawk("invalid_file", cmd="get", file=filename, list=mlist.name)
        return
    limit = ctx.app.config.smtp.max_message_size
    if path.stat().st_size > limit:
        ctx.say("file_too_large", file=filename, list=mlist.name, limit=limit)
        return
    body = path.read_bytes().decode("utf-8", errors="replace")
    outgoing.send(ctx, to=ctx.req.address, body=body,
                  subject=ctx.t("subject_file", list=mlist.name, file=filename))
    ctx.say("file_being_sent", list=mlist.name, file=filename)
