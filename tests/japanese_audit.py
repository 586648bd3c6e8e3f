"""What "Japanese throughout" means for a mail body, as a check tests can run.

`english_left(text, data=...)` returns the English words left in a text meant to be Japanese,
after taking out what is English on purpose: addresses, URLs, keys, file and list names,
the command words a reader types, Majordomo's machine-read markers (`**** `, `>>>> `, `END
OF COMMANDS`, the `APPROVE LIST` / `BOUNCE LIST@domain: REASON` Subjects), the names of
settings and the `listmgr` command lines an owner runs on the server, and `data`: text
quoted from elsewhere (a post's subject, a remote server's reply, an echoed command line).
"""

from __future__ import annotations

import re

# Words a reader types or a program reads, kept as they are in every language.
ALLOWED = {
    # Majordomo commands and their option words
    "subscribe", "unsubscribe", "auth", "accept", "reject", "approve", "which", "who",
    "info", "intro", "index", "get", "lists", "help", "end", "set", "mail", "nomail",
    "digest", "nodigest", "passwd", "newinfo", "newintro", "config", "newconfig",
    "writeconfig", "mkdigest", "newlist", "rmlist", "eof",
    # placeholders replaced in commands a reader copies
    "password", "site-password", "new-password", "admin",
    # names: of this software, of what it is compatible with
    "majordomo", "listmgr", "listserv",
    # machine-read Subject and transcript markers (Majordomo's, owners' filters)
    "bounce", "bounces", "complaint", "subscribe", "approve", "abort", "of", "commands",
    # header names a reader writes or looks for; the time zone; standards
    "subject", "approved", "from", "utc", "gmt", "rfc", "mime", "dsn",
    # access modes shown as the setting values they are (open / list / closed)
    "closed", "open",
    # Returned-mail Subject wording (the hosting company's help page quotes it)
}

# Taken out first, from the text and from the quoted data alike.
_FIRST = [
    re.compile(r"https?://\S+"),
    re.compile(r"<[^<>\s]*@[^<>\s]*>"),                      # <address>
    re.compile(r"[\w.+=-]*@[\w.-]*"),                        # addresses, user@host, taro@
    re.compile(r"\b[0-9a-f]{16,}\b"),                        # keys
]
_STRIP = [
    re.compile(r"\"listmgr [^\"]*\""),                      # server command lines
    re.compile(r"\b[\w-]+(\.[\w-]+)+"),                      # host.corp.com, LIST.config
    re.compile(r"\b(?:X|List)-[\w-]+"),                       # header names (X-Loop, List-Id)
    re.compile(r"\b[IVX]+\b"),                               # section numbers of help
    re.compile(r"\b\w*_\w*\b"),                              # setting names
    re.compile(r"--[a-z-]+"),                                # command-line options
    re.compile(r"\bV\d+\b"),                                 # digest volume V3
]

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*[A-Za-z]|[A-Za-z]")


def english_left(text: str, *, data: tuple[str, ...] | list[str] = (),
                 allowed: set[str] | frozenset[str] = frozenset()) -> list[str]:
    """English words (two letters or more) not on the allow-list; [] when all is well."""
    def first(t: str) -> str:
        for pat in _FIRST:
            t = pat.sub(" ", t)
        return t
    text = first(text)
    for d in sorted((first(d) for d in data if d), key=len, reverse=True):
        if d.strip():  # whole words only: "digest" quoted leaves "nodigest" alone
            text = re.sub(r"(?<!\w)" + re.escape(d.strip()) + r"(?!\w)", " ", text)
    for pat in _STRIP:
        text = pat.sub(" ", text)
    ok = ALLOWED | {w.lower() for w in allowed}
    return [w for w in _WORD.findall(text) if len(w) > 1 and w.lower() not in ok]


def assert_japanese(text: str, *, what: str, data=(), allowed=frozenset(),
                    some_japanese: bool = True) -> None:
    left = english_left(text, data=data, allowed=allowed)
    assert not left, f"{what}: English left {sorted(set(left))} in:\n{text}"
    assert not some_japanese or re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text), f"{what}: no Japanese:\n{text}"
