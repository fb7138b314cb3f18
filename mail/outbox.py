"""The outbox: every message the program sends goes through one row here, so it is sent once.

A row is keyed by `dedupe_key` = "campaign:unit:kind:step" (unique in the database) and carries a
Message-ID made from the same facts, so a resend is recognisably the same message. Its life:

    pending ──claim──▶ sending ──250──▶ sent
       ▲                  │ 4xx / dropped connection: back to pending, tried again with backoff
       │                  └ 5xx refusal ─▶ failed (the caller marks the unit bounced)
       └── a failed row whose unit got a new address is re-queued (same Message-ID)

The claim (pending → sending) is committed *before* the SMTP transaction starts; the result
(sent / failed / back to pending) is written right after it and committed together with the next
claim (one commit per message), or before anything that may wait (connecting, a retry's backoff,
the next message not being ready). So a crash can leave at most the one message that was last on
the wire in `sending`. What a delivery means for the caller (the unit's status, an Event) is
written by a callback in the same commit as the row's result (`on_sent`), or for groups of rows
(`on_sent_group`, for thousands of messages; the caller reconciles a group lost in a crash: the
outbox row is the record of what was sent).

Rule for rows found in `sending` (the process died between claim and result): **they are sent
again, with the same Message-ID**, and an Event `outbox.resend_after_interruption` records it.
The server may or may not have accepted the first copy; not sending would silently lose a notice
for good, while a second copy with the same Message-ID is harmless: mail clients and our own
collector see one message. The rule is applied only while holding the campaign's sending lock
(`sending_lock`), so a row another live process is sending right now is never taken for crashed.

Test hook: NOTICEFLOW_FAULT_EXIT_AFTER_ACCEPTED=N makes the process exit abruptly (os._exit) right
after the server accepted the N-th message of this process and before that is recorded: the crash
window above, made deterministic.
"""
from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, bindparam, insert, text
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from mail.composing import ProcessComposer, Recipe, ThreadComposer
from mail.outbound import OutgoingEmail, SmtpBatch, SmtpFailure
from models.clock import now
from models.db import get_engine, session_scope
from models.settings import get_settings
from models.states import RecipientStatus, record_event
from models.tables import OutboundMessage, OutboundState, Recipient, Unit

log = logging.getLogger(__name__)

FAULT_EXIT_ENV = "NOTICEFLOW_FAULT_EXIT_AFTER_ACCEPTED"
LOCK_FILE_NAME = ".sending.lock"
LOCK_WAIT_SECONDS = 600.0
_LOCK_POLL_SECONDS = 0.2
# Message-ID parts are dot-atoms: letters, digits and a few marks; anything else becomes "-".
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]")

EVENT_RESEND = "outbox.resend_after_interruption"
EVENT_READDRESSED = "outbox.readdressed"

OPEN_STATES = (OutboundState.pending, OutboundState.sending)


def dedupe_key(campaign_id: str, unit_code: str, kind: str, step: str) -> str:
    return f"{campaign_id}:{unit_code}:{kind}:{step}"


def make_message_id(kind: str, token_prefix: str, unit_code: str, step: str, domain: str) -> str:
    """`<notice.XQ9.YQ01.issue@wenmingban.example>`: the same message always gets the same id, and a
    reply's In-Reply-To names the campaign, the unit and what it answers. `domain` is the office
    mailbox's domain."""
    parts = [_ID_UNSAFE.sub("-", str(p)) or "-" for p in (kind, token_prefix, unit_code, step)]
    return f"<{'.'.join(parts)}@{domain.strip().lower()}>"


@dataclass(frozen=True)
class OutboxItem:
    """What to enqueue: one message to one unit."""

    campaign_id: str
    recipient_id: int | None
    unit_code: str
    kind: str
    step: str
    message_id: str
    to: tuple[str, ...]
    subject: str
    cc: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return dedupe_key(self.campaign_id, self.unit_code, self.kind, self.step)


