"""Collecting replies from the office mailbox, one message at a time, so that a crash anywhere loses
nothing and repeats nothing.

The life of a message (InboundMessage.state):

    (on the server) ──fetch──▶ stored ──process──▶ processed ──move──▶ moved
                                 │                     └ (UIDVALIDITY changed first) ▶ uid_expired
                                 └ (fails MAX_ATTEMPTS times) ▶ failed: left in the folder for staff

1. fetch: the raw bytes, exactly as the server sent them, go to
   `outputs/<campaign>/mail/<folder>-<uidvalidity>/<uid>.eml` (fsync, atomic rename); then the row
   keyed by (folder, UIDVALIDITY, UID) is committed. Nothing else has happened yet. The UID
   watermark of the next fetch is the highest UID recorded for that folder and UIDVALIDITY.
2. process: what needs no writing is worked out first, a few messages ahead, in worker threads
   (decode, classify, file under a campaign, read the forms in their limited child processes).
   Then ONE database transaction claims the row (stored → processed, a conditional UPDATE, so two
   runs never both process it), matches, stores the attachments, adds the Submission version,
   moves the unit's status and enqueues the answer (回执 or correction request) in the outbox.
   A crash before the commit leaves the row `stored`: done again, whole. (These commits skip
   SQLite's fsync, the fetch's do not: see `processing_connection`.)
3. send: the outbox sends each answer once (its dedupe key is campaign:unit:kind:<inbound id>); a
   row left `sending` by a crash is resent with the same Message-ID (the outbox's documented rule).
4. move: only now is the message moved to the Processed folder on the server, and the row marked
   `moved`. A crash before that leaves it `processed`: the next run moves it.

The same mail delivered twice (a UIDVALIDITY reset, two office addresses, a redelivery) has the same
Message-ID and the same content below the delivering servers' trace headers: the later copy is
recorded as a `duplicate` of the first and not processed again.

Which campaign a message belongs to: our Message-IDs in its thread (In-Reply-To/References, or the
original inside a bounce), else a verified token in its subject, else the campaign being collected.
Mail that matches no unit is kept as a review item under that campaign (when collecting every
active campaign: the first active campaign by id).

Tests make the process die at a chosen point with NOTICEFLOW_COLLECT_FAULT=<point>:<n> — os._exit
when the n-th message of this process reaches <point> (one of FAULT_POINTS).
"""
from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from itertools import islice
from pathlib import Path

from sqlalchemy import func, update
from sqlalchemy.engine import Connection
from sqlmodel import Session, select

from forms.campaign import CampaignDefinition, load_campaign
from forms.form_reader import FormReading, NotAReplyForm, read_reply_form
from forms.ooxml_guard import UnsafeFile, is_ole, is_zip
from forms.schema import FieldSpec, FieldType
from mail import outbox
from mail.attachments import StoredAttachment, store_attachments
from mail.bigfile_links import find_bigfile_links, review_note_zh
from mail.classify import Classification, Kind, classify, harvestable_attachments
from mail.inbox import Inbox
from mail.matching import MatchResult, match_bounce, match_reply
from mail.mime import ParsedAttachment, ParsedMessage, decode_header_value, parse_addresses, parse_message
from mail.outbound import OutgoingEmail, SmtpBatch, SmtpFailure, sender_domain
from mail.rawstore import raw_relative_path, read_raw, sync_directories, write_atomically
from mail.templating import render_email
from models import tokens
from models.clock import CHINA_TZ, now
from models.db import get_engine, session_scope
from models.settings import Settings, get_settings
from models.states import TRANSITIONS, RecipientStatus, record_event, transition
from models.tables import (
    Attachment,
    Campaign,
    InboundMessage,
    OutboundMessage,
    Recipient,
    Submission,
    Unit,
)

log = logging.getLogger(__name__)

# --- states and kinds ---------------------------------------------------------------------------
STORED, PROCESSED, MOVED, FAILED, UID_EXPIRED = "stored", "processed", "moved", "failed", "uid_expired"
DUPLICATE, ERROR, OWN_MESSAGE = "duplicate", "error", "own"  # classifications besides mail.classify.Kind
ACK, CORRECTION = "ack", "correction"       # outbox kinds (and template names)
ANSWER_KINDS = (ACK, CORRECTION)
ATTACHMENTS_DIR = "attachments"
REVIEW_DIR_PREFIX = "review-"               # attachments of mail that matched no unit
MAX_ATTEMPTS = 3                            # a message that fails this often goes to staff
RECORD_BATCH = 25                           # fetched messages per database commit
PREPARE_WORKERS = max(2, os.cpu_count() or 2)   # threads preparing messages ahead of their transaction
PREPARE_AHEAD = 2 * PREPARE_WORKERS             # messages prepared ahead (bounds memory)
PREPARE_MAX_BYTES = 8 * 1024 * 1024         # larger messages are prepared inside their transaction
TEXT_PREVIEW = 60                           # characters of a long text value quoted in a 回执
# Answers are retried by every later run as well, so a run waits only briefly for a slow server.
ANSWER_RETRY = outbox.RetryPolicy(delays=(5.0,))
# RFC 3834: our answers are automatic; well-behaved auto-responders then stay silent.
AUTOMATIC_HEADERS = {"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"}

EVENT_SUBMISSION = "submission_received"
EVENT_SUBMISSION_REJECTED = "submission_rejected"
EVENT_REPLY_NO_STATUS = "reply_recorded_status_kept"
EVENT_BOUNCE = "bounce_received"
EVENT_AUTO_REPLY = "auto_reply_received"
EVENT_ANSWER_REFUSED = "answer_refused"
EVENT_REVIEW = "reply_needs_review"          # a unit's status set to needs_review
EVENT_INBOUND_REVIEW = "inbound_needs_review"  # a message staff must look at (InboundMessage.detail)

# --- fault injection (tests) ---------------------------------------------------------------------
FAULT_ENV = "NOTICEFLOW_COLLECT_FAULT"
FAULT_EXIT_CODE = 87
FAULT_POINTS = ("stored", "recorded", "processed", "answered", "moved")
_fault_counts: Counter = Counter()


def fault_point(name: str, count: int = 1) -> None:
    """Die here (os._exit, no cleanup) when NOTICEFLOW_COLLECT_FAULT names this point and this
    process has now passed it for the configured number of messages."""
    spec = os.environ.get(FAULT_ENV)
    if not spec:
        return
    point, _, index = spec.partition(":")
    if point != name:
        return
    _fault_counts[name] += count
    if _fault_counts[name] >= int(index or 1):
        log.warning("fault injection: exiting at %s after %d message(s)", name, _fault_counts[name])
        os._exit(FAULT_EXIT_CODE)


