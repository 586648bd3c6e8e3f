"""jinja2 over listmgr.templates: every reply, notice and DSN text comes from a template.

`render(name, language, **context)` looks in templates/<language>/ then templates/en/.
Two filters say in a template's language what the code passes as plain values:
`{{ seconds | duration("ja") }}` ("7日") and `{{ reason | localise("ja", "post_reasons") }}`
(the English one-line reasons of the code, through templates/<language>/phrases.toml).
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from importlib import resources

import jinja2

from listmgr.config import format_duration


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    root = resources.files("listmgr.templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["duration"] = lambda seconds, lang="en": format_duration(float(seconds), lang)
    env.filters["localise"] = localise
    return env


@lru_cache(maxsize=8)
def _phrases(lang: str) -> dict[str, list[tuple[re.Pattern[str], str]]]:
    path = resources.files("listmgr.templates").joinpath(lang, "phrases.toml")
    if not path.is_file():
        return {}
    table = tomllib.loads(path.read_text(encoding="utf-8"))
    return {name: [(re.compile(e["match"], re.S), e["say"]) for e in entries]
            for name, entries in table.items()}


def localise(text: object, lang: str, table: str) -> str:
    """`text` (an English one-liner from the code) in `lang`, when phrases.toml has it."""
    value = str(text)
    for pattern, say in _phrases(lang).get(table, []):
        m = pattern.fullmatch(value)
        if m:
            # a group named `detail` is what a setting must look like: said in turn
            parts = {k: localise(v, lang, "setting_errors") if k == "detail" else v
                     for k, v in m.groupdict().items()}
            return say.format(**parts)
    return value


def render(name: str, language: str = "en", **context) -> str:
    env = environment()
    candidates: list[str | jinja2.Template] = [f"{language}/{name}"] \
        if language and language != "en" else []
    candidates.append(f"en/{name}")
    return env.get_or_select_template(candidates).render(**context)
