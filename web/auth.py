"""Logging in and out, and the checks every page, download and action goes through.

A login puts the staff member's name into the signed session cookie (after a fresh session and a
fresh CSRF token: nothing from before the login is kept). Every request checks that the account
still exists, so removing an account ends its sessions. Without a login, a page or download
(GET) is redirected to the login page and comes back after it; any other request gets 401."""
from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from models.db import session_scope
from models.staff import find_staff, verify_staff
from web.csrf import check_csrf, renew_csrf_token
from web.templating import render

log = logging.getLogger(__name__)

SESSION_STAFF = "staff"
LOGIN_PATH = "/login"

router = APIRouter()


class LoginRequired(Exception):
    """Raised by the dependencies below; answered by `login_required_response`."""


def current_staff(request: Request) -> str | None:
    name = request.session.get(SESSION_STAFF)
    if not name:
        return None
    with session_scope() as session:
        if find_staff(session, name) is None:
            request.session.clear()
            return None
    return name


def require_staff(request: Request) -> str:
    """The logged-in staff member's name (pages and downloads)."""
    name = current_staff(request)
    if name is None:
        raise LoginRequired()
    return name


def acting_staff(request: Request, staff: str = Depends(require_staff), csrf_token: str = Form("")) -> str:
    """The staff member doing an action: logged in (else 401), with the session's CSRF token (else 403)."""
    check_csrf(request, csrf_token)
    return staff


def login_required_response(request: Request, _exc: LoginRequired):
    if request.method in ("GET", "HEAD"):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{LOGIN_PATH}?next={quote(target, safe='')}", status_code=303)
    return HTMLResponse("<!doctype html><meta charset=utf-8><title>请先登录</title>"
                        f"<p>登录已失效，请先<a href=\"{LOGIN_PATH}\">登录</a>后再操作。</p>", status_code=401)


def safe_next(target: str | None) -> str:
    """Only a path on this site: never another host (`//evil.example`, `https://…`, `/\\evil`)."""
    target = (target or "").strip()
    parts = urlsplit(target)
    if (not target.startswith("/") or target.startswith("//") or "\\" in target or parts.scheme or parts.netloc
            or any(ord(c) < 32 for c in target)):
        return "/"
    return target


@router.get(LOGIN_PATH)
def login_page(request: Request, next: str = "/"):
    if current_staff(request):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "login.html.j2", next=safe_next(next), name="", error="")


@router.post(LOGIN_PATH)
def login(request: Request, name: str = Form(""), password: str = Form(""), csrf_token: str = Form(""),
          next: str = Form("/")):
    check_csrf(request, csrf_token)
    with session_scope() as session:
        result = verify_staff(session, name, password)
    if not result.ok:
        log.warning("staff login refused for %r%s", name[:64],
                    f" (locked for {result.retry_after}s)" if result.retry_after else "")
        headers = {"Retry-After": str(result.retry_after)} if result.retry_after else None
        return render(request, "login.html.j2", status_code=429 if result.retry_after else 401, headers=headers,
                      next=safe_next(next), name=name[:64], error=result.message_zh)
    request.session.clear()
    request.session[SESSION_STAFF] = result.name
    renew_csrf_token(request)
    log.info("staff %r logged in", result.name)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, staff: str = Depends(acting_staff)):
    request.session.clear()
    return RedirectResponse(LOGIN_PATH, status_code=303)