class CollectError(RuntimeError):
    """Nothing can be collected (unknown campaign, no active campaign). The text is for staff."""


# --- the campaigns a run knows ----------------------------------------------------------------------

@dataclass(frozen=True)
class CampaignInfo:
    id: str
    token_prefix: str
    deadline: datetime
    definition: CampaignDefinition

    @property
    def schema(self):
        return self.definition.form


class Scope:
    """What one collect run works with: the campaigns it collects for, the default campaign of
    unmatched mail, and every other campaign a message may name (loaded when first needed)."""

    def __init__(self, campaign_ids: list[str], *, settings: Settings | None = None):
        if not campaign_ids:
            raise CollectError("没有进行中的活动，无需收取回复。")
        self.settings = settings or get_settings()
        self.campaign_ids = list(campaign_ids)
        self.default_id = self.campaign_ids[0]
        self.output_dir = Path(self.settings.output_dir)
        self._campaigns: dict[str, CampaignInfo] = {}
        self._prefixes: dict[str, str | None] = {}
        self._own: set[str] | None = None
        self._lock = threading.Lock()   # messages are prepared in worker threads

    @classmethod
    def for_run(cls, campaign_id: str | None = None) -> "Scope":
        with session_scope() as session:
            return cls(resolve_campaign_ids(session, campaign_id))

    def campaign(self, session: Session, campaign_id: str) -> CampaignInfo:
        with self._lock:
            info = self._campaigns.get(campaign_id)
            if info is None:
                row = session.get(Campaign, campaign_id)
                if row is None:
                    raise CollectError(f"找不到活动 {campaign_id}，请先执行 noticeflow load 或 noticeflow issue")
                info = CampaignInfo(row.id, row.token_prefix, row.deadline, load_campaign(row.source_dir))
                self._campaigns[campaign_id] = info
                self._prefixes[row.token_prefix.upper()] = row.id
            return info

    def campaign_id_for_prefix(self, session: Session, prefix: str) -> str | None:
        prefix = prefix.upper()
        with self._lock:
            if prefix not in self._prefixes:
                self._prefixes[prefix] = session.exec(
                    select(Campaign.id).where(Campaign.token_prefix == prefix)).first()
            return self._prefixes[prefix]

    def own_addresses(self, session: Session) -> set[str]:
        """The office's own mailboxes: mail from them is not a unit's reply, and they never bounce."""
        with self._lock:
            if self._own is None:
                own = {self.settings.imap_user, self.settings.smtp_user}
                own |= set(session.exec(select(Campaign.office_email)).all())
                self._own = {address.strip().lower() for address in own if address and "@" in address}
            return self._own

    def raw_file(self, inbound: InboundMessage) -> Path:
        return self.output_dir / inbound.raw_path


def resolve_campaign_ids(session: Session, campaign_id: str | None) -> list[str]:
    """The campaigns a run collects for: the one named, or every active one (ordered by id; the
    first is where unmatched mail is kept)."""
    if campaign_id:
        if session.get(Campaign, campaign_id) is None:
            raise CollectError(f"找不到活动 {campaign_id}，请先执行 noticeflow load 或 noticeflow issue")
        return [campaign_id]
    ids = list(session.exec(select(Campaign.id).where(Campaign.active == True).order_by(Campaign.id)))  # noqa: E712
    if not ids:
        raise CollectError("没有进行中的活动，无需收取回复。")
    return ids


# --- routing: which campaign a message belongs to -----------------------------------------------------

_MESSAGE_ID = re.compile(r"<[^<>\s]+>")


def _campaign_of_message_ids(session: Session, message_ids: Iterable[str]) -> str | None:
    ids = [m for m in dict.fromkeys(message_ids) if m]
    if not ids:
        return None
    return session.exec(select(OutboundMessage.campaign_id)
                        .where(OutboundMessage.message_id.in_(ids)).order_by(OutboundMessage.id)).first()


def _campaign_of_tokens(session: Session, scope: Scope, texts: Iterable[str]) -> str | None:
    for text in texts:
        for token in tokens.find_all(text or ""):
            campaign_id = scope.campaign_id_for_prefix(session, token.prefix)
            if campaign_id and tokens.verify(token):
                return campaign_id
    return None


def _route_raw(session: Session, scope: Scope, raw: bytes) -> str:
    """The campaign a fetched message is filed under, from its headers alone (cheap; refined when
    the message is processed)."""
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    thread = " ".join(str(headers.get(name, "")) for name in ("In-Reply-To", "References"))
    return (_campaign_of_message_ids(session, _MESSAGE_ID.findall(thread))
            or _campaign_of_tokens(session, scope, [decode_header_value(headers.get("Subject"))])
            or scope.default_id)


def _route(session: Session, scope: Scope, parsed: ParsedMessage, classification: Classification,
           filed_under: str | None) -> CampaignInfo:
    campaign_id = (_campaign_of_message_ids(session, [*classification.original_message_ids, *_thread_ids(parsed)])
                   or _campaign_of_tokens(session, scope, _subjects(parsed))
                   or filed_under or scope.default_id)
    return scope.campaign(session, campaign_id)


def _thread_ids(parsed: ParsedMessage) -> list[str]:
    ids = ([parsed.in_reply_to] if parsed.in_reply_to else []) + list(parsed.references)
    for inner in parsed.forwarded:
        ids.extend(_thread_ids(inner))
    return ids


def _subjects(parsed: ParsedMessage) -> list[str]:
    return [parsed.subject] + [s for inner in parsed.forwarded for s in _subjects(inner)]


# --- 1. fetch and record ---------------------------------------------------------------------------------

_TRACE_HEADERS = frozenset({
    "return-path", "received", "delivered-to", "x-original-to", "x-delivered-to", "envelope-to",
    "x-envelope-from", "x-envelope-to", "authentication-results", "received-spf", "x-received",
    "arc-seal", "arc-message-signature", "arc-authentication-results",
})


def content_sha256(raw: bytes) -> str:
    """SHA-256 of the message below the trace headers that delivering servers put on top: the same
    mail delivered twice has the same content hash, though not the same raw bytes."""
    position = 0
    while True:
        end = raw.find(b"\n", position)
        if end < 0:
            break
        line = raw[position:end]
        colon = line.find(b":")
        if colon <= 0 or line[:colon].strip().lower().decode("latin-1") not in _TRACE_HEADERS:
            break
        position = end + 1
        while raw[position:position + 1] in (b" ", b"\t"):   # folded continuation lines
            end = raw.find(b"\n", position)
            position = len(raw) if end < 0 else end + 1
    return hashlib.sha256(memoryview(raw)[position:]).hexdigest()


