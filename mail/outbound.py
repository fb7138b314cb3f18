"""Sending mail with yagmail: one SMTP connection per batch, MIME that Chinese mail clients read.

yagmail opens the connection (SSL, STARTTLS or plain) and sends: `login()` once per batch, then
`smtp.sendmail` per message over that one connection. The MIME is made here, not by yagmail's
`prepare_send`, which was checked and found wanting on three counts:

- its text/plain part is the HTML body with `<br>` in it (and the HTML sits in a needless
  multipart/related); ours has the text template's output as text/plain and the HTML one as text/html;
- it names attachments with RFC 2231 only (`name*=utf-8''…`), which QQ webmail shows as
  `tcmime.*.bin` and older Outlook ignores. Ours are named as nodemailer does: `Content-Type: …;
  name="=?utf-8?b?…?="` (RFC 2047) and `Content-Disposition: attachment; filename*0*=utf-8''…;
  filename*1*=…` (RFC 2231 with continuations, so no header line passes 78 characters);
- it costs ~2.5 ms a message (the email package flattening every part line by line, a regular
  expression compiled per boundary), about as much as sending it. Ours flattens each part once: the
  notice, the same for every unit, is encoded once per batch.

SMTP errors are classified for the outbox: a 4xx or a lost connection is transient (try again
later), a 5xx refusal of a message or recipient is permanent (the unit is marked bounced with the
server's words), and a problem with our own account or server settings is fatal (stop the batch:
every message would fail the same way). The password is read from settings at login and handed
only to smtplib; it is not given to yagmail, logged, or put in an exception.
"""
from __future__ import annotations

import base64
import logging
import mimetypes
import re
import smtplib
import ssl
import threading
import unicodedata
import urllib.parse
import uuid
from dataclasses import dataclass, field
from email.header import Header
from email.policy import compat32
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Literal, Mapping

import yagmail

from models.clock import now
from models.settings import Settings, get_settings

log = logging.getLogger(__name__)

CHARSET = "utf-8"
# Parameter pieces are cut at these lengths so that folded header lines (with ` filename*0*=utf-8''`
# or ` name="` in front) stay under the 78 characters RFC 5322 recommends.
_RFC2231_SEGMENT = 45
_ENCODED_WORD_BYTES = 39  # → 52 base64 characters: a 64-character encoded-word fits any line
# Characters Windows refuses in file names, and control characters: a unit saving the attachment
# must get the name it sees.
_UNSAFE_FILENAME = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
MAX_FILENAME_STEM = 80
MAX_HEADER_LINE = 78  # RFC 5322 2.1.1
_HEADER_POLICY = compat32.clone(max_line_length=MAX_HEADER_LINE, linesep="\n")

FailureKind = Literal["transient", "permanent", "fatal"]
AUTOMATIC_DEFAULTS = {"Auto-Submitted": "auto-generated", "X-Auto-Response-Suppress": "OOF, AutoReply"}


@dataclass(frozen=True)
class Attachment:
    path: Path
    filename: str  # the name the recipient sees
    shared: bool = False  # the same file goes to every recipient of the batch: encode it once
    content: bytes | None = None  # the file's bytes when already in hand (not read again)


@dataclass(frozen=True)
class OutgoingEmail:
    to: tuple[str, ...]
    subject: str
    text: str
    html: str | None
    message_id: str
    attachments: tuple[Attachment, ...] = ()
    cc: tuple[str, ...] = ()
    reply_to: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)  # e.g. In-Reply-To, References

    @property
    def recipients(self) -> list[str]:
        return [*self.to, *self.cc]


class SmtpFailure(Exception):
    """An SMTP problem, classified. `server_text` holds the server's own words (for staff)."""

    def __init__(self, kind: FailureKind, server_text: str, *, code: int | None = None,
                 connection_lost: bool = False, stage: str = "send"):
        self.kind = kind
        self.code = code
        self.server_text = server_text
        self.connection_lost = connection_lost
        self.stage = stage
        super().__init__(self.describe())

    @property
    def transient(self) -> bool:
        return self.kind == "transient"

    @property
    def permanent(self) -> bool:
        return self.kind == "permanent"

    def what_to_check(self) -> str:
        """For a failure that stops a batch: what went wrong on our side and what staff check."""
        if self.stage == "login":
            return "发信邮箱登录失败，请检查 NOTICEFLOW_SMTP_USER 和 NOTICEFLOW_SMTP_PASSWORD（授权码）"
        return "发信服务器拒绝了本机的发信请求，请检查 NOTICEFLOW_SMTP_* 设置和发信邮箱的状态"

    def describe(self) -> str:
        """The server's answer as staff should read it, e.g. `550 5.1.1 User unknown`."""
        if self.code and not self.server_text.startswith(str(self.code)):
            return f"{self.code} {self.server_text}"
        return self.server_text


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _kind_of(code: int) -> FailureKind:
    return "transient" if 400 <= code < 500 else "permanent"


