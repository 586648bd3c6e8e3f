"""HTML pages: jinja2 with autoescape over templates/<lang>/web/, texts from each language's
messages.toml, and the per-session language (en or ja)."""

from __future__ import annotations

import tomllib
from functools import lru_cache
from importlib import resources
from typing import Any

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse

from listmgr.web.security import csrf_token

LANGUAGES = ("en", "ja")


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    root = resources.files("listmgr.templates")
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(root)),
        autoescape=True,  # every page, whatever its file name
        undefined=jinja2.Undefined,  # a missing form error is simply not shown
        trim_blocks=True,
        lstrip_blocks=True,
    )


@lru_cache(maxsize=None)
def catalog(lang: str) -> dict[str, str]:
    path = resources.files("listmgr.templates").joinpath(lang, "web", "messages.toml")
    return tomllib.loads(path.read_text(encoding="utf-8"))


def translate(lang: str, key: str, **kw: Any) -> str:
    text = catalog(lang).get(key)
    if text is None:
        text = catalog("en")[key]
    return text.format(**kw) if kw else text


def language(request: Request) -> str:
    lang = request.session.get("lang")
    if lang in LANGUAGES:
        return lang
    return request.app.state.web.config.language


def back_path(request: Request) -> str:
    """Where the language switch returns to: this page, or for a form's answer, the page
    that holds the form."""
    path = request.url.path
    if request.method != "GET":
        path = path.rsplit("/", 1)[0] + "/"
    return path


def render(request: Request, _template: str, /, *, status: int = 200, session: bool = True,
           **ctx: Any) -> HTMLResponse:
    """A page; with session=False it sets no cookie (and shows no language switch)."""
    lang = language(request)
    env = environment()
    template = env.get_or_select_template([f"{lang}/web/{_template}", f"en/web/{_template}"])
    flash = request.session.pop("flash", None) if session and "flash" in request.session \
        else None
    html = template.render(
        t=lambda key, **kw: translate(lang, key, **kw),
        say=lambda text: translate(lang, text) if text in catalog("en") else text,
        lang=lang, csrf=csrf_token(request) if session else "", path=back_path(request),
        flash=flash if isinstance(flash, str) else None, **ctx)
    return HTMLResponse(html, status_code=status)


def flash(request: Request, key: str) -> None:
    """A message shown once on the next page (a catalogue key)."""
    request.session["flash"] = key
