"""jinja2 over listmgr.templates: every reply, notice and DSN text comes from a template.

`render(name, language, **context)` looks in templates/<language>/ then templates/en/.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import jinja2


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    root = resources.files("listmgr.templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        autoescape=False,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, language: str = "en", **context) -> str:
    env = environment()
    candidates: list[str | jinja2.Template] = [f"{language}/{name}"] \
        if language and language != "en" else []
    candidates.append(f"en/{name}")
    return env.get_or_select_template(candidates).render(**context)
