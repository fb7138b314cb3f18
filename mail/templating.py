"""Every email the program sends is rendered here from templates/email/; none is a string in code.
A template `NAME` has `NAME.subject.j2`, `NAME.txt.j2` and optionally `NAME.html.j2`."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models.settings import TEMPLATES_DIR

EMAIL_TEMPLATES_DIR = TEMPLATES_DIR / "email"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str | None


@lru_cache
def _environment() -> Environment:
    # StrictUndefined: a misspelt variable fails loudly instead of mailing a blank to every unit.
    return Environment(loader=FileSystemLoader(EMAIL_TEMPLATES_DIR), undefined=StrictUndefined,
                       autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
                       keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)


def render_subject(name: str, **context) -> str:
    return " ".join(_environment().get_template(f"{name}.subject.j2").render(**context).split())


def render_email(name: str, **context) -> RenderedEmail:
    env = _environment()
    subject = render_subject(name, **context)
    text = env.get_template(f"{name}.txt.j2").render(**context)
    html_path = EMAIL_TEMPLATES_DIR / f"{name}.html.j2"
    html = env.get_template(f"{name}.html.j2").render(**context) if html_path.exists() else None
    return RenderedEmail(subject=subject, text=text, html=html)