@dataclass
class OutboxRow:
    """An outbox row as plain data: what delivery and its callbacks read. Batches handle thousands
    of rows, and an ORM object per row costs a good part of what sending its message does."""

    id: int
    dedupe_key: str
    campaign_id: str
    recipient_id: int | None
    kind: str
    step: str
    message_id: str
    to_addrs: list
    cc_addrs: list
    subject: str
    state: OutboundState
    attempts: int
    last_error: str
    created_at: datetime
    sent_at: datetime | None


_OUTBOX = OutboundMessage.__table__
_SELECT_ROWS = select(*(_OUTBOX.c[name] for name in OutboxRow.__dataclass_fields__))


def _select_rows(session: Session, *criteria) -> list[OutboxRow]:
    return [OutboxRow(*values) for values in session.execute(_SELECT_ROWS.where(*criteria))]


def _rows_by_key(session: Session, keys: Sequence[str]) -> dict[str, OutboxRow]:
    return {row.dedupe_key: row for row in _select_rows(session, _OUTBOX.c.dedupe_key.in_(list(keys)))}


def enqueue(session: Session, items: Sequence[OutboxItem]) -> dict[str, OutboxRow]:
    """Insert the rows that do not exist yet (by dedupe_key) and return all of them by key.

    An existing row is left as it is, except a `failed` one whose addresses changed since (staff
    corrected the unit's mailbox): it goes back to `pending`, keeping its Message-ID."""
    existing = _rows_by_key(session, [item.key for item in items])
    missing: dict[str, OutboxItem] = {}
    for item in items:
        row = existing.get(item.key)
        if row is None:
            missing.setdefault(item.key, item)
        elif row.state == OutboundState.failed and (list(item.to), list(item.cc)) != (row.to_addrs, row.cc_addrs):
            record_event(session, item.campaign_id, EVENT_READDRESSED, recipient_id=item.recipient_id,
                         detail={"dedupe_key": row.dedupe_key, "from": row.to_addrs, "to": list(item.to),
                                 "previous_error": row.last_error})
            session.execute(_READDRESS, {"row_id": row.id, "to_addrs": list(item.to), "cc_addrs": list(item.cc)})
            row.to_addrs, row.cc_addrs = list(item.to), list(item.cc)
            row.state, row.last_error = OutboundState.pending, ""
    if missing:
        values = [_new_row(item) for item in missing.values()]
        try:
            with session.begin_nested():  # all at once; one by one only if another process raced us
                session.execute(insert(_OUTBOX), values)
        except IntegrityError:
            for value in values:
                try:
                    with session.begin_nested():  # another process may insert the same key at this moment
                        session.execute(insert(_OUTBOX), [value])
                except IntegrityError:
                    pass
        existing.update(_rows_by_key(session, list(missing)))
    return existing


def _new_row(item: OutboxItem) -> dict:
    return {"dedupe_key": item.key, "campaign_id": item.campaign_id, "recipient_id": item.recipient_id,
            "kind": item.kind, "step": item.step, "message_id": item.message_id, "to_addrs": list(item.to),
            "cc_addrs": list(item.cc), "subject": item.subject, "state": OutboundState.pending, "attempts": 0,
            "last_error": "", "created_at": now(), "sent_at": None}


def rows_for(session: Session, campaign_id: str, kind: str, step: str) -> dict[int, OutboxRow]:
    """The rows of one kind and step in a campaign, by recipient id."""
    rows = _select_rows(session, _OUTBOX.c.campaign_id == campaign_id, _OUTBOX.c.kind == kind, _OUTBOX.c.step == step)
    return {row.recipient_id: row for row in rows}


@dataclass(frozen=True)
class RecipientMessage:
    """One recipient of a campaign and its message of one kind and step (state None: none yet)."""

    recipient_id: int
    unit_code: str
    unit_name: str
    unit_email: str
    token: str
    status: RecipientStatus
    state: OutboundState | None
    to_addrs: list | None
    last_error: str | None


