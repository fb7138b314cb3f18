"""The Jinja2 environment of the staff page (web/templates/*.html.j2, autoescaped) and `render()`,
which gives every page the staff member, the CSRF token and the messages left by the last action."""
from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.templating import Jinja2Templates

from models.labels import COUNT_LABELS, STATUS_LABELS, status_label
from web import presentation
from web.csrf import FIELD_NAME, csrf_token

TEMPLATES = Path(__file__).parent / "templates"
FLASH_KEY = "flash"

_environment = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                           trim_blocks=True, lstrip_blocks=True)
_environment.filters.update(beijing=presentation.beijing, chinese_datetime=presentation.chinese_datetime,
                            status_label=status_label, status_tone=presentation.status_tone,
                            event_label=presentation.event_label, event_details=presentation.event_details,
                            file_type=presentation.file_type)
_environment.globals.update(STATUS_LABELS=STATUS_LABELS, COUNT_LABELS=COUNT_LABELS, csrf_field=FIELD_NAME,
                            status_options=presentation.status_options)
templates = Jinja2Templates(env=_environment)


def flash(request: Request, text: str, kind: str = "ok") -> None:
    """A message shown once, on the next page (after the redirect that follows an action)."""
    request.session[FLASH_KEY] = [*request.session.get(FLASH_KEY, []), {"kind": kind, "text": text}]


def render(request: Request, template: str, status_code: int = 200, headers: dict | None = None, **context):
    messages = request.session.pop(FLASH_KEY, []) if FLASH_KEY in request.session else []
    context.setdefault("staff", request.session.get("staff"))
    return templates.TemplateResponse(request, template, {**context, "csrf_token": csrf_token(request),
                                                           "messages": messages},
                                      status_code=status_code, headers=headers)