def classify_smtp_error(error: BaseException, *, stage: str = "send") -> SmtpFailure:
    """Turn what smtplib/socket raised into a SmtpFailure (already one: returned unchanged)."""
    if isinstance(error, SmtpFailure):
        return error
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        refusals = error.recipients or {}
        codes = [code for code, _ in refusals.values()]
        if len(refusals) == 1:
            words = _text(next(iter(refusals.values()))[1])
        else:
            words = "; ".join(f"{addr}: {code} {_text(msg)}" for addr, (code, msg) in refusals.items())
        # Any 5xx among the refusals decides: that address will not work by waiting.
        worst = max(codes) if codes else 0
        kind = "permanent" if worst >= 500 else "transient"
        return SmtpFailure(kind, words, code=worst or None, connection_lost=421 in codes, stage=stage)
    if isinstance(error, smtplib.SMTPAuthenticationError):
        return SmtpFailure("fatal", _text(error.smtp_error), code=error.smtp_code, stage="login")
    if isinstance(error, smtplib.SMTPSenderRefused):
        # A refused sender is our account's problem, not the unit's: transient if the server says so,
        # else stop the batch instead of marking every unit bounced.
        kind = "transient" if 400 <= error.smtp_code < 500 else "fatal"
        return SmtpFailure(kind, f"{error.sender}: {_text(error.smtp_error)}", code=error.smtp_code,
                           connection_lost=error.smtp_code == 421, stage=stage)
    if isinstance(error, smtplib.SMTPResponseException):  # SMTPDataError and the rest
        code = error.smtp_code
        if stage in ("connect", "login") and code >= 500:
            return SmtpFailure("fatal", _text(error.smtp_error), code=code, stage=stage)
        return SmtpFailure(_kind_of(code), _text(error.smtp_error), code=code,
                           connection_lost=code == 421, stage=stage)
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return SmtpFailure("transient", f"connection closed: {error}", connection_lost=True, stage=stage)
    if isinstance(error, smtplib.SMTPNotSupportedError):
        return SmtpFailure("fatal", str(error), stage=stage)
    if isinstance(error, ssl.SSLError):  # certificate or handshake: a setting, not a moment
        return SmtpFailure("fatal", f"TLS: {error}", connection_lost=True, stage=stage)
    if isinstance(error, (OSError, smtplib.SMTPException)):  # refused, reset, timeout, DNS
        return SmtpFailure("transient", f"{type(error).__name__}: {error}", connection_lost=True, stage=stage)
    raise error


def attachment_filename(stem: str, suffix: str) -> str:
    """A file name a unit can save as is: no characters Windows refuses, not absurdly long."""
    stem = unicodedata.normalize("NFC", stem)
    stem = " ".join(_UNSAFE_FILENAME.sub("_", stem).split()).strip(" .")
    if len(stem) > MAX_FILENAME_STEM:
        stem = stem[:MAX_FILENAME_STEM - 1].rstrip() + "…"
    return f"{stem or 'attachment'}{suffix}"


def _rfc2231_parameter(name: str, value: str) -> str:
    """`name*0*=utf-8''…; name*1*=…` (a single `name*=` when short), cut between characters."""
    segments, current = [], ""
    for char in value:
        quoted = urllib.parse.quote(char, safe="")
        if current and len(current) + len(quoted) > _RFC2231_SEGMENT:
            segments.append(current)
            current = ""
        current += quoted
    segments.append(current)
    if len(segments) == 1:
        return f"{name}*={CHARSET}''{segments[0]}"
    return "; ".join(f"{name}*{index}*={CHARSET}''{segment}" if index == 0 else f"{name}*{index}*={segment}"
                     for index, segment in enumerate(segments))


def encoded_words(text: str) -> str:
    """RFC 2047 base64 encoded-words, each at most 64 characters (the limit is 75) and cut between
    characters, separated by spaces (where a header may fold). email.header.Header does the same
    at several times the cost, which counts once per message."""
    words, chunk = [], b""
    for char in text:
        encoded = char.encode(CHARSET)
        if chunk and len(chunk) + len(encoded) > _ENCODED_WORD_BYTES:
            words.append(chunk)
            chunk = b""
        chunk += encoded
    words.append(chunk)
    return " ".join(f"=?{CHARSET}?b?{base64.b64encode(word).decode('ascii')}?=" for word in words)


