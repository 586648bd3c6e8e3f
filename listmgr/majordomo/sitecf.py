"""majordomo.cf's site-wide taboo patterns into listmgr.toml's [posting] section.

`$global_taboo_headers` / `$global_taboo_body` have the same form and meaning as
`[posting] global_taboo_headers` / `global_taboo_body` (Majordomo's `/re/flags`, checked
on every list), so they are written there. The file is changed only by adding the keys
(after `[posting]`, or in a new `[posting]` section): a key the file already sets is left
as it is and reported. The new text must load as a configuration before it replaces the
old one (written beside it, fsynced, renamed over it); `serve` reads it when it starts.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

from listmgr.config import Config, ConfigError, from_mapping

KEYS = ("global_taboo_headers", "global_taboo_body")
_POSTING = re.compile(r"(?m)^[ \t]*\[posting\][ \t]*(#.*)?$")


def _toml_string(text: str) -> str:
    if "'" not in text and "\n" not in text:
        return f"'{text}'"  # a literal string: backslashes stay as they are
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def with_keys(text: str, values: dict[str, list[str]]) -> str:
    """`text` (a listmgr.toml) with `values` added to its [posting] section."""
    block = "".join(f"{key} = [\n" + "".join(f"    {_toml_string(p)},\n" for p in pats)
                    + "]\n" for key, pats in values.items())
    m = _POSTING.search(text)
    if m is None:
        return text + ("" if text.endswith("\n") or not text else "\n") + "\n[posting]\n" \
            + block
    cut = m.end() + 1 if m.end() < len(text) else m.end()
    head = text[:cut] if text[:cut].endswith("\n") else text[:cut] + "\n"
    return head + block + text[cut:]


def write_site_patterns(cfg: Config, patterns: dict[str, list[str]], *,
                        dry_run: bool) -> list[str]:
    """Write majordomo.cf's taboo patterns (key -> /re/flags items) into the configuration
    file; returns one report line a key."""
    out: list[str] = []
    todo: dict[str, list[str]] = {}
    for key, pats in patterns.items():
        if not pats:
            continue
        if tuple(getattr(cfg.posting, key)) == tuple(pats):
            out.append(f"majordomo.cf ${key}: {len(pats)} pattern(s), already [posting] {key}")
            continue
        todo[key] = pats
    if not todo:
        return out
    path = Path(cfg.source)
    if not path.is_file():
        return out + [f"majordomo.cf ${k}: {len(p)} pattern(s) not written: no listmgr.toml "
                      f"in use (give --config); set [posting] {k}" for k, p in todo.items()]
    text = path.read_text(encoding="utf-8")
    posting = tomllib.loads(text).get("posting", {})
    for key in list(todo):
        if key in posting:
            out.append(f"majordomo.cf ${key}: {len(todo[key])} pattern(s) not written: "
                       f"{path} already sets [posting] {key}; merge them by hand")
            del todo[key]
    if not todo:
        return out
    new = with_keys(text, todo)
    try:
        from_mapping(tomllib.loads(new), str(path))
    except (ConfigError, tomllib.TOMLDecodeError) as exc:
        return out + [f"majordomo.cf ${k}: not written: {exc}" for k in todo]
    if not dry_run:
        tmp = path.with_name(f".{path.name}.importing")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(new)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    verb = "would be written" if dry_run else "written"
    out += [f"majordomo.cf ${k}: {len(p)} pattern(s) {verb} to {path} [posting] {k} "
            f"(in effect when serve starts)" for k, p in todo.items()]
    return out
