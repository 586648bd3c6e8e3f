"""`listmgr import-majordomo`: move a Majordomo 1.94.5 installation's lists in one command."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from listmgr.cli import CLIError
from listmgr.cli.common import open_app
from listmgr.majordomo import importer
from listmgr.majordomo.sources import SourceError


class _Bar:
    """A progress line on a terminal (stderr), redrawn a few times a second at most."""

    def __init__(self, total_lists: int):
        self.tty = sys.stderr.isatty()
        self.total = total_lists
        self.done_lists = 0
        self.last = 0.0

    def members(self, name: str, n: int) -> None:
        now = time.monotonic()
        if self.tty and now - self.last > 0.2:
            self.last = now
            width = 30
            filled = int(width * self.done_lists / max(self.total, 1))
            bar = "#" * filled + "-" * (width - filled)
            sys.stderr.write(f"\r[{bar}] {self.done_lists}/{self.total} lists  "
                             f"{name}: {n:,} members\033[K")
            sys.stderr.flush()

    def list_done(self) -> None:
        self.done_lists += 1
        self.members("", 0)

    def close(self) -> None:
        if self.tty and self.last:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()


def print_report(report: importer.Report, out=None) -> None:
    out = out or sys.stdout
    head = ("list", "members", "added", "already", "invalid", "mapped", "not mapped",
            "archive")
    rows = []
    for r in report.lists:
        rows.append((r.name + (f" (digest of {r.twin_of})" if r.twin_of else ""),
                     str(r.members), str(r.added), str(r.already), str(len(r.invalid)),
                     str(r.mapped), str(len(r.not_mapped)), str(r.archive_files)))
    totals = ("total", *(str(sum(int(row[i]) for row in rows)) for i in range(1, 8)))
    widths = [max(len(x[i]) for x in [head, *rows, totals]) for i in range(8)]

    def fmt(row) -> str:
        return "  ".join(c.ljust(widths[0]) if i == 0 else c.rjust(widths[i])
                         for i, c in enumerate(row))
    print(("Dry run: nothing was changed.\n" if report.dry_run else "") + fmt(head), file=out)
    print("  ".join("-" * w for w in widths), file=out)
    for row in rows:
        print(fmt(row), file=out)
    print(fmt(totals), file=out)
    if report.site:
        print("\nSite:", file=out)
        for line in report.site:
            print(f"  {line}", file=out)
    for r in report.lists:
        if not (r.error or r.not_mapped or r.notes or r.invalid):
            continue
        print(f"\n{r.name}:", file=out)
        if r.error:
            print(f"  FAILED: {r.error}", file=out)
        for line in r.not_mapped:
            print(f"  not mapped: {line}", file=out)
        for line in r.notes:
            print(f"  note: {line}", file=out)
        for line in r.invalid[:20]:
            print(f"  invalid member: {line}", file=out)
        if len(r.invalid) > 20:
            print(f"  ... and {len(r.invalid) - 20} more invalid members", file=out)


def cmd_import(args) -> int:
    try:
        src = importer.load_source(Path(args.listdir),
                                   Path(args.aliases) if args.aliases else None,
                                   Path(args.cf) if args.cf else None)
    except SourceError as exc:
        raise CLIError(str(exc)) from None
    only = [n.strip() for n in args.lists.split(",") if n.strip()] if args.lists else None
    app = open_app(args)
    try:
        names = len(only) if only else len(importer.sources.list_names(src.listdir))
        bar = _Bar(names)
        try:
            report = importer.run(app, src, only=only, dry_run=args.dry_run,
                                  progress=bar.members, list_done=bar.list_done)
        except SourceError as exc:
            raise CLIError(str(exc)) from None
        finally:
            bar.close()
    finally:
        app.store.dispose()
    print_report(report)
    return 1 if any(r.error for r in report.lists) else 0


def register(sub) -> None:
    p = sub.add_parser("import-majordomo", help="import a Majordomo 1.94.5 list directory")
    p.add_argument("--listdir", required=True, metavar="DIR",
                   help="Majordomo's $listdir (LIST, LIST.config, LIST.info, ...)")
    p.add_argument("--aliases", metavar="FILE",
                   help="the aliases file (owners, resend options)")
    p.add_argument("--cf", metavar="FILE", help="majordomo.cf (site values)")
    p.add_argument("--lists", metavar="A,B", help="import only these lists")
    p.add_argument("--dry-run", action="store_true",
                   help="read and report everything, change nothing")
    p.set_defaults(func=cmd_import)