def last_seen_uid(session: Session, folder: str, uidvalidity: int) -> int:
    return session.exec(select(func.max(InboundMessage.uid)).where(
        InboundMessage.folder == folder, InboundMessage.uidvalidity == uidvalidity)).one() or 0


def fetch_new_messages(inbox: Inbox, scope: Scope) -> list[int]:
    """Store and record every message above the UID watermark; return the new rows' ids.
    The raw file is on disk before its row is committed; a crash in between re-fetches it."""
    with session_scope() as session:
        last = last_seen_uid(session, inbox.folder, inbox.uidvalidity)
    uids = inbox.uids_after(last)
    if not uids:
        return []
    log.info("fetching %d new message(s) from %s (UIDVALIDITY %s, after UID %s)",
             len(uids), inbox.folder, inbox.uidvalidity, last)
    new_ids: list[int] = []
    pending: list[InboundMessage] = []
    with session_scope() as session:
        for message in inbox.fetch_raw(uids):
            campaign_id = _route_raw(session, scope, message.raw)
            relative = Path(campaign_id) / raw_relative_path(inbox.folder, inbox.uidvalidity, message.uid)
            write_atomically(scope.output_dir / relative, message.raw, sync_directory=False)
            fault_point("stored")
            pending.append(_inbound_row(message, inbox, campaign_id, relative))
            if len(pending) >= RECORD_BATCH:
                new_ids += _record(pending, scope)
                pending = []
    new_ids += _record(pending, scope)
    return new_ids


def _inbound_row(message, inbox: Inbox, campaign_id: str, relative: Path) -> InboundMessage:
    headers = BytesHeaderParser(policy=compat32).parsebytes(message.raw)
    message_ids = _MESSAGE_ID.findall(str(headers.get("Message-ID", "")))
    senders = parse_addresses(headers.get("From"))
    return InboundMessage(
        campaign_id=campaign_id, folder=inbox.folder, uidvalidity=inbox.uidvalidity, uid=message.uid,
        message_id=(message_ids[0] if message_ids else "")[:998],
        sha256=hashlib.sha256(message.raw).hexdigest(), raw_path=relative.as_posix(), size=len(message.raw),
        from_addr=senders[0][1] if senders else "", subject=decode_header_value(headers.get("Subject"))[:500],
        state=STORED, detail={"content_sha256": content_sha256(message.raw)},
        received_at=message.internal_date or now())


def _record(rows: list[InboundMessage], scope: Scope) -> list[int]:
    if not rows:
        return []
    # The files' directory entries reach the disk before the rows that point at them.
    sync_directories(scope.output_dir / row.raw_path for row in rows)
    with session_scope() as session:
        session.add_all(rows)
        session.flush()
        ids = [row.id for row in rows]
    fault_point("recorded", len(rows))
    return ids


# --- 2. process one stored message ------------------------------------------------------------------------

@dataclass
class Outcome:
    """What processing one message did (for the run's report and the artifact)."""

    inbound_id: int
    campaign_id: str | None
    classification: str
    unit_code: str | None = None
    needs_review: bool = False
    review_reason: str = ""
    answer: str | None = None            # "ack" | "correction" | None
    submission_version: int | None = None
    subject: str = ""
    from_addr: str = ""

    def as_row(self) -> dict:
        return asdict(self)


def process_message(inbound_id: int, scope: Scope, prepared: Prepared | None = None, *,
                    connection: Connection | None = None) -> Outcome | None:
    """Process one stored message in one transaction (on `connection` when given, see
    `processing_connection`). None when it was not `stored` (already processed, or another run
    has it)."""
    try:
        with _transaction(connection) as session:
            claimed = session.exec(update(InboundMessage)
                                   .where(InboundMessage.id == inbound_id, InboundMessage.state == STORED)
                                   .values(state=PROCESSED, processed_at=now()))
            if claimed.rowcount != 1:
                return None
            inbound = session.get(InboundMessage, inbound_id)
            outcome = _Processing(session, scope, inbound, prepared).run()
    except Exception as error:  # one bad message must not stop the others
        log.exception("processing inbound message %s failed", inbound_id)
        outcome = _record_failure(inbound_id, error)
    fault_point("processed")
    return outcome


@contextmanager
def processing_connection() -> Iterator[Connection]:
    """The connection a batch's processing transactions run on. On SQLite its commits are not
    fsync'ed (synchronous=NORMAL in WAL mode): a killed process loses nothing, and a power cut can
    only undo the latest processing, never a recording — the rows were committed durably when the
    messages were fetched and the raw files are on disk. An undone message is `stored` again and
    processed again the same way; its answer gets the same dedupe key and Message-ID, so a unit
    that already had it sees the same message (the outbox's rule for interrupted sends)."""
    connection = get_engine().connect()
    restore = None
    try:
        if connection.dialect.name == "sqlite":
            restore = connection.exec_driver_sql("PRAGMA synchronous").scalar()
            connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
            connection.commit()
        yield connection
    finally:
        if restore is not None:
            connection.exec_driver_sql(f"PRAGMA synchronous={int(restore)}")
            connection.commit()
        connection.close()


