"""The tables. The database, not Prefect's cache, is the source of truth for "already done"."""
from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Optional

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.clock import now
from models.db import UTCDateTime
from models.states import RecipientStatus


def _when(nullable: bool):
    """A timestamp column; required ones default to the program's clock."""
    column = Column(UTCDateTime(), nullable=nullable)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=now, sa_column=column)


def _json(default_factory=dict):
    return Field(default_factory=default_factory, sa_column=Column(JSON, nullable=False))


class Campaign(SQLModel, table=True):
    id: str = Field(primary_key=True, max_length=64)
    title: str
    token_prefix: str = Field(index=True, unique=True, max_length=16)
    doc_number: str
    deadline: datetime = _when(nullable=False)
    source_dir: str
    office_email: str
    active: bool = True
    definition: dict = _json()
    loaded_at: datetime = _when(nullable=False)


class Unit(SQLModel, table=True):
    """A unit the office governs. Codes are stable across campaigns."""

    id: Optional[int] = Field(default=None, primary_key=True)
    code: str = Field(index=True, unique=True, max_length=32)
    name: str
    kind: str
    email: str
    leader_email: str
    contact: str = ""


class Recipient(SQLModel, table=True):
    """One unit within one campaign: its status and its signed token."""

    __table_args__ = (UniqueConstraint("campaign_id", "unit_id"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", index=True)
    unit_id: int = Field(foreign_key="unit.id", index=True)
    token: str = Field(index=True, unique=True, max_length=64)
    status: RecipientStatus = RecipientStatus.pending
    status_reason: str = ""
    notified_at: Optional[datetime] = _when(nullable=True)
    last_reply_at: Optional[datetime] = _when(nullable=True)
    updated_at: datetime = _when(nullable=False)


class OutboundState(str, Enum):
    pending = "pending"
    sending = "sending"
    sent = "sent"
    failed = "failed"
    skipped = "skipped"


class OutboundMessage(SQLModel, table=True):
    """The outbox. `dedupe_key` (campaign, unit, kind, step) is unique: a message is sent once."""

    id: Optional[int] = Field(default=None, primary_key=True)
    dedupe_key: str = Field(index=True, unique=True, max_length=255)
    campaign_id: str = Field(foreign_key="campaign.id", index=True)
    recipient_id: Optional[int] = Field(default=None, foreign_key="recipient.id", index=True)
    kind: str = Field(max_length=32)
    step: str = Field(default="", max_length=64)
    message_id: str = Field(index=True, max_length=255)
    to_addrs: list = _json(list)
    cc_addrs: list = _json(list)
    subject: str = ""
    state: OutboundState = OutboundState.pending
    attempts: int = 0
    last_error: str = ""
    created_at: datetime = _when(nullable=False)
    sent_at: Optional[datetime] = _when(nullable=True)


class InboundMessage(SQLModel, table=True):
    """A message fetched from the office mailbox, recorded before anything else happens to it."""

    __table_args__ = (UniqueConstraint("folder", "uidvalidity", "uid"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: Optional[str] = Field(default=None, foreign_key="campaign.id", index=True)
    recipient_id: Optional[int] = Field(default=None, foreign_key="recipient.id", index=True)
    folder: str
    # IMAP UIDs and UIDVALIDITY are unsigned 32-bit: past PostgreSQL's `integer`.
    uidvalidity: int = Field(sa_column=Column(BigInteger, nullable=False))
    uid: int = Field(sa_column=Column(BigInteger, nullable=False))
    message_id: str = Field(default="", index=True, max_length=998)
    sha256: str = Field(index=True, max_length=64)
    raw_path: str
    size: int = 0
    from_addr: str = ""
    subject: str = ""
    classification: str = Field(default="unclassified", max_length=32)
    match_key: str = Field(default="", max_length=32)
    state: str = Field(default="stored", max_length=32)
    detail: dict = _json()
    received_at: datetime = _when(nullable=False)
    processed_at: Optional[datetime] = _when(nullable=True)


class Attachment(SQLModel, table=True):
    id: Optional[int] = Field(default=None, primary_key=True)
    inbound_id: Optional[int] = Field(default=None, foreign_key="inboundmessage.id", index=True)
    recipient_id: Optional[int] = Field(default=None, foreign_key="recipient.id", index=True)
    seq: int = 0
    stored_path: str
    original_name: str = ""
    sha256: str = Field(max_length=64)
    size: int = 0
    sniffed_type: str = ""
    verdict: str = Field(default="stored", max_length=32)


class Submission(SQLModel, table=True):
    """Every version of a unit's reply; the latest valid one counts, earlier ones stay."""

    __table_args__ = (UniqueConstraint("recipient_id", "version"),)

    id: Optional[int] = Field(default=None, primary_key=True)
    recipient_id: int = Field(foreign_key="recipient.id", index=True)
    inbound_id: Optional[int] = Field(default=None, foreign_key="inboundmessage.id")
    attachment_id: Optional[int] = Field(default=None, foreign_key="attachment.id")
    version: int
    values: dict = _json()
    errors: list = _json(list)
    valid: bool = False
    late: bool = False
    source: str = Field(default="email", max_length=32)
    received_at: datetime = _when(nullable=False)


class Event(SQLModel, table=True):
    """An audit row for every state change and every staff action."""

    id: Optional[int] = Field(default=None, primary_key=True)
    campaign_id: str = Field(foreign_key="campaign.id", index=True)
    recipient_id: Optional[int] = Field(default=None, foreign_key="recipient.id", index=True)
    kind: str = Field(max_length=64)
    from_status: str = ""
    to_status: str = ""
    actor: str = "system"
    detail: dict = _json()
    at: datetime = _when(nullable=False)