def _folded(name: str, value: str) -> str:
    """One header, folded before spaces so that lines stay within 78 characters where the value
    allows (a longer token stays whole: the hard limit is 998). A value too long for the first
    line starts on the next, as the stdlib folds it too."""
    if not value.isascii():  # not expected (non-ASCII text is encoded first); the stdlib copes
        return _HEADER_POLICY.fold(name, Header(value, CHARSET, header_name=name))
    lines, line = [], f"{name}:"
    for token in value.split(" "):
        if len(line) + 1 + len(token) > MAX_HEADER_LINE and line:
            lines.append(line)
            line = ""
        line += " " + token
    lines.append(line)
    return "\n".join(lines) + "\n"


def _headers(*headers: tuple[str, str]) -> str:
    """Header lines and the blank line that ends them."""
    return "".join(_folded(name, value) for name, value in headers) + "\n"


def _base64_body(data: bytes) -> str:
    return base64.encodebytes(data).decode("ascii")


def _boundary() -> str:
    # No line of a base64 body can start with "--=", so the boundary never collides with content
    # (the only body encoding used here) and needs no scan of it.
    return f"=_nf_{uuid.uuid4().hex}"


def _multipart(subtype: str, parts: list[str], *headers: tuple[str, object]) -> str:
    boundary = _boundary()
    head = _headers(*headers, ("Content-Type", f'multipart/{subtype}; boundary="{boundary}"'))
    return head + "".join(f"--{boundary}\n{part}\n" for part in parts) + f"--{boundary}--\n"


def text_part(text: str, subtype: str) -> str:
    return _headers(("Content-Type", f'text/{subtype}; charset="{CHARSET}"'),
                    ("Content-Transfer-Encoding", "base64")) + _base64_body(text.encode(CHARSET))


def attachment_part(content: bytes, filename: str) -> str:
    """A base64 attachment named both ways (RFC 2047 `name=`, RFC 2231 `filename*=`)."""
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    if filename.isascii():
        quoted = filename.replace("\\", "\\\\").replace('"', '\\"')
        name, disposition = f'name="{quoted}"', f'attachment; filename="{quoted}"'
    else:
        # Encoded-words inside a quoted parameter are not standard, but it is what Outlook, QQ and
        # Foxmail read; RFC 2231-aware clients take filename*= from Content-Disposition first.
        name = f'name="{encoded_words(filename)}"'
        disposition = "attachment; " + _rfc2231_parameter("filename", filename)
    return _headers(("Content-Type", f"{content_type}; {name}"), ("Content-Disposition", disposition),
                    ("Content-Transfer-Encoding", "base64")) + _base64_body(content)


class AttachmentCache:
    """What is the same in every message of a batch, encoded once: the shared attachments (by
    path, size, mtime and name) and the From header."""

    def __init__(self) -> None:
        self._parts: dict[tuple, str] = {}
        self._from: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def from_header(self, address: str, name: str | None) -> str:
        key = (address, name)
        if key not in self._from:
            self._from[key] = from_header(address, name)
        return self._from[key]

    def part(self, attachment: "Attachment") -> str:
        path = Path(attachment.path)
        if not attachment.shared:
            content = attachment.content if attachment.content is not None else path.read_bytes()
            return attachment_part(content, attachment.filename)
        stat = path.stat()
        key = (str(path), stat.st_mtime_ns, stat.st_size, attachment.filename)
        with self._lock:
            cached = self._parts.get(key)
        if cached is None:
            cached = attachment_part(path.read_bytes(), attachment.filename)
            with self._lock:
                self._parts[key] = cached
        return cached


def from_header(from_address: str, sender_name: str | None) -> str:
    return formataddr((sender_name, from_address), CHARSET) if sender_name else from_address


def compose_message(message: "OutgoingEmail", *, from_address: str, sender_name: str | None = None,
                    cache: AttachmentCache | None = None) -> bytes:
    """The finished message as it goes on the wire: ASCII with CRLF line ends."""
    cache = cache or AttachmentCache()
    subject = message.subject if message.subject.isascii() else encoded_words(message.subject)
    headers = [("From", cache.from_header(from_address, sender_name)), ("To", ", ".join(message.to))]
    if message.cc:
        headers.append(("Cc", ", ".join(message.cc)))
    headers += [("Subject", subject), ("Date", format_datetime(now())), ("Message-ID", message.message_id)]
    if message.reply_to:
        headers.append(("Reply-To", message.reply_to))
    # Everything the program sends is automatic (RFC 3834): out-of-office responders stay quiet, so
    # no loop starts between our reminders and a unit's auto-reply. Acknowledgements say auto-replied.
    automatic = {name: value for name, value in AUTOMATIC_DEFAULTS.items() if name not in message.headers}
    headers += list(automatic.items()) + list(message.headers.items()) + [("MIME-Version", "1.0")]

    body = text_part(message.text, "plain")
    if message.html is not None:
        body = _multipart("alternative", [body, text_part(message.html, "html")])
    parts = [body] + [cache.part(a) for a in message.attachments]
    # Built with "\n" (every line is ours: none has a stray "\r"); CRLF here, in the composing
    # thread, so smtplib has nothing left to convert.
    return _multipart("mixed", parts, *headers).replace("\n", "\r\n").encode("ascii")