@contextmanager
def _transaction(connection: Connection | None) -> Iterator[Session]:
    if connection is None:
        with session_scope() as session:
            yield session
        return
    # Bound to a connection outside any transaction, the session begins and commits real ones.
    with Session(bind=connection, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def _record_failure(inbound_id: int, error: Exception) -> Outcome:
    with session_scope() as session:
        inbound = session.get(InboundMessage, inbound_id)
        detail = dict(inbound.detail or {})
        attempts = int(detail.get("attempts", 0)) + 1
        detail.update(attempts=attempts, error=f"{type(error).__name__}: {error}"[:2000])
        review = attempts >= MAX_ATTEMPTS
        if review:
            inbound.state, inbound.classification = FAILED, ERROR
            detail.update(needs_review=True, review_reason=(
                f"系统处理这封邮件时连续出错 {attempts} 次，已停止自动处理。邮件仍留在收件箱中，"
                f"原始邮件保存在 {inbound.raw_path}，请人工查看并告知维护人员。"))
            record_event(session, inbound.campaign_id, EVENT_INBOUND_REVIEW,
                         detail={"inbound_id": inbound.id, "reason": detail["review_reason"]})
        inbound.detail = detail
        session.add(inbound)
        return Outcome(inbound_id, inbound.campaign_id, ERROR, needs_review=review,
                       review_reason=detail.get("review_reason", ""), subject=inbound.subject,
                       from_addr=inbound.from_addr)


@dataclass
class _FormAttempt:
    index: int                      # position in the harvested attachments
    reading: FormReading | None
    problem: str = ""               # why it could not be read (for the unit), when reading is None
    not_a_form: bool = False


@dataclass
class Prepared:
    """What can be worked out about a message without writing anything: decoded, classified, filed
    under a campaign, its forms read. Done ahead in worker threads (see `_prepared_ahead`)."""

    parsed: ParsedMessage
    classification: Classification
    campaign_id: str
    attempts: list[_FormAttempt] | None   # None: not a reply, no form read


def _prepare(session: Session, scope: Scope, inbound: InboundMessage) -> Prepared:
    raw = read_raw(scope.raw_file(inbound))
    parsed = parse_message(raw)
    classification = classify(raw, parsed, own_addresses=scope.own_addresses(session))
    campaign = _route(session, scope, parsed, classification, inbound.campaign_id)
    attempts = None
    if classification.kind == Kind.reply:
        attempts = _read_forms(harvestable_attachments(parsed, classification), campaign)
    return Prepared(parsed, classification, campaign.id, attempts)


def prepare_message(inbound_id: int, scope: Scope) -> Prepared | None:
    """Prepare a stored message (read-only); None if it is not `stored` or cannot be prepared
    (the transaction then does the work itself and records any failure)."""
    try:
        with session_scope() as session:
            inbound = session.get(InboundMessage, inbound_id)
            if inbound is None or inbound.state != STORED:
                return None
            return _prepare(session, scope, inbound)
    except Exception:
        log.debug("preparing inbound message %s failed; processing will retry", inbound_id, exc_info=True)
        return None


class _Processing:
    """The work of one message inside its transaction."""

    def __init__(self, session: Session, scope: Scope, inbound: InboundMessage, prepared: Prepared | None):
        self.session = session
        self.scope = scope
        self.inbound = inbound
        self.prepared = prepared
        self.detail: dict = dict(inbound.detail or {})
        self.detail.pop("error", None)

    # -- entry ---------------------------------------------------------------------------------
    def run(self) -> Outcome:
        inbound = self.inbound
        prepared = self.prepared or _prepare(self.session, self.scope, inbound)
        parsed, classification = prepared.parsed, prepared.classification
        inbound.message_id = (parsed.message_id or inbound.message_id)[:998]
        inbound.from_addr = parsed.from_addr or inbound.from_addr
        inbound.subject = (parsed.subject or inbound.subject)[:500]
        self.parsed = parsed
        original = self._duplicate_of()
        if original is not None:
            self.detail["duplicate_of"] = original.id
            return self._finish(DUPLICATE)
        if self._sent_by_us():
            # The office's own digest, or a copy of a message we sent to the office: nothing to file.
            return self._finish(OWN_MESSAGE)
        self.detail["classification_reason"] = classification.reason
        # Routing reads only what a run does not change (our sent Message-IDs, the campaigns).
        campaign = self.scope.campaign(self.session, prepared.campaign_id)
        inbound.campaign_id = campaign.id
        if classification.kind == Kind.bounce:
            return self._bounce(campaign, classification)
        if classification.kind == Kind.auto_reply:
            return self._auto_reply(campaign, classification)
        if classification.kind == Kind.reply:
            return self._reply(campaign, classification, prepared.attempts)
        return self._finish(Kind.unknown.value, review=classification.reason_zh
                            or "无法识别这封邮件（不是单位回复、退信或自动回复），请人工查看。")

    def _sent_by_us(self) -> bool:
        message_id = (self.parsed.message_id or "").strip()
        return bool(message_id) and self.session.exec(
            select(OutboundMessage.id).where(OutboundMessage.message_id == message_id)).first() is not None

    def _finish(self, classification: str, *, unit: Unit | None = None, recipient: Recipient | None = None,
                key: str | None = None, review: str = "", answer: str | None = None,
                version: int | None = None) -> Outcome:
        inbound = self.inbound
        inbound.classification = classification
        inbound.match_key = key or ""
        inbound.recipient_id = recipient.id if recipient else None
        inbound.state = PROCESSED
        inbound.processed_at = now()
        if review:
            self.detail.update(needs_review=True, review_reason=review)
            record_event(self.session, inbound.campaign_id, EVENT_INBOUND_REVIEW,
                         recipient_id=inbound.recipient_id, detail={"inbound_id": inbound.id, "reason": review})
        inbound.detail = self.detail
        self.session.add(inbound)
        return Outcome(inbound.id, inbound.campaign_id, classification, unit.code if unit else None,
                       bool(review), review, answer, version, inbound.subject, inbound.from_addr)

    def _duplicate_of(self) -> InboundMessage | None:
        inbound = self.inbound
        mine = self.detail.get("content_sha256")
        query = select(InboundMessage).where(InboundMessage.id < inbound.id).order_by(InboundMessage.id)
        if inbound.message_id:
            query = query.where(InboundMessage.message_id == inbound.message_id)
        else:
            query = query.where(InboundMessage.sha256 == inbound.sha256)
        for earlier in self.session.exec(query):
            if earlier.sha256 == inbound.sha256 or (mine and (earlier.detail or {}).get("content_sha256") == mine):
                return earlier
        return None

    # -- lookups -------------------------------------------------------------------------------
    def _unit_by_message_id(self, campaign: CampaignInfo):
        def lookup(message_id: str) -> str | None:
            return self.session.exec(
                select(Unit.code).join(Recipient, Recipient.unit_id == Unit.id)
                .join(OutboundMessage, OutboundMessage.recipient_id == Recipient.id)
                .where(OutboundMessage.message_id == message_id, OutboundMessage.campaign_id == campaign.id)).first()
        return lookup

    def _unit_by_address(self, campaign: CampaignInfo, *, leaders: bool = False):
        def lookup(address: str) -> str | None:
            address = (address or "").strip().lower()
            if not address:
                return None
            matches = (Unit.email == address) | (Unit.leader_email == address) if leaders else Unit.email == address
            return self.session.exec(
                select(Unit.code).join(Recipient, Recipient.unit_id == Unit.id)
                .where(matches, Recipient.campaign_id == campaign.id)).first()
        return lookup

    def _recipient(self, campaign: CampaignInfo, unit_code: str) -> tuple[Recipient, Unit] | None:
        return self.session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                                 .where(Recipient.campaign_id == campaign.id, Unit.code == unit_code)).first()

    # -- bounces and auto-replies --------------------------------------------------------------------
    def _bounce(self, campaign: CampaignInfo, classification: Classification) -> Outcome:
        self.detail["bounce"] = {"addresses": classification.bounced_addresses,
                                 "status": classification.bounce_status,
                                 "text": classification.bounce_text[:1000],
                                 "original_message_ids": classification.original_message_ids}
        match = match_bounce(classification, message_id_to_unit=self._unit_by_message_id(campaign),
                             address_to_unit=self._unit_by_address(campaign, leaders=True))
        self.detail["match"] = _match_detail(match)
        found = self._recipient(campaign, match.unit_code) if match.unit_code else None
        if found is None:
            return self._finish(Kind.bounce.value, review=match.reason_zh or "退信无法对应到具体单位，请人工查看。")
        recipient, unit = found
        addresses = [a.lower() for a in classification.bounced_addresses]
        words = " ".join(filter(None, [classification.bounce_status, classification.bounce_text[:150]]))
        if addresses and unit.email.lower() not in addresses:
            # Not the unit's own mailbox (its leader's, or the address a reply came from).
            reason = (f"发往 {'、'.join(addresses)} 的邮件被退回（{words or '原因未说明'}）。"
                      f"这不是{unit.name}登记的邮箱，单位状态未改变；请核实该地址。")
            record_event(self.session, campaign.id, EVENT_BOUNCE, recipient_id=recipient.id,
                         detail={"addresses": addresses, "status": classification.bounce_status,
                                 "inbound_id": self.inbound.id})
            return self._finish(Kind.bounce.value, unit=unit, recipient=recipient, key=match.key, review=reason)
        reason = (f"退信：发往 {unit.email} 的邮件被退回（{words or '原因未说明'}）。"
                  "请核实该单位的邮箱地址，更正后重新发送。")
        current = RecipientStatus(recipient.status)
        if RecipientStatus.bounced in TRANSITIONS[current]:
            transition(self.session, recipient, RecipientStatus.bounced, kind=EVENT_BOUNCE, reason=reason,
                       detail={"inbound_id": self.inbound.id, "status": classification.bounce_status})
            return self._finish(Kind.bounce.value, unit=unit, recipient=recipient, key=match.key)
        # e.g. an acknowledgement to a unit that has replied bounced: keep the status, tell staff.
        record_event(self.session, campaign.id, EVENT_BOUNCE, recipient_id=recipient.id,
                     detail={"inbound_id": self.inbound.id, "status_kept": current.value, "reason": reason})
        return self._finish(Kind.bounce.value, unit=unit, recipient=recipient, key=match.key,
                            review=reason + f"（单位当前状态为“{current.value}”，未改为退信。）")

    def _auto_reply(self, campaign: CampaignInfo, classification: Classification) -> Outcome:
        # Recorded and attributed when possible; never a submission, never answered (mail loops).
        match = self._match(campaign, [])
        found = self._recipient(campaign, match.unit_code) if match.unit_code else None
        if found is None:
            return self._finish(Kind.auto_reply.value)
        recipient, unit = found
        record_event(self.session, campaign.id, EVENT_AUTO_REPLY, recipient_id=recipient.id,
                     detail={"inbound_id": self.inbound.id, "subject": self.inbound.subject[:200]})
        return self._finish(Kind.auto_reply.value, unit=unit, recipient=recipient, key=match.key)

    def _match(self, campaign: CampaignInfo, form_tokens: list[str]) -> MatchResult:
        match = match_reply(self.parsed, form_tokens=form_tokens, token_prefix=campaign.token_prefix,
                            message_id_to_unit=self._unit_by_message_id(campaign),
                            address_to_unit=self._unit_by_address(campaign))
        self.detail["match"] = _match_detail(match)
        return match

    # -- replies ---------------------------------------------------------------------------------
    def _reply(self, campaign: CampaignInfo, classification: Classification,
               attempts: list[_FormAttempt] | None = None, *, rerouted: bool = False) -> Outcome:
        attachments = harvestable_attachments(self.parsed, classification)
        if attempts is None:
            attempts = _read_forms(attachments, campaign)
        form_tokens = _form_tokens(attempts)
        match = self._match(campaign, form_tokens)
        if match.unit_code is None and match.other_campaign_tokens and not rerouted:
            other = self._other_campaign(match.other_campaign_tokens)
            if other is not None and other != campaign.id:
                self.inbound.campaign_id = other
                return self._reply(self.scope.campaign(self.session, other), classification, rerouted=True)
        found = self._recipient(campaign, match.unit_code) if match.unit_code else None
        links = find_bigfile_links(self.parsed.text, self.parsed.html)
        if links:
            self.detail["bigfile_links"] = [asdict(link) for link in links]
        if found is None:
            stored = self._store(campaign, attachments, None, None)
            self._attachment_rows(campaign, stored, None)
            reason = match.reason_zh or "无法判断这封邮件来自哪个单位，请人工归属。"
            if links:
                reason += "\n" + review_note_zh(links)
            self.detail["attachments"] = [s.stored_path for s in stored if s.verdict == "stored"]
            return self._finish(Kind.reply.value, review=reason)

        recipient, unit = found
        stored = self._store(campaign, attachments, recipient, unit)
        attachment_rows = self._attachment_rows(campaign, stored, recipient)
        primary = _primary_reading(attempts, recipient.token)
        review_notes = [review_note_zh(links)] if links else []
        if primary is None:
            return self._reply_without_form(campaign, recipient, unit, match, attempts, stored, links, review_notes)

        reading = primary.reading
        submission = self._add_submission(campaign, recipient, reading, attachment_rows.get(primary.index))
        self._set_reply_status(campaign, recipient, submission)
        kind = ACK if submission.valid else CORRECTION
        context = self._answer_context(campaign, recipient, unit, stored, submission=submission,
                                       errors=submission.errors)
        self._enqueue_answer(kind, campaign, recipient, unit, context)
        if reading.schema_matches is False:
            review_notes.append("回执表不是用本次活动当前版本的表格填写的，请核对数据是否读取正确。")
        return self._finish(Kind.reply.value, unit=unit, recipient=recipient, key=match.key,
                            review="\n".join(review_notes), answer=kind, version=submission.version)

    def _reply_without_form(self, campaign, recipient, unit, match, attempts, stored, links, review_notes) -> Outcome:
        """A matched reply with no readable form: supplementary material, a question, a wrong file,
        or the form sent as a big-file link."""
        if links:
            # The form may be behind the link: staff download it; no request goes to the unit.
            note = review_note_zh(links)
            current = RecipientStatus(recipient.status)
            if RecipientStatus.needs_review in TRANSITIONS[current] and current not in (RecipientStatus.replied,
                                                                                        RecipientStatus.late):
                transition(self.session, recipient, RecipientStatus.needs_review, kind=EVENT_REVIEW, reason=note,
                           detail={"inbound_id": self.inbound.id})
            return self._finish(Kind.reply.value, unit=unit, recipient=recipient, key=match.key, review=note)
        latest_valid = self.session.exec(
            select(Submission).where(Submission.recipient_id == recipient.id, Submission.valid == True)  # noqa: E712
            .order_by(Submission.version.desc())).first()
        if latest_valid is not None and not any(a.problem and not a.not_a_form for a in attempts):
            kind = ACK
            context = self._answer_context(campaign, recipient, unit, stored, submission=None,
                                           latest_version=latest_valid.version)
        else:
            kind = CORRECTION
            context = self._answer_context(campaign, recipient, unit, stored, submission=None,
                                           errors=_no_form_errors(attempts, stored), no_form=True)
        self._enqueue_answer(kind, campaign, recipient, unit, context)
        if not stored:
            review_notes.append("单位来信没有附件，请查看邮件正文是否有需要答复的问题。")
        return self._finish(Kind.reply.value, unit=unit, recipient=recipient, key=match.key,
                            review="\n".join(review_notes), answer=kind)

    def _other_campaign(self, foreign_tokens: list[str]) -> str | None:
        for text in foreign_tokens:
            token = tokens.parse(text)
            if token is not None:
                campaign_id = self.scope.campaign_id_for_prefix(self.session, token.prefix)
                if campaign_id:
                    return campaign_id
        return None

    # -- records ---------------------------------------------------------------------------------
    def _store(self, campaign: CampaignInfo, attachments: list[ParsedAttachment],
               recipient: Recipient | None, unit: Unit | None) -> list[StoredAttachment]:
        if not attachments:
            return []
        if recipient is None:
            unit_dir, start = f"{REVIEW_DIR_PREFIX}{self.inbound.id}", 1
        else:
            unit_dir = unit.code
            last = self.session.exec(select(func.max(Attachment.seq))
                                     .where(Attachment.recipient_id == recipient.id)).one()
            start = (last or 0) + 1
        root = self.scope.output_dir / campaign.id / ATTACHMENTS_DIR
        return store_attachments(attachments, root, unit_dir, start_seq=start)

    def _attachment_rows(self, campaign: CampaignInfo, stored: list[StoredAttachment],
                         recipient: Recipient | None) -> dict[int, Attachment]:
        """Attachment rows by position in the harvested list. stored_path is relative to the
        output directory (`<campaign>/attachments/<unit>/<seq>_<sha>.<ext>`)."""
        rows = {}
        for index, item in enumerate(stored):
            path = f"{campaign.id}/{ATTACHMENTS_DIR}/{item.stored_path}" if item.stored_path else ""
            row = Attachment(inbound_id=self.inbound.id, recipient_id=recipient.id if recipient else None,
                             seq=item.seq, stored_path=path, original_name=item.original_name, sha256=item.sha256,
                             size=item.size, sniffed_type=item.sniffed_type, verdict=item.verdict[:32])
            self.session.add(row)
            rows[index] = row
        self.session.flush()
        return rows

    def _add_submission(self, campaign: CampaignInfo, recipient: Recipient, reading: FormReading,
                        attachment: Attachment | None) -> Submission:
        last = self.session.exec(select(func.max(Submission.version))
                                 .where(Submission.recipient_id == recipient.id)).one()
        received = self.inbound.received_at
        submission = Submission(recipient_id=recipient.id, inbound_id=self.inbound.id,
                                attachment_id=attachment.id if attachment else None, version=(last or 0) + 1,
                                values=reading.json_values(), errors=[asdict(e) for e in reading.errors],
                                valid=reading.valid, late=received > campaign.deadline, source="email",
                                received_at=received)
        self.session.add(submission)
        self.session.flush()
        return submission

    def _answered_on_time_before(self, recipient: Recipient, submission: Submission) -> bool:
        return self.session.exec(select(Submission.id).where(
            Submission.recipient_id == recipient.id, Submission.late == False,  # noqa: E712
            Submission.version < submission.version)).first() is not None

    def _set_reply_status(self, campaign: CampaignInfo, recipient: Recipient, submission: Submission) -> None:
        current = RecipientStatus(recipient.status)
        recipient.last_reply_at = max(filter(None, [recipient.last_reply_at, submission.received_at]))
        detail = {"inbound_id": self.inbound.id, "version": submission.version, "valid": submission.valid}
        if not submission.valid:
            # A rejected form is not a report: the unit keeps waiting (and the ladder sends it the
            # correction reminder instead of 催报) until a valid version arrives.
            record_event(self.session, campaign.id, EVENT_SUBMISSION_REJECTED, recipient_id=recipient.id,
                         detail={**detail, "status": current.value, "errors": len(submission.errors)})
            self.session.add(recipient)
            return
        if current in (RecipientStatus.replied, RecipientStatus.late):
            target = current   # a unit that answered on time stays on time; a late one stays late
        elif submission.late and not self._answered_on_time_before(recipient, submission):
            target = RecipientStatus.late
        else:
            # A form sent on time but corrected after the deadline was still reported on time.
            target = RecipientStatus.replied
        if target in TRANSITIONS[current]:
            transition(self.session, recipient, target, kind=EVENT_SUBMISSION, detail=detail)
        else:   # e.g. an exempted unit that replies anyway: the submission is kept, the status too
            record_event(self.session, campaign.id, EVENT_REPLY_NO_STATUS, recipient_id=recipient.id,
                         detail={**detail, "status": current.value})
            self.session.add(recipient)

    # -- the answer ------------------------------------------------------------------------------
    def _answer_context(self, campaign: CampaignInfo, recipient: Recipient, unit: Unit,
                        stored: list[StoredAttachment], *, submission: Submission | None,
                        errors: list | None = None, no_form: bool = False, latest_version: int | None = None) -> dict:
        spec = campaign.definition.spec
        token = tokens.parse(recipient.token)
        deadline = campaign.deadline
        grid_rows, fields = _figures(campaign, submission.values if submission else {})
        return {
            "unit": {"name": unit.name, "code": unit.code},
            "office": {"name": spec.office.name, "short_name": spec.office.short_name, "email": spec.office.email},
            "contact": {"name": spec.contact.name, "phone": spec.contact.phone, "email": spec.contact.email},
            "notice": {"title": spec.notice.title, "doc_number": spec.notice.doc_number},
            "form_title": campaign.schema.title,
            "token": recipient.token,
            "token_bracketed": token.bracketed if token else f"【{recipient.token}】",
            "received_text": chinese_time(self.inbound.received_at),
            "deadline_text": chinese_time(deadline),
            "deadline_passed": now() > deadline,
            "letter_date_text": chinese_date(now()),
            "submission": ({"version": submission.version, "late": submission.late, "valid": submission.valid}
                           if submission else None),
            "latest_version": latest_version,
            "grid_rows": grid_rows,
            "fields": fields,
            "files": [{"name": s.original_name, "size_text": size_text(s.size), "stored": s.verdict == "stored",
                       "note": s.message_zh} for s in stored],
            "errors": [_error_dict(e) for e in (errors or [])],
            "no_form": no_form,
        }

    def _enqueue_answer(self, kind: str, campaign: CampaignInfo, recipient: Recipient, unit: Unit,
                        context: dict) -> None:
        rendered = render_email(kind, **context)
        step = str(self.inbound.id)
        sender = (self.parsed.from_addr or "").strip().lower()
        to = sender or unit.email
        # A reply from another mailbox is answered there, with the unit's registered mailbox copied:
        # the unit always learns what was recorded in its name.
        cc = (unit.email,) if unit.email and unit.email.lower() != to.lower() else ()
        item = outbox.OutboxItem(campaign_id=campaign.id, recipient_id=recipient.id, unit_code=unit.code,
                                 kind=kind, step=step,
                                 message_id=outbox.make_message_id(kind, campaign.token_prefix, unit.code, step,
                                                                   sender_domain(spec_email(campaign))),
                                 to=(to,), cc=cc, subject=rendered.subject)
        row = outbox.enqueue(self.session, [item])[item.key]
        self.detail["answer"] = {"kind": kind, "outbox_id": row.id, "text": rendered.text}


