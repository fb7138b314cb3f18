"""What a unit's page shows: its submissions (every version, the figures under the form's labels, the
validation errors), its attachments and messages, the mail sent to it, and its history."""
from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from forms.aggregate import UnitOutcome
from forms.aggregate import _count as count_outcomes
from forms.schema import FieldType, FormSchema
from mail.ingest import display_value, size_text
from models.labels import status_label
from models.states import RecipientStatus
from models.status import error_text
from models.tables import (Attachment, Campaign, Event, InboundMessage, OutboundMessage, OutboundState, Recipient,
                           Submission, Unit)
from web.campaigns import definition_of, kind_labels
from web.presentation import SOURCE_LABELS

OUTBOX_KIND_LABELS = {"notice": "通知", "reminder": "催报", "ack": "回执", "correction": "更正通知", "digest": "日报"}
OUTBOX_STATE_LABELS = {OutboundState.pending: "待发送", OutboundState.sending: "发送中", OutboundState.sent: "已发送",
                       OutboundState.failed: "被拒收", OutboundState.skipped: "未发送"}


@dataclass
class Figure:
    label: str
    value: str


@dataclass
class FigureGrid:
    title: str
    row_header: str
    columns: list[str]
    rows: list[tuple[str, list[str]]]


@dataclass
class SubmissionView:
    row: Submission
    source_label: str
    errors: list[str]
    grid: FigureGrid | None
    fields: list[Figure]
    attachment: Attachment | None


@dataclass
class UnitPage:
    campaign: Campaign
    recipient: Recipient
    unit: Unit
    kind_label: str
    status: str
    status_label: str
    submissions: list[SubmissionView]
    attachments: list[tuple[Attachment, str]]             # with the size as text
    messages: list[InboundMessage]
    outbound: list[tuple[OutboundMessage, str, str]]      # with kind and state as words
    events: list[Event]
    notice_state: OutboundState | None
    awaiting_correction: bool                             # replied, but nothing valid yet (待更正)

    @property
    def can_exempt(self) -> bool:
        return self.status != RecipientStatus.exempt.value

    @property
    def notice_refused(self) -> bool:
        """The notice was refused by the unit's server: correcting the address sends it again."""
        return self.notice_state == OutboundState.failed


def unit_page(session: Session, campaign_id: str, unit_code: str) -> UnitPage | None:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        return None
    found = session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                         .where(Recipient.campaign_id == campaign_id, Unit.code == unit_code.upper())).first()
    if found is None:
        return None
    recipient, unit = found
    attachments = list(session.exec(select(Attachment).where(Attachment.recipient_id == recipient.id)
                                    .order_by(Attachment.seq, Attachment.id)))
    by_id = {a.id: a for a in attachments}
    definition = definition_of(campaign)
    schema = definition.form if definition else None
    submissions = [_submission_view(s, schema, by_id.get(s.attachment_id)) for s in session.exec(
        select(Submission).where(Submission.recipient_id == recipient.id).order_by(Submission.version.desc()))]
    outbound = list(session.exec(select(OutboundMessage).where(OutboundMessage.recipient_id == recipient.id)
                                 .order_by(OutboundMessage.created_at, OutboundMessage.id)))
    from flows.campaign import NOTICE_KIND   # late: the flows (and Prefect) load once, not at import

    notice = next((row for row in outbound if row.kind == NOTICE_KIND), None)
    status = RecipientStatus(recipient.status).value
    return UnitPage(
        campaign=campaign, recipient=recipient, unit=unit,
        kind_label=kind_labels(campaign).get(unit.kind, unit.kind), status=status, status_label=status_label(status),
        submissions=submissions,
        attachments=[(a, size_text(a.size)) for a in attachments],
        messages=list(session.exec(select(InboundMessage).where(InboundMessage.recipient_id == recipient.id)
                                   .order_by(InboundMessage.received_at.desc(), InboundMessage.id.desc()))),
        outbound=[(row, OUTBOX_KIND_LABELS.get(row.kind, row.kind), OUTBOX_STATE_LABELS.get(row.state, row.state))
                  for row in outbound],
        events=list(session.exec(select(Event).where(Event.recipient_id == recipient.id)
                                 .order_by(Event.at.desc(), Event.id.desc()))),
        notice_state=OutboundState(notice.state) if notice else None,
        awaiting_correction=bool(count_outcomes([UnitOutcome(
            unit.code, unit.name, unit.kind, status,
            values={} if any(view.row.valid for view in submissions) else None,
            rejected=bool(submissions) and not any(view.row.valid for view in submissions))]).awaiting_correction),
    )


def _submission_view(submission: Submission, schema: FormSchema | None, attachment: Attachment | None) -> SubmissionView:
    values = submission.values or {}
    grid, fields = None, []
    if schema is None:
        fields = [Figure(key, "" if value is None else str(value)) for key, value in values.items()]
    else:
        if schema.grid:
            grid = FigureGrid(schema.grid.label, schema.grid.row_header, [c.label for c in schema.grid.columns], [
                (row.label, [_shown(values.get(f"{row.key}.{column.key}"), column)
                             for column in schema.grid.columns]) for row in schema.grid.rows])
        fields = [Figure(spec.label, _shown(values.get(spec.key), spec)) for spec in schema.fields]
    return SubmissionView(row=submission, source_label=SOURCE_LABELS.get(submission.source, submission.source),
                          errors=[error_text(e) for e in submission.errors or []], grid=grid, fields=fields,
                          attachment=attachment)



def _shown(value, spec) -> str:
    """As in the 回执, except that a text is shown whole: staff read it here, not in a one-line letter."""
    if spec.type == FieldType.text and value not in (None, ""):
        return str(value)
    return display_value(value, spec)
