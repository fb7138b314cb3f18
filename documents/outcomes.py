"""Where each unit of a campaign stands, read from the database for the summary and its exports.

Only valid submissions count. The figures of a unit are those of its latest valid submission (a
correction replaces what it corrects); its 报送时间 is when its first valid submission arrived,
and it reported on time when that was no later than the campaign's deadline: a correction sent
after the deadline does not make an on-time unit late, an on-time reply that had to be corrected
after the deadline does not count as on time.

Three queries whatever the number of units (recipients with units, valid submissions, submission
counts); no Prefect here.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func
from sqlmodel import Session, select

from documents.officialdoc import gc_paused
from forms.aggregate import Aggregation, UnitOutcome, aggregate
from forms.ladder import deadline_of
from models.labels import status_label
from models.states import RecipientStatus
from models.status import UnknownCampaign
from models.tables import Campaign, Recipient, Submission, Unit

@dataclass(frozen=True)
class UnitRecord:
    """One unit of the campaign with everything the summary, the xlsx and the bundle show."""

    code: str
    name: str
    kind: str
    email: str
    recipient_id: int
    status: str                          # a RecipientStatus value
    status_reason: str = ""
    notified_at: datetime | None = None
    last_reply_at: datetime | None = None
    submissions: int = 0                 # every version received, valid or not
    counted_version: int | None = None   # the latest valid version: its values count
    counted_at: datetime | None = None   # when that version arrived
    first_valid_at: datetime | None = None
    values: dict | None = None
    late: bool = False

    @property
    def reported(self) -> bool:
        return self.values is not None

    @property
    def status_label(self) -> str:
        return status_label(self.status)

    def outcome(self) -> UnitOutcome:
        return UnitOutcome(code=self.code, name=self.name, kind=self.kind, status=self.status,
                           values=self.values, received_at=self.first_valid_at, late=self.late,
                           rejected=self.submissions > 0 and self.values is None)


def campaign_row(session: Session, campaign_id: str) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise UnknownCampaign(f"找不到活动 {campaign_id}，请先执行 noticeflow load 或 noticeflow issue")
    return campaign


def campaign_deadline(campaign: Campaign) -> datetime:
    """The deadline as the chase applies it (after the campaign's rule for deadlines on holidays)."""
    from forms.campaign import CampaignSpec

    return deadline_of(CampaignSpec.model_validate(campaign.definition))


def gather_unit_records(session: Session, campaign_id: str, unit_order: list[str] | None = None) -> list[UnitRecord]:
    """Every recipient of the campaign. Ordered like `unit_order` (unit codes, e.g. units.csv),
    units not in it last by code; without it, in the order the units were loaded."""
    campaign = campaign_row(session, campaign_id)
    deadline = campaign_deadline(campaign)
    recipients = session.exec(
        select(Recipient.id, Recipient.status, Recipient.status_reason, Recipient.notified_at,
               Recipient.last_reply_at, Unit.code, Unit.name, Unit.kind, Unit.email)
        .join(Unit, Unit.id == Recipient.unit_id)
        .where(Recipient.campaign_id == campaign_id).order_by(Recipient.id)).all()
    counts = dict(session.exec(
        select(Submission.recipient_id, func.count())
        .join(Recipient, Recipient.id == Submission.recipient_id)
        .where(Recipient.campaign_id == campaign_id).group_by(Submission.recipient_id)).all())
    first_valid: dict[int, datetime] = {}
    latest: dict[int, tuple[int, datetime, dict]] = {}
    for recipient_id, version, received_at, values in session.exec(
            select(Submission.recipient_id, Submission.version, Submission.received_at, Submission.values)
            .join(Recipient, Recipient.id == Submission.recipient_id)
            .where(Recipient.campaign_id == campaign_id, Submission.valid == True)  # noqa: E712
            .order_by(Submission.recipient_id, Submission.version)):
        if recipient_id not in first_valid or received_at < first_valid[recipient_id]:
            first_valid[recipient_id] = received_at
        latest[recipient_id] = (version, received_at, values)   # ascending versions: the last wins

    records = []
    for rid, status, reason, notified_at, last_reply_at, code, name, kind, email in recipients:
        version, counted_at, values = latest.get(rid, (None, None, None))
        first = first_valid.get(rid)
        records.append(UnitRecord(
            code=code, name=name, kind=kind, email=email, recipient_id=rid,
            status=RecipientStatus(status).value, status_reason=reason or "",
            notified_at=notified_at, last_reply_at=last_reply_at, submissions=counts.get(rid, 0),
            counted_version=version, counted_at=counted_at, first_valid_at=first,
            values=dict(values) if values is not None else None,
            late=first is not None and first > deadline))
    return order_records(records, unit_order) if unit_order is not None else records


def order_records(records: list[UnitRecord], unit_order: list[str]) -> list[UnitRecord]:
    """In the order of `unit_order`; the others after them, by code (as forms.aggregate orders)."""
    position = {code: index for index, code in enumerate(unit_order)}
    listed = sorted((r for r in records if r.code in position), key=lambda r: position[r.code])
    return listed + sorted((r for r in records if r.code not in position), key=lambda r: r.code)


def gather_outcomes(session: Session, campaign_id: str, unit_order: list[str] | None = None) -> list[UnitOutcome]:
    """The input of forms.aggregate.aggregate(): one UnitOutcome per unit, with the values of its
    latest valid submission (None when it has none), its 报送时间 and whether it was late."""
    return [record.outcome() for record in gather_unit_records(session, campaign_id, unit_order)]


def campaign_figures(session: Session, definition) -> tuple[list[UnitRecord], Aggregation]:
    """Every unit's record, in the order of the campaign's units.csv, and their aggregation: what
    the summary, the xlsx and the bundle are made from."""
    with gc_paused():
        records = gather_unit_records(session, definition.id, [unit.code for unit in definition.units])
        return records, aggregate(definition, [record.outcome() for record in records])
