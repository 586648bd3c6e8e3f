"""`listmgr postfix-maps`: every address we receive mail for, as a Postfix lookup table.

For sites that prefer a `postmap`ped file to the socketmap server (`[maps] listen`): one
line per address, `ADDRESS OK`, to use as `relay_recipient_maps = hash:FILE` after
`postmap FILE`. Rerun it (and postmap) after creating or removing a list or a user.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from listmgr.cli import CLIError
from listmgr.cli.common import session
from listmgr.durable import fsync_dir, write_all
from listmgr.maps.addresses import all_addresses


def cmd_postfix_maps(args) -> int:
    with session(args) as (app, s):
        lines = [f"{a} OK\n" for a in all_addresses(s, app.config.local_domains)]
    data = "".join(lines).encode()
    if not args.output or args.output == "-":
        sys.stdout.write(data.decode())
        return 0
    target = Path(args.output)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    except OSError as exc:
        raise CLIError(f"cannot write {target}: {exc.strerror}") from None
    try:
        write_all(fd, data)
        os.fchmod(fd, 0o644)
        os.close(fd)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except OSError as exc:
        os.unlink(tmp)
        raise CLIError(f"cannot write {target}: {exc.strerror}") from None
    print(f"wrote {len(lines)} addresses to {target} (now run: postmap {target})",
          file=sys.stderr)
    return 0


def register(sub) -> None:
    p = sub.add_parser("postfix-maps", help="print every address served here as a Postfix "
                       "relay_recipient_maps table (ADDRESS OK)")
    p.add_argument("--output", "-o", metavar="FILE",
                   help="write the table to FILE (atomically) instead of standard output")
    p.set_defaults(func=cmd_postfix_maps)
