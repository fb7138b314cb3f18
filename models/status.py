"""The campaign status report behind `noticeflow status ID --json` (a contract: see DESIGN.md)."""
from __future__ import annotations

from sqlalchemy import func
from sqlmodel import Session, select

from models.clock import CHINA_TZ
from models.states import RecipientStatus
from models.tables import Campaign, OutboundMessage, OutboundState, Recipient, Submission, Unit

REMINDER_KIND = "reminder"


class UnknownCampaign(LookupError):
    pass


def _iso(value):
    return value.astimezone(CHINA_TZ).isoformat() if value else None


def campaign_status(session: Session, campaign_id: str) -> dict:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise UnknownCampaign(campaign_id)
    submissions = dict(session.exec(
        select(Submission.recipient_id, func.count()).join(Recipient, Recipient.id == Submission.recipient_id)
        .where(Recipient.campaign_id == campaign_id).group_by(Submission.recipient_id)).all())
    reminders = dict(session.exec(
        select(OutboundMessage.recipient_id, func.count())
        .where(OutboundMessage.campaign_id == campaign_id, OutboundMessage.kind == REMINDER_KIND,
               OutboundMessage.state == OutboundState.sent)
        .group_by(OutboundMessage.recipient_id)).all())
    latest_errors = latest_submission_errors(session, campaign_id)
    units = []
    for recipient, unit in session.exec(select(Recipient, Unit).join(Unit, Unit.id == Recipient.unit_id)
                                        .where(Recipient.campaign_id == campaign_id).order_by(Recipient.id)):
        errors = list(latest_errors.get(recipient.id, []))
        if recipient.status in (RecipientStatus.bounced, RecipientStatus.needs_review) and recipient.status_reason:
            errors.append(recipient.status_reason)
        units.append({
            "code": unit.code,
            "name": unit.name,
            "email": unit.email,
            "status": RecipientStatus(recipient.status).value,
            "submissions": submissions.get(recipient.id, 0),
            "last_reply_at": _iso(recipient.last_reply_at),
            "reminders_sent": reminders.get(recipient.id, 0),
            "errors": errors,
        })
    return {"campaign": campaign.id, "deadline": _iso(campaign.deadline), "units": units}


def latest_submission_errors(session: Session, campaign_id: str) -> dict[int, list[str]]:
    """Errors of each unit's newest submission, when that submission was rejected."""
    newest = (select(Submission.recipient_id, func.max(Submission.version).label("version"))
              .join(Recipient, Recipient.id == Submission.recipient_id)
              .where(Recipient.campaign_id == campaign_id).group_by(Submission.recipient_id).subquery())
    rows = session.exec(select(Submission).join(newest, (Submission.recipient_id == newest.c.recipient_id)
                                                & (Submission.version == newest.c.version)))
    return {s.recipient_id: [error_text(e) for e in s.errors] for s in rows if not s.valid}


def error_text(error) -> str:
    if isinstance(error, dict):
        cell = error.get("cell", "")
        label = error.get("label", "")
        return f"{cell} {label}：{error.get('message', '')}".strip()
    return str(error)