def spec_email(campaign: CampaignInfo) -> str:
    # Our Message-IDs name the office mailbox's domain (as the notice's do: mail.outbox).
    return campaign.definition.spec.office.email


# --- form reading ------------------------------------------------------------------------------------

def _read_forms(attachments: list[ParsedAttachment], campaign: CampaignInfo) -> list[_FormAttempt]:
    """Try every Office-looking attachment as the reply form (in a limited child process)."""
    attempts = []
    for index, attachment in enumerate(attachments):
        data = attachment.data
        if not (is_zip(data) or is_ole(data)):
            continue
        try:
            attempts.append(_FormAttempt(index, read_reply_form(data, campaign.schema)))
        except UnsafeFile as error:
            attempts.append(_FormAttempt(index, None, error.message_zh))
        except NotAReplyForm as error:
            attempts.append(_FormAttempt(index, None, error.message_zh, not_a_form=True))
    return attempts


def _form_tokens(attempts: list[_FormAttempt]) -> list[str]:
    found: list[str] = []
    for attempt in attempts:
        if attempt.reading is None:
            continue
        for token in [attempt.reading.token, *(t for _, t in attempt.reading.tokens)]:
            if token and token not in found:
                found.append(token)
    return found


def _primary_reading(attempts: list[_FormAttempt], unit_token: str) -> _FormAttempt | None:
    """The form that counts: one carrying this unit's token (or none at all), valid ones first."""
    own = [a for a in attempts if a.reading is not None
           and all(t == unit_token for t in [a.reading.token, *(t for _, t in a.reading.tokens)] if t)]
    own.sort(key=lambda a: (not a.reading.valid, a.index))
    return own[0] if own else None


