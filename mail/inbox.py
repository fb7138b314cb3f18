"""The office mailbox over IMAP: connect from settings, find new messages by UID, fetch their raw
bytes without marking them read, and move them to the Processed folder afterwards.

imap-tools gives the connection classes and folder management; the few commands whose exact form
matters are sent through `mailbox.client` (imaplib) directly:
- imap-tools keeps the capability list from before login, so it is refreshed after login (without
  that, `move()` falls back to a folder-wide EXPUNGE that would also remove other people's deleted
  mail);
- its MailMessage does not keep the bytes the server sent, so messages are fetched with
  `UID FETCH (BODY.PEEK[])` and the literal is kept as is;
- the ID command (163/126 refuse SELECT without it) is not known to imaplib and is registered here.
"""
from __future__ import annotations

import imaplib
import logging
import re
import ssl
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import (
    MailboxCopyError,
    MailboxFetchError,
    MailboxFlagError,
    MailboxFolderCreateError,
    MailboxMoveError,
    MailboxUidsError,
)
from imap_tools.utils import check_command_status, encode_folder

from models.settings import Settings, get_settings

log = logging.getLogger(__name__)

# Socket timeout for every IMAP operation: a stalled server must fail the run, not hang it.
IMAP_TIMEOUT_SECONDS = 60.0
# A fetch asks for messages until about this many bytes, so memory stays bounded whatever the
# backlog (one larger message is still fetched on its own).
FETCH_BATCH_BYTES = 8 * 1024 * 1024
FETCH_BATCH_MAX_MESSAGES = 50
# UID sets in one STORE/MOVE/COPY command; long sets are split to stay under servers' line limits.
UID_SET_CHUNK = 200
# Marks a message as handled on servers that can neither MOVE nor expunge single UIDs.
PROCESSED_KEYWORD = "$NoticeflowProcessed"
CLIENT_ID = {"name": "noticeflow", "version": "1.0", "vendor": "noticeflow"}

imaplib.Commands.setdefault("ID", ("NONAUTH", "AUTH", "SELECTED"))