def campaign_messages(session: Session, campaign_id: str, kind: str, step: str) -> list[RecipientMessage]:
    """Every recipient of the campaign with its message of `kind`/`step`, in recipient order. Plain
    rows, not ORM objects: this is read for thousands of units at a time."""
    message = and_(OutboundMessage.recipient_id == Recipient.id, OutboundMessage.campaign_id == campaign_id,
                   OutboundMessage.kind == kind, OutboundMessage.step == step)
    query = (select(Recipient.id, Unit.code, Unit.name, Unit.email, Recipient.token, Recipient.status,
                    OutboundMessage.state, OutboundMessage.to_addrs, OutboundMessage.last_error)
             .join(Unit, Unit.id == Recipient.unit_id).outerjoin(OutboundMessage, message)
             .where(Recipient.campaign_id == campaign_id).order_by(Recipient.id))
    return [RecipientMessage(*row) for row in session.exec(query)]


def recipients_of(session: Session, rows: Iterable[OutboxRow]) -> dict[int, Recipient]:
    """The recipients the rows are addressed to, by id (one query)."""
    ids = {row.recipient_id for row in rows if row.recipient_id is not None}
    if not ids:
        return {}
    return {r.id: r for r in session.exec(select(Recipient).where(Recipient.id.in_(ids)))}


# -- state changes: each one a conditional UPDATE, so two processes can never both win ----------

# Core statements, built once: per message they cost a fraction of what ORM statements do.
_ID, _ERROR = bindparam("row_id"), bindparam("error")
_CLAIM = (_OUTBOX.update().where(_OUTBOX.c.id == _ID, _OUTBOX.c.state == OutboundState.pending)
          .values(state=OutboundState.sending, attempts=_OUTBOX.c.attempts + 1))
_SENT = _OUTBOX.update().where(_OUTBOX.c.id == _ID).values(
    state=OutboundState.sent, sent_at=bindparam("sent_at"), last_error=_ERROR)
_FAILED = _OUTBOX.update().where(_OUTBOX.c.id == _ID).values(state=OutboundState.failed, last_error=_ERROR)
_RELEASE = (_OUTBOX.update().where(_OUTBOX.c.id == _ID, _OUTBOX.c.state == OutboundState.sending)
            .values(state=OutboundState.pending, last_error=_ERROR))
_NOTE = _OUTBOX.update().where(_OUTBOX.c.id == _ID, _OUTBOX.c.state == OutboundState.pending).values(last_error=_ERROR)
_READDRESS = _OUTBOX.update().where(_OUTBOX.c.id == _ID).values(
    to_addrs=bindparam("to_addrs"), cc_addrs=bindparam("cc_addrs"), state=OutboundState.pending, last_error="")
_SKIP = (_OUTBOX.update().where(_OUTBOX.c.id == _ID, _OUTBOX.c.state.in_(OPEN_STATES))
         .values(state=OutboundState.skipped, last_error=_ERROR))


class _DriverStatement:
    """A Core statement compiled once per dialect and run on the DB-API cursor of the session's
    connection, inside the session's transaction. For the two statements written for every
    message (claim, sent) and lying between two SMTP transactions: SQLAlchemy's execution path
    costs several times the statement itself (on SQLite ~100 µs against ~15 µs a statement)."""

    def __init__(self, statement):
        self._statement = statement
        self._prepared: dict[str, tuple] = {}

    def execute(self, session: Session, values: dict) -> int:
        connection = session.connection()
        sql, names, constants, processors = self._prepare(connection.dialect)
        params = {**constants, **values}
        for name, process in processors.items():
            params[name] = process(params[name])
        cursor = connection.connection.dbapi_connection.cursor()
        try:
            cursor.execute(sql, tuple(params[n] for n in names) if names is not None else params)
            return cursor.rowcount
        finally:
            cursor.close()

    def _prepare(self, dialect) -> tuple:
        prepared = self._prepared.get(dialect.name)
        if prepared is None:
            compiled = self._statement.compile(dialect=dialect)
            binds = {name: bind for bind, name in compiled.bind_names.items()}
            constants = {name: bind.value for name, bind in binds.items() if not bind.required}
            processors = {name: process for name, bind in binds.items()
                          if (process := bind.type.dialect_impl(dialect).bind_processor(dialect)) is not None}
            prepared = (compiled.string, compiled.positiontup, constants, processors)
            self._prepared[dialect.name] = prepared
        return prepared