def _no_form_errors(attempts: list[_FormAttempt], stored: list[StoredAttachment]) -> list[dict]:
    """Why no form could be read: the files that looked like one but could not be opened (an .xls,
    a macro or encrypted workbook) come first; other workbooks and documents are named only when
    nothing else was found."""
    unreadable = [a for a in attempts if a.problem and not a.not_a_form]
    errors = []
    for attempt in unreadable or [a for a in attempts if a.problem]:
        name = stored[attempt.index].original_name if attempt.index < len(stored) else ""
        errors.append({"cell": "", "key": "", "label": f"附件“{name}”", "message": attempt.problem})
    if not errors:
        errors.append({"cell": "", "key": "", "label": "回执表",
                       "message": "邮件中没有找到回执表附件。请把通知邮件附带的回执表填好，作为附件发送"})
    return errors


def _error_dict(error) -> dict:
    if isinstance(error, dict):
        return {"cell": error.get("cell", ""), "label": error.get("label", ""), "message": error.get("message", "")}
    return {"cell": getattr(error, "cell", ""), "label": getattr(error, "label", ""),
            "message": getattr(error, "message", str(error))}


def _match_detail(match: MatchResult) -> dict:
    return {"unit": match.unit_code, "key": match.key, "reason": match.reason_zh,
            "candidates": [asdict(c) for c in match.candidates],
            "invalid_tokens": match.invalid_tokens, "other_campaign_tokens": match.other_campaign_tokens}