_UID = re.compile(rb"\bUID\s+(\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"\bRFC822\.SIZE\s+(\d+)", re.IGNORECASE)
_INTERNALDATE = re.compile(rb'\bINTERNALDATE\s+"\s*([^"]+)"', re.IGNORECASE)


class InboxError(RuntimeError):
    """The mailbox refused something we cannot do without (login, select, fetch)."""


@dataclass(frozen=True)
class FetchedMessage:
    uid: int
    raw: bytes
    internal_date: datetime | None   # when the server received it (not the forgeable Date header)


class Inbox:
    """One logged-in connection with `folder` selected."""

    def __init__(self, mailbox, folder: str, processed_folder: str):
        self.mailbox = mailbox
        self.client: imaplib.IMAP4 = mailbox.client
        self.folder = folder
        self.processed_folder = processed_folder
        self.capabilities: frozenset[str] = frozenset()
        self.uidvalidity = 0

    # --- session set-up -------------------------------------------------------------------------

    def refresh_capabilities(self) -> frozenset[str]:
        typ, data = self.client.capability()
        if typ != "OK":
            raise InboxError(f"CAPABILITY refused: {data!r}")
        words = b" ".join(d for d in data if d).decode("ascii", "replace").upper().split()
        self.capabilities = frozenset(words)
        self.client.capabilities = tuple(words)   # imap-tools and imaplib read this attribute
        return self.capabilities

    def send_id(self) -> str | None:
        """RFC 2971 ID. Only sent when advertised; a refusal is logged, not fatal. Returns the
        server's own ID answer (for the log), None when nothing was sent or it failed."""
        if "ID" not in self.capabilities:
            return None
        fields = " ".join(f'"{key}" "{value}"' for key, value in CLIENT_ID.items())
        try:
            typ, data = self.client._simple_command("ID", f"({fields})")
            typ, data = self.client._untagged_response(typ, data, "ID")
        except imaplib.IMAP4.error as error:
            log.warning("IMAP ID command failed: %s", error)
            return None
        if typ != "OK":
            log.warning("IMAP ID command answered %s", typ)
            return None
        answer = b" ".join(d for d in data if isinstance(d, bytes)).decode("utf-8", "replace")
        log.debug("IMAP server ID: %s", answer)
        return answer

    def select(self) -> int:
        """Select the folder (read-write) and return its UIDVALIDITY."""
        typ, data = self.client.select(encode_folder(self.folder))
        if typ != "OK":
            raise InboxError(f"cannot select folder {self.folder!r}: {data!r}")
        values = self.client.untagged_responses.get("UIDVALIDITY") or []
        if values:
            self.uidvalidity = int(values[-1])
        else:  # a server that leaves it out of SELECT still answers STATUS
            self.uidvalidity = int(self.mailbox.folder.status(self.folder, ["UIDVALIDITY"])["UIDVALIDITY"])
        return self.uidvalidity

    def ensure_folder(self, name: str) -> None:
        if self.mailbox.folder.exists(name):
            return
        try:
            self.mailbox.folder.create(name)
        except MailboxFolderCreateError:
            if not self.mailbox.folder.exists(name):   # created meanwhile by another run: fine
                raise
        log.info("created IMAP folder %r", name)

    # --- reading --------------------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs in the selected folder greater than `last_uid`, ascending. (`n:*` always matches
        the highest UID even when it is below n, hence the filter.)"""
        typ, data = self.client.uid("SEARCH", f"UID {last_uid + 1}:*")
        check_command_status((typ, data), MailboxUidsError)
        found = {int(word) for line in data if line for word in line.split()}
        return sorted(uid for uid in found if uid > last_uid)

    def sizes(self, uids: list[int]) -> dict[int, int]:
        sizes: dict[int, int] = {}
        for chunk in _chunks(uids, UID_SET_CHUNK):
            typ, data = self.client.uid("FETCH", _uid_set(chunk), "(UID RFC822.SIZE)")
            check_command_status((typ, data), MailboxFetchError)
            for line in data:
                text = line[0] if isinstance(line, tuple) else line
                uid, size = _UID.search(text or b""), _SIZE.search(text or b"")
                if uid and size:
                    sizes[int(uid.group(1))] = int(size.group(1))
        return sizes

    def fetch_raw(self, uids: list[int]) -> Iterator[FetchedMessage]:
        """The raw bytes of each UID, in UID order, in batches bounded by size. Messages are fetched
        with BODY.PEEK so \\Seen is not set. A UID the server no longer has is skipped."""
        sizes = self.sizes(uids)
        for batch in _batches_by_size(uids, sizes):
            typ, data = self.client.uid("FETCH", _uid_set(batch), "(UID INTERNALDATE BODY.PEEK[])")
            check_command_status((typ, data), MailboxFetchError)
            found = {message.uid: message for message in parse_fetch_response(data)}
            for uid in batch:
                if uid in found:
                    yield found.pop(uid)
                else:
                    log.warning("IMAP server returned no body for UID %s in %s", uid, self.folder)

    # --- after processing -----------------------------------------------------------------------

    def move_to_processed(self, uids: Iterable[int]) -> str:
        """Move the messages to the Processed folder with the best command the server offers.
        Never a folder-wide EXPUNGE: that would also remove messages someone else marked deleted.
        Returns the method used (for the log)."""
        uids = sorted(set(uids))
        if not uids:
            return "none"
        target = encode_folder(self.processed_folder)
        for chunk in _chunks(uids, UID_SET_CHUNK):
            uid_set = _uid_set(chunk)
            if "MOVE" in self.capabilities:
                check_command_status(self.client.uid("MOVE", uid_set, target), MailboxMoveError)
                continue
            check_command_status(self.client.uid("COPY", uid_set, target), MailboxCopyError)
            if "UIDPLUS" in self.capabilities:
                check_command_status(self.client.uid("STORE", uid_set, "+FLAGS.SILENT", r"(\Deleted)"),
                                     MailboxFlagError)
                check_command_status(self.client.uid("EXPUNGE", uid_set), MailboxMoveError)
            else:
                # Left in place, read and tagged; the UID watermark keeps it from being fetched again.
                check_command_status(self.client.uid("STORE", uid_set, "+FLAGS.SILENT",
                                                     rf"(\Seen {PROCESSED_KEYWORD})"), MailboxFlagError)
        if "MOVE" in self.capabilities:
            return "move"
        return "copy+expunge" if "UIDPLUS" in self.capabilities else "copy+flag"

    def close(self) -> None:
        try:
            self.mailbox.logout()
        except Exception as error:  # the work is done; a failed goodbye changes nothing
            log.debug("IMAP logout failed: %s", error)


def _mailbox_for(settings: Settings, timeout: float):
    host, port = settings.imap_host, settings.imap_port
    if settings.imap_security == "ssl":
        return MailBox(host, port, timeout=timeout, ssl_context=ssl.create_default_context())
    if settings.imap_security == "starttls":
        return MailBoxStartTls(host, port, timeout=timeout, ssl_context=ssl.create_default_context())
    return MailBoxUnencrypted(host, port, timeout=timeout)


@contextmanager
def open_inbox(settings: Settings | None = None, *, folder: str | None = None,
               timeout: float = IMAP_TIMEOUT_SECONDS) -> Iterator[Inbox]:
    """Connect, log in, identify, make sure the Processed folder exists, select the folder."""
    settings = settings or get_settings()
    mailbox = _mailbox_for(settings, timeout)
    inbox = Inbox(mailbox, folder or settings.imap_folder, settings.imap_processed_folder)
    try:
        mailbox.login(settings.imap_user, settings.imap_password.get_secret_value(), initial_folder=None)
        inbox.refresh_capabilities()
        inbox.send_id()
        inbox.ensure_folder(inbox.processed_folder)
        inbox.select()
        yield inbox
    finally:
        inbox.close()


# --- response parsing ---------------------------------------------------------------------------

def parse_fetch_response(data: list) -> Iterator[FetchedMessage]:
    """Messages from an imaplib FETCH response. A message is a (prefix, literal) pair whose prefix
    names BODY[]; its UID and INTERNALDATE may sit in the prefix or in the bytes after the literal.
    Anything else (unsolicited `FLAGS` updates some servers interleave) is ignored."""
    pending: tuple[bytes, bytes] | None = None
    trailer: bytes | None = None   # the rest of the line after the literal, e.g. b' UID 7)'

    def finish():
        meta = pending[0] + b" " + (trailer or b"")
        uid = _UID.search(meta)
        if uid is None:
            log.warning("IMAP FETCH response without UID ignored: %r", pending[0][:80])
            return None
        return FetchedMessage(int(uid.group(1)), pending[1], _internal_date(meta))

    for item in data:
        if isinstance(item, tuple) and b"BODY[]" in item[0].upper():
            if pending is not None and (message := finish()) is not None:
                yield message
            pending, trailer = (item[0], item[1]), None
        elif pending is not None and trailer is None and isinstance(item, bytes):
            trailer = item
    if pending is not None and (message := finish()) is not None:
        yield message


def _internal_date(meta: bytes) -> datetime | None:
    match = _INTERNALDATE.search(meta)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1).decode("ascii").strip(), "%d-%b-%Y %H:%M:%S %z")
    except ValueError:
        return None


def _uid_set(uids: Iterable[int]) -> str:
    return ",".join(str(uid) for uid in uids)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _batches_by_size(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
    batch: list[int] = []
    total = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (total + size > FETCH_BATCH_BYTES or len(batch) >= FETCH_BATCH_MAX_MESSAGES):
            yield batch
            batch, total = [], 0
        batch.append(uid)
        total += size
    if batch:
        yield batch