_CLAIM_FAST, _SENT_FAST = _DriverStatement(_CLAIM), _DriverStatement(_SENT)


def claim(session: Session, row_id: int) -> bool:
    """pending → sending. False if the row is not pending (sent meanwhile, or someone else has it)."""
    return _CLAIM_FAST.execute(session, {"row_id": row_id}) == 1


def mark_sent(session: Session, row_id: int, *, refused: dict | None = None) -> None:
    note = "; ".join(f"{addr}: {code} {words}" for addr, (code, words) in (refused or {}).items())
    _SENT_FAST.execute(session, {"row_id": row_id, "sent_at": now(), "error": note})


def mark_failed(session: Session, row_id: int, error: str) -> None:
    session.execute(_FAILED, {"row_id": row_id, "error": error})


def release(session: Session, row_id: int, error: str) -> None:
    """sending → pending after a transient failure: tried again later, same Message-ID."""
    session.execute(_RELEASE, {"row_id": row_id, "error": error})


def note_deferred(session: Session, row_id: int, error: str) -> None:
    session.execute(_NOTE, {"row_id": row_id, "error": error})


def mark_skipped(session: Session, row_id: int, reason: str) -> None:
    session.execute(_SKIP, {"row_id": row_id, "error": reason})


def recover_interrupted(session: Session, row_ids: Iterable[int]) -> list[int]:
    """Apply the rule for rows left in `sending` (see the module docstring): back to pending, same
    Message-ID, with an Event. Call only while holding `sending_lock`."""
    ids = list(row_ids)
    if not ids:
        return []
    stuck = session.exec(select(OutboundMessage).where(OutboundMessage.id.in_(ids),
                                                       OutboundMessage.state == OutboundState.sending)).all()
    for row in stuck:
        record_event(session, row.campaign_id, EVENT_RESEND, recipient_id=row.recipient_id,
                     detail={"dedupe_key": row.dedupe_key, "message_id": row.message_id,
                             "attempts": row.attempts, "rule": "resend with the same Message-ID"})
        row.state = OutboundState.pending
        row.last_error = "上次发送时程序中断，无法确认是否已送达，已按原 Message-ID 重新发送"
        session.add(row)
    session.flush()
    return [row.id for row in stuck]


# -- the campaign's sending lock ------------------------------------------------------------------

class OutboxBusy(RuntimeError):
    """Another process is sending for this campaign and did not finish in time."""


_held: dict[tuple[str, int], int] = {}  # (campaign, thread) → how deep that thread holds the lock
_held_guard = threading.Lock()


