"""What the campaigns list and a campaign's board show, read with a handful of queries whatever the
number of units (no query per unit).

Each unit is read as the summary reads it (documents.outcomes: the latest valid submission counts,
late when the first valid one came after the deadline) and counted by the summary's own rules
(forms.aggregate), so the board and the 情况通报 never disagree about who has reported; reminders and
errors are counted as `noticeflow status` counts them."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime

from sqlalchemy import func, or_
from sqlmodel import Session, select

from documents.outcomes import gather_unit_records
from forms.aggregate import Counts
from forms.aggregate import _count as count_outcomes
from mail.staff_intake import messages_awaiting_assignment
from models.clock import CHINA_TZ, now
from models.labels import COUNT_LABELS, status_label
from models.states import REPORTED, RecipientStatus
from models.status import REMINDER_KIND, latest_submission_errors
from models.tables import Attachment, Campaign, Event, InboundMessage, OutboundMessage, OutboundState, Recipient, Unit
from web.campaigns import effective_deadline, kind_labels, time_left_text
from web.presentation import status_tone

# The board lists the latest staff actions and summaries (who did what to the campaign, and when).
RECENT_EVENT_PREFIXES = ("staff.", "summary.")
RECENT_ACTIONS = 10
# The count tiles, in the order the office reads them.
COUNT_TILES = ("should_report", "reported", "on_time", "late", "not_reported", "bounced", "needs_review", "exempt")
# The default, "list", is the order of units.csv (the order the office keeps its units in).
SORT_KEYS = {
    "list": lambda row: row.position,
    "code": lambda row: row.code,
    "name": lambda row: row.name,
    "kind": lambda row: row.kind,
    "status": lambda row: _STATUS_ORDER.get(row.status, 99),
    "last_reply": lambda row: row.last_reply_at or datetime.min.replace(tzinfo=CHINA_TZ),
    "reminders": lambda row: row.reminders_sent,
    "submissions": lambda row: row.submissions,
}
_GROUP_KEYS = tuple(f.name for f in fields(Counts) if f.name != "units")
# Statuses whose reason is something staff must act on (as `noticeflow status` lists it with the errors).
_REASON_SHOWN = (RecipientStatus.bounced.value, RecipientStatus.needs_review.value)
# Most urgent first when sorting by status.
_STATUS_ORDER = {s.value: i for i, s in enumerate((
    RecipientStatus.needs_review, RecipientStatus.bounced, RecipientStatus.escalated, RecipientStatus.overdue,
    RecipientStatus.notified, RecipientStatus.pending, RecipientStatus.late, RecipientStatus.replied,
    RecipientStatus.exempt))}


@dataclass
class BoardRow:
    position: int                # in units.csv (as first loaded)
    code: str
    name: str
    kind: str
    kind_label: str
    email: str
    status: str
    status_label: str
    tone: str                    # the colour family of the status (web.presentation.STATUS_TONES)
    submissions: int
    last_reply_at: datetime | None
    reminders_sent: int
    errors: list[str]
    groups: frozenset[str]       # the counts (forms.aggregate.Counts fields) this unit is counted in


@dataclass
class Filters:
    status: str = ""
    group: str = ""
    kind: str = ""
    q: str = ""
    sort: str = "list"
    order: str = "asc"

    @classmethod
    def from_query(cls, params) -> "Filters":
        filters = cls(**{name: (params.get(name) or "").strip()[:64] for name in
                         ("status", "group", "kind", "q", "sort", "order")})
        if filters.status not in {status.value for status in RecipientStatus}:
            filters.status = ""
        if filters.group not in COUNT_TILES:
            filters.group = ""
        if filters.sort not in SORT_KEYS:
            filters.sort = "list"
        if filters.order not in ("asc", "desc"):
            filters.order = "asc"
        return filters

    def query(self, **changes) -> dict[str, str]:
        """The query parameters of these filters with `changes`, without the empty ones."""
        values = {**asdict(self), **changes}
        return {key: value for key, value in values.items() if value and (key, value) not in
                (("sort", "list"), ("order", "asc"))}


@dataclass
class Board:
    campaign: Campaign
    deadline: datetime
    time_left: str
    overdue: bool
    counts: Counts
    tiles: list[tuple[str, str, int]]          # (key, label, number)
    rows: list[BoardRow]                       # filtered and sorted
    total_units: int
    kinds: dict[str, str]
    filters: Filters
    awaiting_assignment: int = 0
    recent: list[Event] = field(default_factory=list)   # the latest staff actions and summaries
    generated_at: datetime = field(default_factory=now)


@dataclass
class CampaignLine:
    campaign: Campaign
    deadline: datetime
    time_left: str
    units: int
    replied: int                       # units that have answered (on time or late), whatever their form
    status_counts: dict[str, int]


def campaigns_overview(session: Session) -> list[CampaignLine]:
    """Every campaign, active first, newest deadline first, with its units by status (two queries)."""
    campaigns = list(session.exec(select(Campaign)))
    by_status: dict[str, dict[str, int]] = {}
    for campaign_id, status, number in session.exec(
            select(Recipient.campaign_id, Recipient.status, func.count()).group_by(Recipient.campaign_id,
                                                                                   Recipient.status)):
        by_status.setdefault(campaign_id, {})[RecipientStatus(status).value] = number
    at = now()
    lines = []
    for campaign in sorted(campaigns, key=lambda c: (not c.active, -c.deadline.timestamp(), c.id)):
        counts = by_status.get(campaign.id, {})
        deadline = effective_deadline(campaign)
        lines.append(CampaignLine(campaign, deadline, time_left_text(deadline, at), sum(counts.values()),
                                  sum(counts.get(status.value, 0) for status in REPORTED), counts))
    return lines


def campaign_board(session: Session, campaign_id: str, filters: Filters) -> Board | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    kinds = kind_labels(campaign)
    records = gather_unit_records(session, campaign_id)
    reminders = _reminders_sent(session, campaign_id)
    errors = latest_submission_errors(session, campaign_id)
    rows, outcomes = [], []
    for position, record in enumerate(records):
        outcome = record.outcome()
        outcomes.append(outcome)
        membership = count_outcomes([outcome])
        problems = list(errors.get(record.recipient_id, []))
        if record.status in _REASON_SHOWN and record.status_reason:
            problems.append(record.status_reason)
        rows.append(BoardRow(
            position=position, code=record.code, name=record.name, kind=record.kind, kind_label=kinds.get(record.kind, record.kind),
            email=record.email, status=record.status, status_label=status_label(record.status),
            tone=status_tone(record.status), submissions=record.submissions, last_reply_at=record.last_reply_at,
            reminders_sent=reminders.get(record.recipient_id, 0), errors=problems,
            groups=frozenset(key for key in _GROUP_KEYS if getattr(membership, key))))
    counts = count_outcomes(outcomes)
    deadline = effective_deadline(campaign)
    at = now()
    shown = [row for row in rows if _matches(row, filters)]
    shown.sort(key=SORT_KEYS[filters.sort], reverse=filters.order == "desc")
    return Board(campaign=campaign, deadline=deadline, time_left=time_left_text(deadline, at), overdue=at > deadline,
                 counts=counts, tiles=[(key, COUNT_LABELS[key], getattr(counts, key)) for key in COUNT_TILES],
                 rows=shown, total_units=len(rows), kinds=kinds, filters=filters,
                 awaiting_assignment=len(messages_awaiting_assignment(session, campaign_id)),
                 recent=list(session.exec(select(Event).where(
                     Event.campaign_id == campaign_id, or_(*(Event.kind.startswith(p) for p in RECENT_EVENT_PREFIXES)))
                     .order_by(Event.at.desc(), Event.id.desc()).limit(RECENT_ACTIONS))))


def _reminders_sent(session: Session, campaign_id: str) -> dict[int, int]:
    """Recipient id → reminders delivered (as `noticeflow status` counts them)."""
    return dict(session.exec(
        select(OutboundMessage.recipient_id, func.count())
        .where(OutboundMessage.campaign_id == campaign_id, OutboundMessage.kind == REMINDER_KIND,
               OutboundMessage.state == OutboundState.sent)
        .group_by(OutboundMessage.recipient_id)).all())


def _matches(row: BoardRow, filters: Filters) -> bool:
    if filters.status and row.status != filters.status:
        return False
    if filters.group and filters.group not in row.groups:
        return False
    if filters.kind and row.kind != filters.kind:
        return False
    if filters.q:
        needle = filters.q.casefold()
        return needle in row.code.casefold() or needle in row.name.casefold() or needle in row.email.casefold()
    return True


@dataclass
class ReviewItem:
    message: InboundMessage
    attachments: list[Attachment]


def review_items(session: Session, campaign_id: str) -> list[ReviewItem]:
    """The campaign's messages that matched no unit, with the attachments kept from each."""
    messages = messages_awaiting_assignment(session, campaign_id)
    attachments: dict[int, list[Attachment]] = {}
    if messages:
        for row in session.exec(select(Attachment).where(Attachment.inbound_id.in_([m.id for m in messages]))
                                .order_by(Attachment.seq)):
            attachments.setdefault(row.inbound_id, []).append(row)
    return [ReviewItem(m, attachments.get(m.id, [])) for m in messages]


def campaign_units(session: Session, campaign_id: str) -> list[tuple[str, str]]:
    """(code, name) of every unit of the campaign, by code."""
    return list(session.exec(select(Unit.code, Unit.name).join(Recipient, Recipient.unit_id == Unit.id)
                             .where(Recipient.campaign_id == campaign_id).order_by(Unit.code)))
