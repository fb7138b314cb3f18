"""The embedded development mail server (`noticeflow devmail`, and the tests' `devmail` fixture).

SMTP (aiosmtpd) accepts every message, with or without AUTH, and delivers it into the in-memory
IMAP mailbox (pymap) of every envelope recipient: the office's and one per address. So one
environment (NOTICEFLOW_SMTP_* / NOTICEFLOW_IMAP_*) configures both the program and its server, and
a test can read what a unit received and answer as that unit. Nothing is stored on disk.

SMTP and IMAP each run an event loop in a background thread of this process; delivery hands the
message from the SMTP loop to the IMAP loop, and the SMTP reply waits for it, so a message is in
its mailboxes by the time the sender's `sendmail` returns.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import socket
import threading
import time
from concurrent.futures import Future
from typing import Any, Coroutine

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mail.devmail_backend import (
    SERVER_NAME,
    DevMailLogin,
    append_message,
    mailbox_key,
    make_config,
    read_messages,
)
from models import clock
from models.settings import DEFAULT_DEV_PASSWORD, get_settings

log = logging.getLogger(__name__)
# aiosmtpd warns "Session.login_data is deprecated" on every AUTH, from inside itself: not ours to fix,
# and noise in the demo's output.
logging.getLogger("mail.log").setLevel(logging.ERROR)

_READY_TIMEOUT = 10.0
_CALL_TIMEOUT = 30.0


class DevMailServer:
    """SMTP + IMAP on loopback for development and tests. The office logs in to IMAP with
    office_user/office_password; any other address with itself and other_password. Port 0 means
    a free port; after start() smtp_port/imap_port hold the bound ones."""

    def __init__(self, *, smtp_host: str, smtp_port: int, imap_host: str, imap_port: int,
                 office_user: str, office_password: str, other_password: str) -> None:
        self.smtp_host = smtp_host
        self.smtp_port = smtp_port
        self.imap_host = imap_host
        self.imap_port = imap_port
        self.office_user = office_user
        self.office_password = office_password
        self.other_password = other_password
        self._imap: _ImapThread | None = None
        self._smtp: _SmtpController | None = None

    @classmethod
    def from_settings(cls, settings=None) -> "DevMailServer":
        settings = settings or get_settings()
        return cls(
            smtp_host=settings.smtp_host,
            smtp_port=settings.smtp_port,
            imap_host=settings.imap_host,
            imap_port=settings.imap_port,
            office_user=settings.imap_user,
            office_password=settings.imap_password.get_secret_value(),
            other_password=settings.devmail_password.get_secret_value(),
        )

    def start(self) -> None:
        """Returns once both servers accept connections; smtp_port/imap_port then hold the bound
        ports (meaningful when 0 was asked for)."""
        if self._imap is not None:
            raise RuntimeError("devmail server already running")
        # Bound here, in the caller's thread, so a busy port fails start() at once and port 0 is
        # resolved before anything connects.
        smtp_socket = _listen(self.smtp_host, self.smtp_port)
        try:
            imap_socket = _listen(self.imap_host, self.imap_port)
        except BaseException:
            smtp_socket.close()
            raise
        self.smtp_port = smtp_socket.getsockname()[1]
        self.imap_port = imap_socket.getsockname()[1]
        login = DevMailLogin(
            make_config(self.imap_host, self.imap_port),
            office_user=self.office_user,
            office_password=self.office_password,
            other_password=self.other_password,
        )
        self._imap = _ImapThread(login, imap_socket)
        self._smtp = _SmtpController(
            _DeliveryHandler(self),
            smtp_socket,
            hostname=self.smtp_host,
            server_hostname=SERVER_NAME,
            authenticator=_accept_any_login,
            auth_require_tls=False,
        )
        try:
            self._imap.start()
            self._smtp.start()
        except BaseException:
            self.stop()
            raise
        log.info("devmail: SMTP on %s:%s, IMAP on %s:%s",
                 self.smtp_host, self.smtp_port, self.imap_host, self.imap_port)

    def stop(self) -> None:
        smtp, self._smtp = self._smtp, None
        imap, self._imap = self._imap, None
        if smtp is not None:
            smtp.stop(no_assert=True)
            smtp.release()
        if imap is not None:
            imap.stop()

    def __enter__(self) -> "DevMailServer":
        self.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def mailbox_messages(self, address: str, folder: str = "INBOX") -> list[bytes]:
        """The raw messages now in one folder of an address's mailbox, oldest first; [] for an
        address that never received mail nor logged in. KeyError for a folder that does not exist."""
        imap = self._running_imap()
        return imap.call(read_messages(imap.login, address, folder)).result(_CALL_TIMEOUT)

    def deliver(self, address: str, raw: bytes) -> None:
        """Put a message, byte for byte, into the inbox of an address (no SMTP, no added headers)."""
        imap = self._running_imap()
        imap.call(append_message(imap.login, address, raw, clock.now())).result(_CALL_TIMEOUT)

    async def _deliver_from_smtp(self, address: str, raw: bytes) -> None:
        imap = self._running_imap()
        await asyncio.wrap_future(imap.call(append_message(imap.login, address, raw, clock.now())))

    def _running_imap(self) -> "_ImapThread":
        if self._imap is None:
            raise RuntimeError("devmail server is not running")
        return self._imap


def _accept_any_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    # A dev server: the program's own SMTP credentials, whatever they are, must simply work.
    return AuthResult(success=True)


class _DeliveryHandler:
    """Delivers each accepted message to the mailbox of every envelope recipient, with the trace
    headers a delivering MTA prepends (Return-Path: the envelope sender, `<>` for bounces;
    Delivered-To: the recipient). The message itself follows unchanged."""

    def __init__(self, server: DevMailServer) -> None:
        self._server = server

    async def handle_DATA(self, server, session, envelope) -> str:
        raw: bytes = envelope.original_content
        delivered: set[str] = set()
        for recipient in envelope.rcpt_tos:
            key = mailbox_key(recipient)
            if key in delivered:
                continue
            delivered.add(key)
            trace = _trace_headers(_bare_sender(envelope.mail_from), recipient, raw)
            await self._server._deliver_from_smtp(recipient, trace + raw)
        log.info("devmail: delivered %d bytes from <%s> to %s",
                 len(raw), envelope.mail_from, ", ".join(sorted(delivered)))
        return "250 OK delivered"


def _bare_sender(mail_from: str | None) -> str:
    # aiosmtpd hands over the null sender of a bounce as the literal "<>".
    return (mail_from or "").strip().strip("<>")


def _trace_headers(sender: str, recipient: str, raw: bytes) -> bytes:
    newline = b"\r\n" if raw.split(b"\n", 1)[0].endswith(b"\r") else b"\n"
    lines = [f"Return-Path: <{sender}>", f"Delivered-To: {recipient}"]
    return b"".join(line.encode("utf-8") + newline for line in lines)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on the first address the host resolves to (port 0: a free port)."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)[0]
    # proto must say TCP: asyncio disables Nagle's algorithm only on such sockets, and without
    # that every IMAP response with untagged lines waits ~40 ms for a delayed ACK.
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
        listening.listen(socket.SOMAXCONN)
    except BaseException:
        listening.close()
        raise
    return listening


class _SmtpController(Controller):
    """aiosmtpd's threaded controller, serving on a socket that is already listening."""

    def __init__(self, handler, listening: socket.socket, **kwargs: Any) -> None:
        super().__init__(handler, port=listening.getsockname()[1], **kwargs)
        self._listening = listening

    def _create_server(self):
        return self.loop.create_server(self._factory_invoker, sock=self._listening,
                                       ssl=self.ssl_context)

    def release(self) -> None:
        """After stop(): what a start that failed half-way would leave open (a normal run's
        thread closes both itself)."""
        self._listening.close()
        if not self.loop.is_running() and not self.loop.is_closed():
            self.loop.close()