@contextmanager
def sending_lock(campaign_id: str, *, wait_seconds: float = LOCK_WAIT_SECONDS) -> Iterator[None]:
    """Only one process (and one thread) sends for a campaign at a time. A file lock (flock) in the
    campaign's output folder, plus a PostgreSQL advisory lock when the database is PostgreSQL
    (processes on other machines). Both are released by the operating system / the server when a
    process dies, so a SIGKILL never leaves the campaign locked. Re-entrant within a thread."""
    holder = (campaign_id, threading.get_ident())
    with _held_guard:
        nested = holder in _held
        if nested:
            _held[holder] += 1
    if nested:
        try:
            yield
        finally:
            with _held_guard:
                _held[holder] -= 1
        return
    folder = get_settings().campaign_dir(campaign_id)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK_FILE_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    pg = None
    try:
        deadline = time.monotonic() + wait_seconds
        _acquire(lambda: _try_flock(fd), deadline, campaign_id)
        engine = get_engine()
        if engine.dialect.name == "postgresql":
            pg = engine.connect()
            key = _advisory_key(campaign_id)
            _acquire(lambda: pg.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar(),
                     deadline, campaign_id)
        with _held_guard:
            _held[holder] = 1
        try:
            yield
        finally:
            with _held_guard:
                del _held[holder]
    finally:
        if pg is not None:
            _release_advisory(pg)
        os.close(fd)  # releases the flock


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _acquire(attempt: Callable[[], bool], deadline: float, campaign_id: str) -> None:
    while not attempt():
        if time.monotonic() > deadline:
            raise OutboxBusy(f"活动 {campaign_id} 正由另一个进程发送邮件，请等它结束后再执行")
        time.sleep(_LOCK_POLL_SECONDS)


def _release_advisory(connection) -> None:
    # The connection goes back to a pool and its session lives on: unlock explicitly.
    try:
        connection.execute(text("SELECT pg_advisory_unlock_all()"))
        connection.commit()
    finally:
        connection.close()


def _advisory_key(campaign_id: str) -> int:
    return int.from_bytes(hashlib.sha256(f"noticeflow-outbox:{campaign_id}".encode()).digest()[:8], "big", signed=True)


# -- delivery ------------------------------------------------------------------------------------

PREFETCH_DEPTH = 16  # messages composed ahead of the one on the wire (in a helper thread)
# From this many messages on, a Recipe is composed in the worker process (mail.composing): below
# it, the thread's GIL contention costs less than handing the work to another process.
PROCESS_COMPOSING_FROM = 100


@dataclass(frozen=True)
class RetryPolicy:
    """Seconds to wait before each further round for messages that failed transiently."""

    delays: tuple[float, ...] = (5.0, 30.0, 120.0)


@dataclass
class DeliveryReport:
    sent: list[int] = field(default_factory=list)
    bounced: list[tuple[int, str]] = field(default_factory=list)      # row id, the server's words
    deferred: list[tuple[int, str]] = field(default_factory=list)     # still pending after all rounds
    resent_after_interruption: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)                  # claimed elsewhere or no longer due
    connections: int = 0


Compose = Callable[[OutboxRow], OutgoingEmail | None]
OnSent = Callable[[Session, OutboxRow], None]
OnSentGroup = Callable[[Session, list[OutboxRow]], None]
OnRefused = Callable[[Session, OutboxRow, SmtpFailure], None]