def sender_domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2].lower()


class SmtpBatch:
    """One yagmail connection for a batch: connect and log in once, then `send()` per message.
    A dropped connection is reopened at the next `send()`; nothing else reconnects.

    `ssl_context` verifies the server's certificate (the system's trust store by default)."""

    def __init__(self, settings: Settings | None = None, *, sender_name: str | None = None,
                 ssl_context: ssl.SSLContext | None = None):
        self.settings = settings or get_settings()
        self.sender_name = sender_name
        self.ssl_context = ssl_context
        self.connections_opened = 0
        self._client: yagmail.SMTP | None = None  # one yagmail client; each login() is a new connection
        self._connected = False
        self._attachments = AttachmentCache()

    # -- connection --------------------------------------------------------------------------
    @property
    def from_address(self) -> str:
        # 163/QQ refuse mail whose sender is not the logged-in account: the login is the sender.
        return self.settings.smtp_user

    def _yagmail(self) -> yagmail.SMTP:
        if self._client is not None:
            return self._client
        s = self.settings
        security = s.smtp_security
        context = None
        if security != "none":
            context = self.ssl_context or ssl.create_default_context()
        kwargs = {"timeout": s.smtp_timeout}
        if security == "ssl":
            kwargs["context"] = context
        self._client = yagmail.SMTP(
            user=s.smtp_user, password=None, host=s.smtp_host, port=s.smtp_port,
            smtp_ssl=security == "ssl",
            smtp_starttls={"context": context} if security == "starttls" else False,
            smtp_skip_login=True,  # we log in below, so yagmail never holds the password
            soft_email_validation=False, **kwargs)
        return self._client

    def open(self) -> None:
        if self.connected:
            return
        self.close()
        client = self._yagmail()
        try:
            client.login()  # connect (+ STARTTLS); the login proper follows
        except BaseException as error:
            self._drop()
            raise classify_smtp_error(error, stage="connect") from None
        self._connected = True
        self.connections_opened += 1
        self._authenticate()
        log.info("SMTP connected to %s:%s (%s) as %s", self.settings.smtp_host, self.settings.smtp_port,
                 self.settings.smtp_security, self.settings.smtp_user)

    def _authenticate(self) -> None:
        smtp = self._client.smtp
        password = self.settings.smtp_password.get_secret_value()
        try:
            smtp.ehlo_or_helo_if_needed()
            if not password:
                return
            if not smtp.has_extn("auth"):
                # A local relay or the dev server may not offer AUTH; the server decides at MAIL FROM.
                log.info("SMTP server offers no AUTH; sending without login")
                return
            smtp.login(self.settings.smtp_user, password)
        except BaseException as error:
            self.close()
            raise classify_smtp_error(error, stage="login") from None

    @property
    def connected(self) -> bool:
        # smtplib drops its socket after a 421 or a disconnect; then the next send reconnects.
        return self._connected and getattr(self._client.smtp, "sock", None) is not None

    def close(self) -> None:
        """QUIT politely; a connection already gone is simply forgotten."""
        if self._connected:
            try:
                self._client.smtp.quit()
            except (OSError, smtplib.SMTPException):
                pass
        self._drop()

    def _drop(self) -> None:
        self._connected = False
        if self._client is not None and self._client.smtp is not None:
            self._client.smtp.close()  # closes the socket; safe to call twice
        if self._client is not None:
            self._client.is_closed = True  # so yagmail's own __del__ does not QUIT again

    def __enter__(self) -> "SmtpBatch":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # -- messages ----------------------------------------------------------------------------
    def compose(self, message: OutgoingEmail) -> tuple[list[str], bytes]:
        """The envelope recipients and the finished message (safe to call from another thread)."""
        raw = compose_message(message, from_address=self.from_address, sender_name=self.sender_name,
                              cache=self._attachments)
        return message.recipients, raw

    def send(self, message: OutgoingEmail) -> dict[str, tuple[int, str]]:
        """Send one message over the batch's connection (opened on first use). Returns the refused
        recipients when the server took the message for some of them; raises SmtpFailure."""
        recipients, raw = self.compose(message)
        return self.send_raw(recipients, raw)

    def send_raw(self, recipients: list[str], raw: bytes) -> dict[str, tuple[int, str]]:
        self.open()
        try:
            refused = self._client.smtp.sendmail(self.from_address, recipients, raw)
        except BaseException as error:
            failure = classify_smtp_error(error)
            if failure.connection_lost:
                self._drop()
            raise failure from None
        return {addr: (code, _text(words)) for addr, (code, words) in refused.items()}