# --- wording helpers for the answers ---------------------------------------------------------------------

def chinese_time(value: datetime) -> str:
    local = value.astimezone(CHINA_TZ)
    return f"{local.year}年{local.month}月{local.day}日 {local:%H:%M}"


def chinese_date(value: datetime) -> str:
    local = value.astimezone(CHINA_TZ)
    return f"{local.year}年{local.month}月{local.day}日"


def size_text(size: int) -> str:
    if size >= 1024 * 1024:
        return f"{size / 1024 / 1024:.1f} MB"
    if size >= 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size} 字节"


def display_value(value, spec: FieldSpec) -> str:
    if value is None or value == "":
        return "（未填）"
    if spec.type == FieldType.number and isinstance(value, (int, float)):
        return f"{value:.{spec.decimals}f}" if spec.decimals else f"{value:g}"
    text = str(value)
    if spec.type == FieldType.text:
        # One line in the letter: the unit only needs to recognise what it wrote.
        flat = " ".join(text.split())
        return flat if len(flat) <= TEXT_PREVIEW else flat[:TEXT_PREVIEW] + f"……（共{len(text)}字）"
    return text


def _figures(campaign: CampaignInfo, values: dict) -> tuple[list[dict], list[dict]]:
    """The recorded values in the form's own order: grid rows with their measures, then fields."""
    schema = campaign.schema
    grid_rows = []
    if schema.grid:
        for row in schema.grid.rows:
            grid_rows.append({"label": row.label, "cells": [
                {"label": column.label, "value": display_value(values.get(f"{row.key}.{column.key}"), column)}
                for column in schema.grid.columns]})
    fields = [{"label": spec.label, "value": display_value(values.get(spec.key), spec)} for spec in schema.fields]
    return grid_rows, fields


# --- 3. send the answers ------------------------------------------------------------------------------------

@dataclass
class AnswerReport:
    sent: int = 0
    refused: int = 0
    deferred: int = 0
    resent_after_interruption: int = 0
    errors: list[str] = field(default_factory=list)