class _ImapThread:
    """pymap's IMAP server on its own event loop in a daemon thread (pymap.main.run() would
    install signal handlers, which only the main thread may do)."""

    def __init__(self, login: DevMailLogin, listening: socket.socket) -> None:
        self.login = login
        self._listening = listening
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="devmail-imap", daemon=True)
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(_READY_TIMEOUT):
            raise TimeoutError("IMAP server did not start in time")
        if self._error is not None:
            self._thread.join()
            raise self._error

    def stop(self) -> None:
        if self._thread.is_alive() and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread.ident is not None:
            self._thread.join()
        else:
            self._loop.close()
        self._listening.close()

    def call(self, coroutine: Coroutine[Any, Any, Any]) -> Future:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as error:  # reported to start(); nothing else can see this thread
            self._error = error
            self._ready.set()
        finally:
            self._close_loop()

    async def _serve(self) -> None:
        self.login.config.apply_context()
        self._stopping = asyncio.Event()
        server = await asyncio.start_server(self.login.connection_handler(), sock=self._listening)
        async with server:
            self._ready.set()
            await self._stopping.wait()

    def _close_loop(self) -> None:
        # Connections still open (a client that never logged out) end with the server.
        pending = asyncio.all_tasks(self._loop)
        for task in pending:
            task.cancel()
        if pending:
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        self._loop.close()


def serve_forever(settings=None) -> None:
    """`noticeflow devmail`: run until SIGINT/SIGTERM, after printing where and how to log in."""
    settings = settings or get_settings()
    server = DevMailServer.from_settings(settings)
    stop_requested = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop_requested.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        started = time.perf_counter()
        try:
            server.start()
        except OSError as error:
            raise SystemExit(_cannot_start(server, error)) from error
        print(_banner(server, time.perf_counter() - started), flush=True)
        stop_requested.wait()
        print("正在停止开发用邮件服务器……", flush=True)
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _cannot_start(server: DevMailServer, error: OSError) -> str:
    return (
        f"无法启动开发用邮件服务器：{error.strerror or error}。"
        f"请确认 SMTP {server.smtp_host}:{server.smtp_port} 和 IMAP {server.imap_host}:"
        f"{server.imap_port} 没有被其他程序（例如另一个 noticeflow devmail）占用，"
        "或用 NOTICEFLOW_SMTP_PORT / NOTICEFLOW_IMAP_PORT 换用其他端口。"
    )


def _banner(server: DevMailServer, startup_seconds: float) -> str:
    # Only the documented dev default is shown: a password set in the environment might be a
    # real account's, and passwords never go to logs.
    if server.office_password == DEFAULT_DEV_PASSWORD:
        office_password = server.office_password
    else:
        office_password = "（NOTICEFLOW_IMAP_PASSWORD 中设置的密码，此处不显示）"
    return "\n".join([
        f"开发用邮件服务器已启动（用时 {startup_seconds:.2f} 秒）。仅供开发和演示："
        "邮件只保存在内存中，停止后全部丢失。",
        f"  发信 SMTP：{server.smtp_host}:{server.smtp_port}，不加密；可不登录，也接受任意账号密码。",
        f"  收信 IMAP：{server.imap_host}:{server.imap_port}，不加密。",
        f"  办公室邮箱：登录名 {server.office_user}，密码 {office_password}",
        f"  其他任何邮箱地址：登录名为该地址本身，密码 {server.other_password}",
        "  发给任何地址的邮件都会投递到该地址的收件箱。按 Ctrl+C 停止。",
    ])
