"""CSRF protection: one random token per browser session, put into every form as a hidden field and
checked on every POST (403 when missing or wrong). The session cookie is signed and HttpOnly, so
another site can neither read the token nor forge it."""
from __future__ import annotations

import hmac
import secrets

from fastapi import HTTPException, Request

SESSION_KEY = "csrf"
FIELD_NAME = "csrf_token"
HEADER_NAME = "X-CSRF-Token"


def csrf_token(request: Request) -> str:
    """The session's token, made on first use."""
    token = request.session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_KEY] = token
    return token


def renew_csrf_token(request: Request) -> str:
    """A fresh token (after login: a token seen before login is not reused)."""
    request.session[SESSION_KEY] = secrets.token_urlsafe(32)
    return request.session[SESSION_KEY]


def check_csrf(request: Request, submitted: str | None) -> None:
    expected = request.session.get(SESSION_KEY)
    submitted = submitted or request.headers.get(HEADER_NAME) or ""
    if not expected or not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise HTTPException(status_code=403, detail="页面已过期或请求来源不明（安全校验未通过）。请刷新页面后重新操作。")