def open_answer_ids(session: Session, campaign_id: str) -> list[int]:
    return list(session.exec(select(OutboundMessage.id).where(
        OutboundMessage.campaign_id == campaign_id, OutboundMessage.kind.in_(ANSWER_KINDS),
        OutboundMessage.state.in_(outbox.OPEN_STATES)).order_by(OutboundMessage.id)))


def compose_answer(row: outbox.OutboxRow) -> OutgoingEmail | None:
    """The answer as rendered when its message was processed (kept in the message's detail)."""
    with session_scope() as session:
        inbound = session.get(InboundMessage, int(row.step)) if row.step.isdigit() else None
        answer = (inbound.detail or {}).get("answer") if inbound else None
        if not answer or answer.get("outbox_id") != row.id:
            return None
        headers = dict(AUTOMATIC_HEADERS)
        if inbound.message_id:
            headers.update({"In-Reply-To": inbound.message_id, "References": inbound.message_id})
        return OutgoingEmail(to=tuple(row.to_addrs), cc=tuple(row.cc_addrs), subject=row.subject,
                             text=answer["text"], html=None, message_id=row.message_id, headers=headers)


def _answer_refused(session: Session, row: outbox.OutboxRow, failure: SmtpFailure) -> None:
    record_event(session, row.campaign_id, EVENT_ANSWER_REFUSED, recipient_id=row.recipient_id,
                 detail={"kind": row.kind, "to": row.to_addrs, "server": failure.describe()})


def send_answers(scope: Scope, campaign_ids: Iterable[str]) -> AnswerReport:
    """Send every open 回执/correction request of these campaigns. SMTP trouble is reported, not
    raised: the rows stay in the outbox and the next run sends them."""
    report = AnswerReport()
    for campaign_id in dict.fromkeys(campaign_ids):
        with session_scope() as session:
            ids = open_answer_ids(session, campaign_id)
            sender_name = scope.campaign(session, campaign_id).definition.spec.office.short_name if ids else None
        if not ids:
            continue
        try:
            delivery = outbox.deliver(campaign_id, ids, compose_answer, on_refused=_answer_refused,
                                      retry=ANSWER_RETRY, connection=lambda: SmtpBatch(sender_name=sender_name))
        except (SmtpFailure, outbox.OutboxBusy) as error:
            log.error("answers of %s not sent: %s", campaign_id, error)
            report.errors.append(f"{campaign_id}: {error}")
            continue
        report.sent += len(delivery.sent)
        report.refused += len(delivery.bounced)
        report.deferred += len(delivery.deferred)
        report.resent_after_interruption += len(delivery.resent_after_interruption)
    return report


# --- 4. move on the server -----------------------------------------------------------------------------------

def move_processed(inbox: Inbox, inbound_ids: Iterable[int] | None = None) -> int:
    """Move processed messages of this folder to the Processed folder, then mark them moved.
    A UID from before a UIDVALIDITY change names nothing any more: such rows are only marked."""
    with session_scope() as session:
        query = select(InboundMessage.id, InboundMessage.uid, InboundMessage.uidvalidity).where(
            InboundMessage.folder == inbox.folder, InboundMessage.state == PROCESSED)
        if inbound_ids is not None:
            query = query.where(InboundMessage.id.in_(list(inbound_ids)))
        rows = list(session.exec(query))
    current = [(row_id, uid) for row_id, uid, validity in rows if validity == inbox.uidvalidity]
    expired = [row_id for row_id, _, validity in rows if validity != inbox.uidvalidity]
    if current:
        method = inbox.move_to_processed([uid for _, uid in current])
        log.info("moved %d message(s) to %s (%s)", len(current), inbox.processed_folder, method)
        fault_point("moved", len(current))
    with session_scope() as session:
        for ids, state in (([row_id for row_id, _ in current], MOVED), (expired, UID_EXPIRED)):
            if ids:
                session.exec(update(InboundMessage).where(InboundMessage.id.in_(ids),
                                                          InboundMessage.state == PROCESSED).values(state=state))
    return len(current)


# --- what a run has left to do -----------------------------------------------------------------------------------

def unfinished_ids(session: Session, folder: str) -> list[int]:
    """Rows a run must still finish: `stored` (not processed yet, e.g. after a crash) and
    `processed` (not moved yet)."""
    return list(session.exec(select(InboundMessage.id).where(
        InboundMessage.folder == folder, InboundMessage.state.in_((STORED, PROCESSED))).order_by(InboundMessage.id)))


# --- one batch, start to finish ----------------------------------------------------------------------------------

@dataclass
class BatchReport:
    outcomes: list[Outcome]
    answers: AnswerReport
    moved: int


def process_batch(inbound_ids: list[int], scope: Scope) -> BatchReport:
    """Process the stored messages among `inbound_ids` (each in its own transaction), send the
    answers, then move the processed ones on the server — in that order, so a message leaves the
    inbox only once everything about it is committed."""
    with processing_connection() as connection:
        outcomes = [outcome for inbound_id, prepared in _prepared_ahead(inbound_ids, scope)
                    if (outcome := process_message(inbound_id, scope, prepared, connection=connection)) is not None]
    campaigns = [*scope.campaign_ids, *(o.campaign_id for o in outcomes if o.answer)]
    answers = send_answers(scope, campaigns)
    fault_point("answered", len(inbound_ids))
    from mail.inbox import open_inbox   # late: tests of the processing alone need no IMAP server

    with open_inbox(scope.settings) as inbox:
        moved = move_processed(inbox, inbound_ids)
    return BatchReport(outcomes, answers, moved)


def _prepared_ahead(inbound_ids: list[int], scope: Scope):
    """(id, Prepared | None) in order, the next few prepared in worker threads meanwhile: reading
    a form takes a child process most of the time, so the transactions of one message overlap the
    form reading of the next. Large messages are left to the transaction, to bound memory."""
    with session_scope() as session:
        sizes = dict(session.exec(select(InboundMessage.id, InboundMessage.size)
                                  .where(InboundMessage.id.in_(list(inbound_ids)))).all())
    with ThreadPoolExecutor(PREPARE_WORKERS, thread_name_prefix="prepare") as pool:
        def submit(inbound_id: int):
            if sizes.get(inbound_id, 0) > PREPARE_MAX_BYTES:
                return inbound_id, None
            return inbound_id, pool.submit(prepare_message, inbound_id, scope)

        ids = iter(inbound_ids)
        window = deque(submit(i) for i in islice(ids, PREPARE_AHEAD))
        while window:
            inbound_id, future = window.popleft()
            following = next(ids, None)
            if following is not None:
                window.append(submit(following))
            yield inbound_id, future.result() if future is not None else None
