"""An SMTP server for tests (aiosmtpd): records what it accepts and misbehaves on request.

Faults: refuse some recipients at RCPT once (`refuse_once`, e.g. a 451 greylisting) or always
(`refuse_always`, e.g. a 550 unknown mailbox); drop the connection instead of answering the N-th
DATA (`drop_at_data`); wait before answering DATA (`data_delay`, so a test can kill a sender in the
middle of a batch). Optional AUTH (any password, logins recorded), STARTTLS or implicit TLS.
"""
from __future__ import annotations

import asyncio
import email
import socket
import ssl
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    tls: bool

    @property
    def message(self) -> email.message.Message:
        return email.message_from_bytes(self.raw)

    @property
    def message_id(self) -> str:
        return self.message["Message-ID"]


@dataclass
class SinkHandler:
    refuse_once: dict[str, str] = field(default_factory=dict)
    refuse_always: dict[str, str] = field(default_factory=dict)
    drop_at_data: set[int] = field(default_factory=set)   # 1-based DATA commands to answer by hanging up
    data_delay: float = 0.0
    received: list[Received] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)
    connections: int = 0
    data_commands: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        if not getattr(session, "_counted", False):
            session._counted = True
            with self._lock:
                self.connections += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        key = address.lower()
        with self._lock:
            answer = self.refuse_always.get(key) or self.refuse_once.pop(key, None)
        if answer:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        with self._lock:
            self.data_commands += 1
            number = self.data_commands
        if number in self.drop_at_data:
            server.transport.close()
            return "421 closing"  # never reaches the client: the transport is gone
        if self.data_delay:
            await asyncio.sleep(self.data_delay)
        with self._lock:
            tls = session.ssl is not None or server.transport.get_extra_info("ssl_object") is not None
            self.received.append(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                          envelope.original_content, tls))
        return "250 2.0.0 Accepted"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        with self._lock:
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
        return AuthResult(success=True)

    # -- what a test asks ---------------------------------------------------------------------
    def count_by_recipient(self) -> Counter:
        with self._lock:
            return Counter(rcpt.lower() for item in self.received for rcpt in item.rcpt_tos)

    def message_ids_by_recipient(self) -> dict[str, set[str]]:
        result: dict[str, set[str]] = {}
        with self._lock:
            items = list(self.received)
        for item in items:
            for rcpt in item.rcpt_tos:
                result.setdefault(rcpt.lower(), set()).add(item.message_id)
        return result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class SmtpSink:
    """`with SmtpSink(handler) as sink:` listens on 127.0.0.1:sink.port until the block ends."""

    def __init__(self, handler: SinkHandler | None = None, *, auth: bool = False,
                 server_tls: ssl.SSLContext | None = None, implicit_tls: bool = False):
        self.handler = handler or SinkHandler()
        self.port = free_port()
        kwargs = {}
        if auth:
            kwargs.update(authenticator=self.handler.authenticate, auth_require_tls=False)
        if server_tls is not None and implicit_tls:
            kwargs["ssl_context"] = server_tls
        elif server_tls is not None:
            kwargs.update(tls_context=server_tls, require_starttls=True)
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port,
                                      server_hostname="sink.test", ready_timeout=10, **kwargs)

    def __enter__(self) -> "SmtpSink":
        self._controller.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._controller.stop()

    def wait_for(self, count: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.handler.received) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"sink saw {len(self.handler.received)} of {count} messages")
            time.sleep(0.01)
