"""The staff page: a small server-rendered site (FastAPI + Jinja2, plain CSS, no JavaScript needed)
where the office follows a campaign, reads each unit's replies, downloads the documents and acts.

    create_app(settings=None) -> FastAPI      the application (tests use it with a TestClient)
    serve(host=None, port=None)               `noticeflow web`: uvicorn on 127.0.0.1:8000 by default

Sessions are signed cookies whose key is derived from NOTICEFLOW_SECRET (models.tokens), so they
survive a restart; every page and download needs a login, every POST a CSRF token."""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware
from starlette.responses import PlainTextResponse

from mail.attachments import DEFAULT_LIMITS
from models import tokens
from models.settings import Settings, get_settings
from web import auth, routes_actions, routes_downloads, routes_pages
from web.templating import render

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
SESSION_COOKIE = "noticeflow_staff"
SESSION_HOURS = 10                      # a working day; then log in again
STATIC_DIR = Path(__file__).parent / "static"
# An upload may be as large as one emailed attachment; the rest of a form is small.
MAX_REQUEST_BYTES = DEFAULT_LIMITS.max_attachment_bytes + 1024 * 1024
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"content-security-policy",
     b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="noticeflow 工作台", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.include_router(auth.router)
    app.include_router(routes_pages.router)
    app.include_router(routes_downloads.router)
    app.include_router(routes_actions.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(auth.LoginRequired, auth.login_required_response)
    app.add_exception_handler(StarletteHTTPException, _error_page)
    app.add_exception_handler(RequestValidationError, _malformed)
    app.add_middleware(SessionMiddleware, secret_key=tokens.derived_key("staff-sessions").hex(),
                       session_cookie=SESSION_COOKIE, max_age=SESSION_HOURS * 3600, same_site="lax")
    app.add_middleware(SecurityHeaders)
    app.add_middleware(BodyLimit, max_bytes=MAX_REQUEST_BYTES)
    return app


def serve(host: str | None = None, port: int | None = None) -> None:
    """Run the staff page until interrupted (the `noticeflow web` command)."""
    import uvicorn

    import flows.campaign  # noqa: F401  (loaded now, so the first page that needs a flow is not slow)
    import flows.summarize  # noqa: F401

    host, port = host or DEFAULT_HOST, port or DEFAULT_PORT
    log.info("staff page on http://%s:%s/", host, port)
    uvicorn.run(create_app(), host=host, port=port, log_level="info", proxy_headers=False)


def _malformed(request: Request, _error: RequestValidationError):
    """An id in the address that is not a number names nothing: the same page as any unknown address."""
    return _error_page(request, HTTPException(status_code=404 if request.method == "GET" else 400))


def _error_page(request: Request, error: StarletteHTTPException):
    if error.status_code in (404, 403, 405, 400):
        titles = {404: "页面不存在", 403: "操作未被允许", 405: "操作方式不正确", 400: "请求有误"}
        detail = error.detail if isinstance(error.detail, str) and not error.detail.isascii() else ""
        return render(request, "error.html.j2", status_code=error.status_code, title=titles[error.status_code],
                      detail=detail, headers=getattr(error, "headers", None))
    return PlainTextResponse(str(error.detail), status_code=error.status_code, headers=getattr(error, "headers", None))


class SecurityHeaders:
    """No framing, no sniffing, no scripts or styles from elsewhere; pages and downloads not cached."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"
                           or static]
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


class BodyLimit:
    """Refuses (413) a request body larger than `max_bytes`, by its Content-Length or while it is read,
    so an oversized upload is never spooled to disk whole."""

    def __init__(self, app, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await PlainTextResponse(_too_large_text(), status_code=413)(scope, receive, send)
            return
        seen = 0

        async def counting_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:   # a body sent without a length: stop reading it here
                    raise HTTPException(status_code=413, detail=_too_large_text())
            return message

        await self.app(scope, counting_receive, send)


def _too_large_text() -> str:
    limit = DEFAULT_LIMITS.max_attachment_bytes // (1024 * 1024)
    return f"上传的文件过大（超过 {limit} MB），未接收。请压缩或删除多余内容后重新上传。"