def deliver(campaign_id: str, row_ids: Sequence[int], compose: Compose | Recipe, *,
            on_sent: OnSent | None = None, on_sent_group: OnSentGroup | None = None,
            on_refused: OnRefused | None = None, retry: RetryPolicy = RetryPolicy(),
            connection: Callable[[], SmtpBatch] = SmtpBatch, sleep: Callable[[float], None] = time.sleep,
            prefetch: int = PREFETCH_DEPTH) -> DeliveryReport:
    """Send the given outbox rows over one SMTP connection, each exactly once.

    `compose(row)` returns the message for a row (None: no longer due, the row is skipped). With
    `prefetch` > 0 it runs in a helper thread up to that many messages ahead of the sending (it may
    read the database through its own session); 0 composes each message just before it is sent.
    `compose` may instead be a Recipe (mail.composing): for PROCESS_COMPOSING_FROM messages or
    more it is composed in a worker process, ahead of the sending, else like a function.

    What a delivery means for the caller (the unit's status, an Event) is done by a callback in
    the batch's session: `on_sent(session, row)` and `on_refused(session, row, failure)` in the
    transaction that records the row's result, or `on_sent_group(session, rows)` for groups of up
    to 50 delivered rows, much cheaper for thousands of messages, but a crash may lose a group's
    effects after its rows were recorded sent: a caller using it must reconcile (see _Ledger).
    A fatal SmtpFailure (login, our sender refused) stops the batch and is raised; the row in hand
    goes back to pending."""
    report = DeliveryReport()
    with sending_lock(campaign_id):
        with session_scope() as session:
            report.resent_after_interruption = recover_interrupted(session, row_ids)
            rows = {row.id: row for row in _select_rows(session, _OUTBOX.c.id.in_(list(row_ids)),
                                                        _OUTBOX.c.state == OutboundState.pending)}
        queue = [row_id for row_id in row_ids if row_id in rows]
        smtp = connection()
        try:
            with _Ledger(on_sent, on_sent_group, on_refused) as ledger:
                for round_number, delay in enumerate((0.0, *retry.delays)):
                    if not queue:
                        break
                    if round_number:
                        log.info("retrying %d message(s) in %.0f s", len(queue), delay)
                        sleep(delay)
                    queue = _deliver_round(queue, rows, compose, smtp, ledger, report, prefetch)
                    ledger.commit()
                report.deferred = [(row_id, rows[row_id].last_error) for row_id in queue]
                for row_id, error in report.deferred:  # say why they wait
                    note_deferred(ledger.session, row_id, error)
        finally:
            report.connections = smtp.connections_opened
            smtp.close()
    return report


class _Ledger:
    """The batch's one database session, committing exactly when exactly-once needs it.

    A claim is committed before its SMTP transaction starts. A result, and `on_sent` for it, is
    written at once and committed with the next claim (one commit per message), or before
    anything that may wait, or at the end; so a crash leaves at most the one message last on the
    wire in `sending`, and a row is never recorded sent without its `on_sent` effects.

    `on_sent_group` runs for groups of rows instead (ORM work per message costs about as much as
    sending it), also before a commit: rows recorded `sent` by earlier commits whose group had not
    yet been committed when the process died have lost their effects; the caller reconciles them.

    On SQLite the connection runs with `synchronous=NORMAL` while the batch lasts: in WAL mode a
    commit then reaches the operating system but is not fsync'ed. A killed process loses nothing;
    a power cut may lose the last commits, and a message whose claim or result is lost is sent
    again with the same Message-ID, as for any row found in `sending`."""

    GROUP = 50

    def __init__(self, on_sent: OnSent | None, on_sent_group: OnSentGroup | None, on_refused: OnRefused | None):
        self.on_sent, self.on_sent_group, self.on_refused = on_sent, on_sent_group, on_refused
        self._delivered: list[OutboxRow] = []
        self._connection = get_engine().connect()
        self._restore_synchronous = None
        if self._connection.dialect.name == "sqlite":
            self._restore_synchronous = self._connection.exec_driver_sql("PRAGMA synchronous").scalar()
            self._connection.exec_driver_sql("PRAGMA synchronous=NORMAL")
            self._connection.commit()
        # Bound to a connection outside any transaction, the session begins and commits real ones.
        self.session = Session(bind=self._connection, expire_on_commit=False)

    def __enter__(self) -> "_Ledger":
        return self

    def __exit__(self, *exc_info) -> None:
        # Whatever stopped the batch, the results written are facts about the server: keep them.
        try:
            self.commit()
        except BaseException:
            self.session.rollback()
            raise
        finally:
            self.session.close()
            if self._restore_synchronous is not None:
                self._connection.exec_driver_sql(f"PRAGMA synchronous={int(self._restore_synchronous)}")
                self._connection.commit()
            self._connection.close()

    def commit(self) -> None:
        self._apply_effects()
        self.session.commit()
        self.session.expunge_all()  # nothing is read back: keep the session small over a long batch

    def _apply_effects(self) -> None:
        delivered, self._delivered = self._delivered, []
        if delivered and self.on_sent_group:
            self.on_sent_group(self.session, delivered)

    def claim(self, row_id: int) -> bool:
        if len(self._delivered) >= self.GROUP:
            self._apply_effects()
        claimed = claim(self.session, row_id)
        self.session.commit()
        return claimed

    def sent(self, row: OutboxRow, refused: dict) -> None:
        mark_sent(self.session, row.id, refused=refused)
        if self.on_sent:
            self.on_sent(self.session, row)
        self._delivered.append(row)

    def refused(self, row: OutboxRow, failure: SmtpFailure) -> None:
        mark_failed(self.session, row.id, failure.describe())
        if self.on_refused:
            self.on_refused(self.session, row, failure)
        self.commit()

    def released(self, row_id: int, error: str) -> None:
        release(self.session, row_id, error)
        self.commit()

    def skipped(self, row_id: int, reason: str) -> None:
        mark_skipped(self.session, row_id, reason)


