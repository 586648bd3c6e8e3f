"""Reply texts: short strings are jinja2 macros in templates/<lang>/commands/messages.txt,
long texts (help, confirmations, notices) are whole templates beside it."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from listmgr.render import environment, localise, render

__all__ = ["localise", "msg", "text"]


@lru_cache(maxsize=8)
def _module(lang: str) -> Any:
    env = environment()
    return env.get_template(f"{lang}/commands/messages.txt").module


def msg(lang: str, name: str, **kw: Any) -> str:
    """One short text by name, in `lang` (falling back to English)."""
    mod = None
    if lang and lang != "en":
        try:
            mod = _module(lang)
        except Exception:  # no messages file for that language
            mod = None
    if mod is None or not hasattr(mod, name):
        mod = _module("en")
    return str(getattr(mod, name)(**kw))


def text(name: str, lang: str, **kw: Any) -> str:
    """A long text: templates/<lang>/commands/<name>.txt."""
    return render(f"commands/{name}.txt", lang, **kw)