def _deliver_round(queue, rows, compose, smtp, ledger: _Ledger, report: DeliveryReport, prefetch: int) -> list[int]:
    """One pass over the queue; returns the rows to try again."""
    again: list[int] = []
    with _composer(queue, rows, compose, smtp, prefetch) as composed:
        for position, (row_id, envelope, raw) in enumerate(composed.results(before_wait=ledger.commit)):
            if raw is None:
                ledger.skipped(row_id, "发送前已不需要发送")
                report.skipped.append(row_id)
                continue
            if not smtp.connected:
                ledger.commit()  # connecting may take up to the timeout
            try:
                smtp.open()
            except SmtpFailure as failure:
                if failure.kind == "fatal":
                    raise
                # The server cannot be reached: nothing more this round, nothing was claimed.
                log.warning("SMTP server unreachable: %s", failure.describe())
                for waiting in queue[position:]:
                    rows[waiting].last_error = failure.describe()
                return again + list(queue[position:])
            if not ledger.claim(row_id):
                report.skipped.append(row_id)
                continue
            if _send_claimed(smtp, rows[row_id], envelope, raw, ledger, report) == "retry":
                again.append(row_id)
    return again


def _composer(queue, rows, compose: Compose | Recipe, smtp, prefetch: int):
    if not isinstance(compose, Recipe):
        return ThreadComposer(queue, rows, compose, smtp, prefetch)
    if prefetch > 0 and len(queue) >= PROCESS_COMPOSING_FROM:
        return ProcessComposer(queue, rows, compose, smtp, prefetch)
    return ThreadComposer(queue, rows, compose.compose_here, smtp, prefetch)


def _send_claimed(smtp, row, envelope, raw, ledger: _Ledger, report: DeliveryReport) -> str:
    """The SMTP transaction of one claimed row, and its result written right after."""
    try:
        refused = smtp.send_raw(envelope, raw)
    except SmtpFailure as failure:
        row.last_error = failure.describe()
        if failure.permanent:
            ledger.refused(row, failure)
            report.bounced.append((row.id, row.last_error))
            return "bounced"
        ledger.released(row.id, row.last_error)  # transient, or fatal: not delivered either way
        if failure.kind == "fatal":
            raise
        return "retry"
    except Exception as error:
        # A bug, not an SMTP answer: smtplib raised before anything reached the server.
        ledger.released(row.id, f"{type(error).__name__}: {error}")
        raise
    _fault_injection_point()
    ledger.sent(row, refused)
    report.sent.append(row.id)
    return "sent"


_accepted_in_process = 0


def _fault_injection_point() -> None:
    """See the module docstring (tests only): die after the server accepted, before recording it."""
    global _accepted_in_process
    _accepted_in_process += 1
    limit = os.environ.get(FAULT_EXIT_ENV)
    if limit and _accepted_in_process >= int(limit):
        os._exit(86)
